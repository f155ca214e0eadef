"""Any-order autoregressive model over columns (method ``autoregressive``).

Every modelled column c has its own small MLP that predicts p(x_c | x_S) from the embeddings
of the columns in a known set S (unknown columns show a learned mask embedding). Training draws
S as a prefix of a random column order (half of the rows use the table's own order, which
unconditional sampling follows), so any subset of columns can be conditioned on: fixed values,
or sampling restricted to allowed values. This is the ARGN idea (per-column heads over earlier
columns) trained order-agnostically; it is not attention-based.

Sampling is fast because the first layer is linear in the concatenated embeddings: it is
precomputed per (target column, source column, token) and gathered, so one step costs a
hidden x hidden product and one head.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch
from torch import nn

from .base import (
    Conditions,
    FitConfig,
    GenerativeModel,
    Progress,
    SampleConfig,
    map_chunks,
    sample_logits,
)
from .column_nets import ColumnNets
from .loop import (
    EarlyStopping,
    PlateauSchedule,
    Resumable,
    Step,
    TimeBudget,
    cosine_share,
    optimizer_step,
    run_epochs,
)

CANONICAL_ORDER_SHARE = 0.5
PEAK_LR = 3e-3
# AdamW's own default; 1e-5 let small tables be memorised (SLID DCR share 0.56-0.57 -> 0.53-0.55)
WEIGHT_DECAY = 0.01
EARLY_STOPPING_FROM = 0.5  # share of the budget (epochs or max_time) before early stopping may act
WARM_START_LR_SHARE = 0.3  # a continued training's peak learning rate, of PEAK_LR
# Fewer validation rows give a loss too noisy to stop on: on Males' steps (349 rows) it stopped
# training at a third of the budget, with wage lag-1 autocorrelation 0.50-0.57 (real 0.65).
MIN_VALIDATION_ROWS = 1_000
# a table that small trains this many optimizer steps at most (without epochs): SLID (16 steps an
# epoch) over seeds 0-2, SDMetrics 0.981 at 100 epochs and 0.982 at 60, in 0.6x the time
SMALL_TABLE_STEPS = 1_000
# hidden units of each column's net; wide tables get more: on movies (23 columns) 64 units drew
# rating given its ten vote shares too loosely (SDMetrics' rating~r1 trend 0.941, TabularARGN
# 0.980); 96: 0.963, SDMetrics overall 0.976 -> 0.982 for 2x the time an epoch (128: 3x)
HIDDEN, WIDE_HIDDEN, WIDE_COLUMNS = 64, 96, 20
MAX_AUTO_BATCH = 2048  # big batches use the CPU well; small tables still get >= 16 steps
SAMPLE_CHUNK = 2048
# a network learning from this many rows or more trains without dropout: the rows regularise it.
# Flights by plane's steps network (238,000 training rows), with dropout 0.1: plateau at epoch 28,
# 35 epochs, 305 s, validation loss 2.433; without: plateau at 26, 33 epochs, 248 s, 2.405
NO_DROPOUT_ROWS = 100_000


class AutoregressiveModel(GenerativeModel):
    method = "autoregressive"

    def __init__(
        self,
        vocab_sizes: list[int],
        emb_dim: int = 16,
        hidden: int | None = None,
        dropout: float = 0.1,
        order: list[int] | None = None,
        positions: list[np.ndarray | None] | None = None,
        context: int = 0,
    ):
        """``positions``: per column, each token's place in [-1, 1] (NaN: none) or None for
        unordered columns; kept with the weights, so a restored model needs none.
        ``context``: the first columns are always given (never predicted), e.g. a session's
        metadata and previous steps when the rows are steps; sampling must fix them.
        ``hidden``: None for 64 units, 96 above 20 predicted columns."""
        if hidden is None:
            hidden = WIDE_HIDDEN if len(vocab_sizes) - context > WIDE_COLUMNS else HIDDEN
        if order is None:
            order = [context + c for c in canonical_order(vocab_sizes[context:])]
        self.params = {
            "vocab_sizes": list(vocab_sizes),
            "emb_dim": emb_dim,
            "hidden": hidden,
            "dropout": dropout,
            "order": list(order),
            "context": context,
        }
        self.net = ColumnNets(vocab_sizes, emb_dim, hidden, dropout, positions, context)
        self._tables: list[torch.Tensor] | None = None

    # -- training ------------------------------------------------------------------------------
    def known_masks(self, n_rows: int, generator: torch.Generator) -> torch.Tensor:
        """Which cells are given: the context, then a prefix of a random order of the rest
        (for a share of the rows the canonical order) of random length."""
        context = self.params.get("context", 0)
        n_cols = len(self.params["vocab_sizes"]) - context
        ranks = torch.argsort(torch.rand(n_rows, n_cols, generator=generator), dim=1)
        canonical = torch.rand(n_rows, generator=generator) < CANONICAL_ORDER_SHARE
        order = torch.tensor(self.params["order"]) - context
        ranks[canonical] = torch.argsort(order)
        cut = torch.randint(0, n_cols, (n_rows, 1), generator=generator)
        given = torch.ones(n_rows, context, dtype=torch.bool)
        return torch.cat([given, ranks < cut], dim=1)

    def fit(self, tokens: np.ndarray, config: FitConfig, progress: Progress) -> dict:
        if config.privacy is not None:
            from .private_fit import fit_private  # Opacus is imported only for DP

            return fit_private(self, tokens, config, progress)
        budget = TimeBudget(config.max_time)
        device = torch.device(config.device)
        generator = torch.Generator().manual_seed(config.seed)
        torch.manual_seed(config.seed)
        train, val, val_known = self._split(tokens, config, generator, device)
        workers = config.sync.size if config.sync is not None else 1
        if len(train) * workers >= NO_DROPOUT_ROWS:  # all workers' rows: one rule for any count
            self.params["dropout"] = self.net.dropout.p = 0.0
        self.net.to(device)
        peak = PEAK_LR * (WARM_START_LR_SHARE if config.warm_start else 1.0)
        optimizer = torch.optim.AdamW(self.net.parameters(), lr=peak, weight_decay=WEIGHT_DECAY)
        batch = batch_size(config, len(train))
        order: list[torch.Tensor] = []

        def start_epoch() -> None:
            self.net.train()
            order[:] = torch.randperm(len(train), generator=generator).to(device).split(batch)

        def step(epoch: int) -> Step:
            rows = train[order.pop(0)]
            loss = self.net.loss(rows, self.known_masks(len(rows), generator).to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer_step(optimizer, config.sync)
            return Step({"train_loss": float(loss.detach())}, weight=len(rows))

        steps = math.ceil(len(train) / batch)
        # fewer validation rows give a loss too noisy to stop on: the last weights are kept,
        # and the learning rate follows the budget (the training loss would stop it too soon)
        watch = len(val) >= MIN_VALIDATION_ROWS
        if config.adaptive and not watch and not self.params.get("context"):
            # a table's rows: the budget is optimizer steps, not the epochs' cap
            epochs = max(1, math.ceil(SMALL_TABLE_STEPS / steps))
            config = dataclasses.replace(config, epochs=min(config.epochs, epochs))
        plateau = PlateauSchedule(steps, config.epochs) if config.adaptive and watch else None

        def after_step(done: float) -> None:
            share = plateau.share(done) if plateau else cosine_share(done)
            for group in optimizer.param_groups:
                group["lr"] = share * peak

        def validation(entry: dict) -> dict:
            loss = self._validation_loss(val, val_known) if len(val) else entry["train_loss"]
            if plateau:
                plateau.epoch_end(loss, entry["epoch"])
            return {"val_loss": loss}

        start = 0.0 if config.warm_start else EARLY_STOPPING_FROM
        finished = plateau.finished if plateau else None
        stopping = EarlyStopping(self.net, config.patience, start, finished=finished)
        fitted = run_epochs(
            config, budget, progress, steps, step,
            start_epoch=start_epoch, after_step=after_step, end_epoch=validation,
            early_stopping=stopping if watch else None,
            resumable=Resumable({"net": self.net}, {"adamw": optimizer}, {"order": generator},
                                {"plateau": plateau} if plateau else {}),
        )  # fmt: skip
        self.net.to("cpu").eval()
        losses = [entry["val_loss"] for entry in fitted["history"]]
        return fitted | {"best_val_loss": stopping.best if watch else min(losses)}

    def _split(self, tokens: np.ndarray, config: FitConfig, generator, device):
        """(training rows, validation rows, the validation rows' known-column masks)."""
        data = torch.as_tensor(tokens, dtype=torch.long)
        order = torch.randperm(len(data), generator=generator)
        n_val = int(len(data) * config.validation_share) if len(data) >= 50 else 0
        val, train = data[order[:n_val]].to(device), data[order[n_val:]].to(device)
        val_known = self.known_masks(len(val), torch.Generator().manual_seed(config.seed + 1))
        return train, val, val_known.to(device)

    @torch.no_grad()
    def _validation_loss(self, val: torch.Tensor, known: torch.Tensor) -> float:
        self.net.eval()
        total = 0.0
        for i in range(0, len(val), 4096):
            total += float(self.net.loss(val[i : i + 4096], known[i : i + 4096])) * len(
                val[i : i + 4096]
            )
        return total / len(val)

    # -- sampling ------------------------------------------------------------------------------
    @torch.no_grad()
    def sample(
        self, n: int, conditions: Conditions, config: SampleConfig, generator: torch.Generator
    ) -> np.ndarray:
        net = self.net.eval()
        if self._tables is None:
            self._base, self._tables = net.first_layer_deltas()
            self._heads = {c: net.head(c) for c in self._base}
        n_cols = len(self.params["vocab_sizes"])
        order = [c for c in conditions.first if c not in conditions.fixed]
        order += [c for c in self.params["order"] if c not in order and c not in conditions.fixed]
        out = np.empty((n, n_cols), dtype=np.int64)
        starts = range(0, n, SAMPLE_CHUNK)
        # one generator per chunk, seeded in order: the rows do not depend on thread scheduling
        seeds = torch.randint(0, 2**62, (len(starts),), generator=generator).tolist()

        def run(k: int) -> None:
            start, stop = starts[k], min(starts[k] + SAMPLE_CHUNK, n)
            chunk_gen = torch.Generator().manual_seed(seeds[k])
            out[start:stop] = self._sample_chunk(start, stop, order, conditions, config, chunk_gen)

        map_chunks(run, len(starts))
        return out

    def _sample_chunk(self, start, stop, order, conditions, config, generator) -> np.ndarray:
        """Sample ``order`` column by column; layer one is accumulated as columns become known."""
        net, deltas = self.net, self._tables
        n_rows, n_cols = stop - start, len(self.params["vocab_sizes"])
        tokens = torch.zeros(n_rows, n_cols, dtype=torch.long)
        pending = {c: self._base[c].expand(n_rows, -1).clone() for c in order}

        def reveal(j: int, values: torch.Tensor) -> None:
            rows = values + net.offsets[j]
            for c, acc in pending.items():
                acc += deltas[c].index_select(0, rows)

        for c, values in conditions.fixed.items():
            tokens[:, c] = torch.as_tensor(values[start:stop])
            reveal(c, tokens[:, c])
        for c in order:
            h = torch.relu(pending.pop(c))
            k = c - net.context
            h = h + torch.relu(torch.addmm(net.b2[k], h, net.w2[k]))
            logits = nn.functional.linear(h, *self._heads[c])
            choice = sample_logits(logits, config, generator, conditions.allowed.get(c))
            tokens[:, c] = choice
            if pending:
                reveal(c, choice)
        return tokens.numpy()

    # -- continued training ------------------------------------------------------------------
    def grown(
        self, origins: list[np.ndarray], positions: list[np.ndarray | None]
    ) -> AutoregressiveModel:
        """This model over columns whose tokens grew: ``origins[c][t]`` is the old token that
        new token t of column c was (or was drawn as: a category the model had not kept was
        its rare token). A token starts with its origin's weights, and tokens sharing an
        origin share its probability; every other weight is kept, so training continues
        where it was (duck_synth/continued.py)."""
        p, old = self.params, self.net.state_dict()
        sizes = [len(origin) for origin in origins]
        model = AutoregressiveModel(
            sizes, p["emb_dim"], p["hidden"], p["dropout"], p["order"], positions, p["context"]
        )
        state = model.net.state_dict()
        for name in ("directions", "w1", "b1", "w2", "b2", "shifts"):
            state[name] = old[name]
        rows = []
        for c, (size, origin) in enumerate(zip(p["vocab_sizes"], origins, strict=True)):
            start = int(self.net.offsets[c])
            own = old["embed.weight"][start : start + size + 1]  # the mask token last
            rows += [own[torch.as_tensor(origin)], own[size:]]
        state["embed.weight"] = torch.cat(rows)
        for k, c in enumerate(range(p["context"], len(sizes))):
            origin = torch.as_tensor(origins[c])
            shared = torch.bincount(origin, minlength=p["vocab_sizes"][c])[origin]
            state[f"heads.{k}.weight"] = old[f"heads.{k}.weight"][origin]
            state[f"heads.{k}.bias"] = old[f"heads.{k}.bias"][origin] - shared.float().log()
        model.net.load_state_dict(state)
        return model

    # -- storage ---------------------------------------------------------------------------------
    def hyper_parameters(self) -> dict:
        return dict(self.params)


def canonical_order(vocab_sizes: list[int]) -> list[int]:
    """Columns with few values first, so the many-valued ones (amounts, dates) are sampled
    given everything else, the conditional that prediction from the synthetic data needs."""
    return sorted(range(len(vocab_sizes)), key=lambda c: (vocab_sizes[c], c))


def batch_size(config: FitConfig, rows: int) -> int:
    """The batch asked for, or one from the data size (at least 16 steps an epoch)."""
    return max(1, min(config.batch_size or min(MAX_AUTO_BATCH, max(64, rows // 16)), rows))


def steps_per_epoch(rows: int) -> int:
    """Optimizer steps an epoch of ``rows`` takes with the batch chosen from the data size."""
    return math.ceil(rows / batch_size(FitConfig(epochs=1, max_time=math.inf), max(rows, 1)))
