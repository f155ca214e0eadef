"""A character-level model of one free-text column, conditioned on the row's other columns.

A GRU over characters starts from (and keeps reading) an embedding of the row's tokens (every
column the main network models, the text's own length bucket included), so the text follows
the other columns. It is trained from the column alone: nothing is downloaded.

Value protection, two rules kept at sampling, and measured by the tests:
- no training text held by fewer than k rows is written verbatim;
- no run of ``ngram`` characters that occurs in fewer than k training rows is written (names,
  emails, ids held by a few rows are runs like that).
Both are checked against salted 64-bit hashes of those strings stored with the weights (never
the strings); a text that breaks a rule is drawn again, and one that keeps breaking it is cut
before its first rare run. Training also keeps only characters seen in k rows (the others are
one unknown character the model never writes) and replaces input characters with it at random
(``noise``), so the model learns patterns more than spellings.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter

import numpy as np
import torch
from torch import nn

from .base import (
    FitConfig,
    Progress,
    SampleConfig,
    StoredModel,
    load_network,
    map_chunks,
    network_tensors,
    sample_logits,
    single_thread,
)
from .loop import EarlyStopping, Resumable, Step, TimeBudget, run_epochs

PAD, START, END, UNKNOWN = 0, 1, 2, 3  # codes 4.. are the alphabet's characters
NGRAM = 8  # the shortest run of characters checked for rarity
PEAK_LR = 1e-2  # 3e-3 left a GRU on 1,000 short texts far from fitting them in 50 epochs
NOISE = 0.05  # share of input characters hidden in training (value protection only)
MIN_VALIDATION_ROWS = 1_000  # fewer give a loss too noisy to stop on
# the GRU's width: sampling costs its square per character, and a few thousand texts teach a
# wider one little more
SMALL_HIDDEN, LARGE_HIDDEN, LARGE_ROWS = 64, 128, 10_000
# an epoch of a small column is this many steps at least (its rows repeated): one pass over a
# few hundred texts is a handful of steps, which teach a character model nothing
MIN_EPOCH_STEPS = 32
LENGTH_GROUP = 16  # batches drawn together and sorted by length
SAMPLE_CHUNK = 4096
MAX_CHECKED = 1_000_000  # runs whose rarity is remembered while sampling
GUARD_TRIES = 8  # characters a text may try at one place before it ends there
REDRAWS = 3  # draws of a text that still breaks a rule (a rare text cut short) before it is cut


class CharNet(nn.Module):
    """Context embedding (one per column token, summed) into a GRU over characters."""

    def __init__(self, context_vocab: list[int], n_codes: int, emb_dim: int, hidden: int):
        super().__init__()
        sizes = torch.tensor(context_vocab or [1], dtype=torch.long)
        self.register_buffer("offsets", torch.cumsum(sizes, 0) - sizes)
        self.has_context = bool(context_vocab)
        self.context = nn.Embedding(int(sizes.sum()), hidden)
        self.chars = nn.Embedding(n_codes, emb_dim)
        self.rnn = nn.GRU(emb_dim, hidden, batch_first=True)
        self.out = nn.Linear(hidden, n_codes)

    def start(self, context: torch.Tensor) -> torch.Tensor:
        """The row's context vector (rows x hidden)."""
        if not self.has_context:
            return self.context.weight.new_zeros(len(context), self.context.embedding_dim)
        return torch.tanh(self.context(context + self.offsets).sum(1))

    def forward(self, context: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        """Logits of every next character (rows x length x codes)."""
        c = self.start(context)
        hidden, _ = self.rnn(self.chars(inputs), c[None].contiguous())
        return self.out(hidden + c[:, None])

    def step(self, c: torch.Tensor, h: torch.Tensor, code: torch.Tensor):
        """One character on: (logits of the next one, new hidden state)."""
        out, h = self.rnn(self.chars(code)[:, None], h)
        return self.out(out[:, 0] + c), h


class TextModel(StoredModel):
    """``alphabet``: the characters seen in at least k rows; ``salt``: the key of the hashes."""

    def __init__(
        self,
        context_vocab: list[int],
        alphabet: str,
        max_length: int,
        salt: str,
        ngram: int = NGRAM,
        emb_dim: int = 32,
        hidden: int = 128,
        noise: float = NOISE,
        hashes: tuple[int, int] = (0, 0),
    ):
        """``hashes``: how many rare texts and rare runs the model keeps hashes of."""
        self.params = {
            "context_vocab": list(context_vocab),
            "alphabet": alphabet,
            "max_length": max_length,
            "salt": salt,
            "ngram": ngram,
            "emb_dim": emb_dim,
            "hidden": hidden,
            "noise": noise,
            "hashes": list(hashes),
        }
        self.codes = {ch: i + 4 for i, ch in enumerate(alphabet)}
        self.net = CharNet(context_vocab, len(alphabet) + 4, emb_dim, hidden)
        self.rare_texts: set[int] = set()
        self.rare_runs: set[int] = set()
        self._checked: dict[str, bool] = {}

    # -- training data and protection ----------------------------------------------------------
    @classmethod
    def build(
        cls, context_vocab: list[int], texts: list[str], max_length: int, k: int, salt: str
    ) -> TextModel:
        """A fresh model for ``texts`` (each row's text, no NULLs): its alphabet and the hashes
        of what occurs in fewer than ``k`` rows."""
        chars = Counter(ch for text in texts for ch in set(text[:max_length]))
        alphabet = "".join(sorted(ch for ch, rows in chars.items() if rows >= k))
        hidden = SMALL_HIDDEN if len(texts) < LARGE_ROWS else LARGE_HIDDEN
        noise = NOISE if k > 1 else 0.0  # rare_threshold => 1: no value protection at all
        model = cls(context_vocab, alphabet, max_length, salt, hidden=hidden, noise=noise)
        counts = Counter(texts)
        model.rare_texts = {model.digest(t) for t, rows in counts.items() if rows < k}
        runs = Counter(r for text in counts.elements() for r in set(model.runs(text)))
        model.rare_runs = {model.digest(r) for r, rows in runs.items() if rows < k}
        model.params["hashes"] = [len(model.rare_texts), len(model.rare_runs)]
        return model

    def runs(self, text: str) -> list[str]:
        n = self.params["ngram"]
        return [text[i : i + n] for i in range(len(text) - n + 1)]

    def digest(self, text: str) -> int:
        key = bytes.fromhex(self.params["salt"])
        raw = hashlib.blake2b(text.encode(), key=key, digest_size=8).digest()
        return int.from_bytes(raw, "little", signed=True)

    def encode(self, texts: list[str]) -> np.ndarray:
        """Rows x (max_length + 2) codes: START, the characters (unknown ones UNKNOWN), END."""
        width = self.params["max_length"] + 2
        out = np.zeros((len(texts), width), dtype=np.int64)
        for row, text in enumerate(texts):
            text = text[: self.params["max_length"]]
            codes = [START, *(self.codes.get(ch, UNKNOWN) for ch in text), END]
            out[row, : len(codes)] = codes
        return out

    def first_unsafe(self, text: str) -> int | None:
        """Where the first rare run of ``text`` ends (its length when the whole text is a rare
        training text), None when the text is safe."""
        for end, run in enumerate(self.runs(text), start=self.params["ngram"]):
            if self.rare_run(run):
                return end
        return len(text) if self.digest(text) in self.rare_texts else None

    def rare_run(self, run: str) -> bool:
        """Whether ``run`` occurs in fewer than k training rows (answers kept: runs repeat)."""
        known = self._checked.get(run)
        if known is None:
            if len(self._checked) > MAX_CHECKED:
                self._checked.clear()
            known = self._checked[run] = self.digest(run) in self.rare_runs
        return known

    # -- training ------------------------------------------------------------------------------
    def fit(
        self, context: np.ndarray, codes: np.ndarray, config: FitConfig, progress: Progress
    ) -> dict:
        budget = TimeBudget(config.max_time)
        generator = torch.Generator().manual_seed(config.seed)
        order = torch.randperm(len(codes), generator=generator)
        n_val = int(len(codes) * config.validation_share) if len(codes) >= 50 else 0
        ctx, data = torch.as_tensor(context), torch.as_tensor(codes)
        val, train = order[:n_val], order[n_val:]
        batch = max(1, min(config.batch_size or min(512, max(32, len(train) // 32)), len(train)))
        optimizer = torch.optim.AdamW(self.net.parameters(), lr=PEAK_LR, weight_decay=0.01)
        batches: list[torch.Tensor] = []

        lengths = (data != PAD).sum(1)
        passes = math.ceil(MIN_EPOCH_STEPS * batch / len(train))  # a small column, repeated
        steps = math.ceil(passes * len(train) / batch)

        def start_epoch() -> None:
            self.net.train()
            shuffled = [
                train[torch.randperm(len(train), generator=generator)] for _ in range(passes)
            ]
            batches[:] = by_length(torch.cat(shuffled), lengths, batch, generator)

        def step(epoch: int) -> Step:
            rows = batches.pop(0)
            loss = self.loss(ctx[rows], data[rows], generator)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(self.net.parameters(), 1.0)
            optimizer.step()
            return Step({"train_loss": float(loss.detach())}, weight=len(rows))

        def after_step(done: float) -> None:
            for group in optimizer.param_groups:
                group["lr"] = PEAK_LR * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * done)))

        @torch.no_grad()
        def validation(entry: dict) -> dict:
            if not n_val:
                return {"val_loss": entry["train_loss"]}
            self.net.eval()
            return {"val_loss": float(self.loss(ctx[val], data[val], None))}

        watch = n_val >= MIN_VALIDATION_ROWS
        stopping = EarlyStopping(self.net, config.patience, 0.5) if watch else None
        with single_thread():  # small steps: a second thread only spins against other work
            fitted = run_epochs(
                config, budget, progress, steps, step,
                start_epoch=start_epoch, after_step=after_step, end_epoch=validation,
                early_stopping=stopping,
                resumable=Resumable({"net": self.net}, {"adamw": optimizer}, {"rows": generator}),
            )  # fmt: skip
        self.net.eval()
        losses = [entry["val_loss"] for entry in fitted["history"]]
        return fitted | {"best_val_loss": stopping.best if stopping else min(losses, default=None)}

    def loss(self, context, codes, generator: torch.Generator | None) -> torch.Tensor:
        """Mean cross-entropy of each next character; with ``generator``, input characters
        are replaced by UNKNOWN at the noise rate."""
        width = int((codes != PAD).sum(1).max())
        codes = codes[:, :width]
        inputs, targets = codes[:, :-1], codes[:, 1:]
        if generator is not None and self.params["noise"] > 0:
            hide = torch.rand(inputs.shape, generator=generator) < self.params["noise"]
            inputs = torch.where(hide & (inputs > END), UNKNOWN, inputs)
        logits = self.net(context, inputs)
        return nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=PAD
        )

    # -- sampling ------------------------------------------------------------------------------
    @torch.no_grad()
    def sample(
        self, context: np.ndarray, config: SampleConfig, generator: torch.Generator
    ) -> list[str]:
        """One protected text per row of ``context`` (rows x the main network's columns)."""
        texts = self._draw(context, config, generator)
        # drawing never completes a rare run; a text forced to end (its longest length, or no
        # character left to try) may still be a rare training text
        unsafe = [i for i, t in enumerate(texts) if self.digest(t) in self.rare_texts]
        for _ in range(REDRAWS):
            if not unsafe:
                return texts
            redrawn = self._draw(context[unsafe], config, generator)
            for i, text in zip(unsafe, redrawn, strict=True):
                texts[i] = text
            unsafe = [i for i in unsafe if self.first_unsafe(texts[i]) is not None]
        for i in unsafe:  # still unsafe: cut before the rare run
            text = texts[i]
            while text and (end := self.first_unsafe(text)) is not None:
                text = text[: end - 1]
            texts[i] = text
        return texts

    def _draw(self, context: np.ndarray, config: SampleConfig, generator) -> list[str]:
        """Texts for ``context``'s rows, drawn in chunks on threads (one generator per chunk,
        seeded in order: the texts do not depend on thread scheduling)."""
        self.net.eval()
        starts = range(0, len(context), SAMPLE_CHUNK)
        seeds = torch.randint(0, 2**62, (len(starts),), generator=generator).tolist()

        def run(k: int) -> list[str]:
            chunk = context[starts[k] : starts[k] + SAMPLE_CHUNK]
            return self._draw_chunk(chunk, config, torch.Generator().manual_seed(seeds[k]))

        return [text for texts in map_chunks(run, len(starts)) for text in texts]

    def _draw_chunk(self, context: np.ndarray, config: SampleConfig, generator) -> list[str]:
        n_codes, longest = len(self.params["alphabet"]) + 4, self.params["max_length"]
        allowed = np.ones(n_codes, dtype=bool)
        allowed[[PAD, START, UNKNOWN]] = False
        only_end = np.zeros(n_codes, dtype=bool)
        only_end[END] = True
        lookup = np.array(["", "", "", "", *self.params["alphabet"]], dtype=object)
        guarded = bool(self.rare_runs or self.rare_texts)  # rare_threshold => 1: nothing is
        c = self.net.start(torch.as_tensor(context))
        h, code = c[None].contiguous(), torch.full((len(context),), START)
        texts = [""] * len(context)
        rows = np.arange(len(context))  # the rows still writing: finished ones are dropped
        for t in range(longest + 1):
            logits, h = self.net.step(c, h, code)
            mask = np.tile(allowed if t < longest else only_end, (len(rows), 1))
            if guarded:
                code = self._guarded(logits, mask, config, generator, [texts[r] for r in rows])
            else:
                code = sample_logits(logits, config, generator, mask)
            going = (code != END).numpy()
            for row, char in zip(rows[going], lookup[code.numpy()[going]], strict=True):
                texts[row] += char
            if t == longest or not going.any():
                break
            kept = torch.from_numpy(going)
            rows, c, h, code = rows[going], c[kept], h[:, kept].contiguous(), code[kept]
        return texts

    def _guarded(self, logits, mask: np.ndarray, config, generator, texts: list[str]):
        """The next character of each text, none completing a rare run nor (END) a rare
        training text: a character that would is taken out and the row draws again; a row
        left with nothing ends there."""
        code = sample_logits(logits, config, generator, mask)
        pending = range(len(texts))
        for _ in range(GUARD_TRIES):
            codes = code.tolist()
            bad = [j for j in pending if self.completes_rare(texts[j], codes[j])]
            if not bad:
                return code
            mask[bad, code[bad].numpy()] = False
            mask[np.array(bad)[~mask[bad].any(1)], END] = True
            code[bad] = sample_logits(logits[bad], config, generator, mask[bad])
            pending = bad
        codes = code.tolist()
        code[[j for j in pending if self.completes_rare(texts[j], codes[j])]] = END
        return code

    def completes_rare(self, text: str, code: int) -> bool:
        """Whether writing ``code`` after ``text`` completes a rare run, or ends a rare text."""
        if code == END:
            return self.digest(text) in self.rare_texts
        run = (text + self.params["alphabet"][code - 4])[-self.params["ngram"] :]
        return len(run) == self.params["ngram"] and self.rare_run(run)

    # -- storage ---------------------------------------------------------------------------------
    def hyper_parameters(self) -> dict:
        return dict(self.params)

    def state(self) -> tuple[dict, dict[str, torch.Tensor]]:
        tensors = network_tensors(self.net, "net.")
        tensors["rare_texts"] = torch.tensor(sorted(self.rare_texts), dtype=torch.int64)
        tensors["rare_runs"] = torch.tensor(sorted(self.rare_runs), dtype=torch.int64)
        return self.hyper_parameters(), tensors

    @classmethod
    def restore(cls, params: dict, tensors: dict[str, torch.Tensor]) -> TextModel:
        model = cls(**params)
        load_network(model.net, {k: v for k, v in tensors.items() if k.startswith("net.")}, "net.")
        model.rare_texts = set(tensors["rare_texts"].tolist())
        model.rare_runs = set(tensors["rare_runs"].tolist())
        return model


def by_length(rows: torch.Tensor, lengths: torch.Tensor, batch: int, generator) -> list:
    """``rows`` in batches of texts of similar lengths, in random order: a batch is as long as
    its longest text, so a few long texts among short ones cost many padded steps."""
    group = batch * LENGTH_GROUP
    parts = []
    for start in range(0, len(rows), group):
        chunk = rows[start : start + group]
        parts += list(chunk[torch.argsort(lengths[chunk], stable=True)].split(batch))
    return [parts[i] for i in torch.randperm(len(parts), generator=generator).tolist()]
