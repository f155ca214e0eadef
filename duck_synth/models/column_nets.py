"""The autoregressive method's network: one small MLP per column over the known cells.

Kept apart from the model (autoregressive.py: training, sampling, continued training), which
only calls its loss, its first layer's precomputed deltas and its heads.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

# Layer one as a gather of per-token products (each token's embedding times its block of w1, built
# each step) instead of the cells' embeddings times w1, when a batch has this many cells per token
# or more (the gather costs per cell, the products per token). On two CPU threads, forward and
# backward: flights by plane's steps (38 columns, 3,197 tokens, 2,048 rows) 43 -> 26 ms, 23
# columns of 100 values 57 -> 31 ms; with fewer cells per token (small batches, columns of 1,000
# values) the gather lost (0.6 -> 0.7 ms, 9 -> 21 ms)
GATHER_RATIO = 8


class ColumnNets(nn.Module):
    """One two-layer MLP per column, all fed the embeddings of the known cells.

    Tokens of ordered columns (numbers, dates) carry a position in [-1, 1]. It enters both ends:
    each such column's embedding gets ``position * direction``, and each such column's logits get
    a linear and a quadratic term in position, so "larger age, larger wage" is one learned
    direction instead of a hundred separate bin embeddings, which small tables cannot teach.
    """

    def __init__(
        self,
        vocab_sizes: list[int],
        emb_dim: int,
        hidden: int,
        dropout: float,
        positions: list[np.ndarray | None] | None = None,
        context: int = 0,
    ):
        super().__init__()
        self.vocab_sizes = list(vocab_sizes)
        self.context = context  # the first columns are only ever inputs: no net of their own
        n = len(vocab_sizes)
        predicted = n - context
        # +1: the mask token; long even when empty (every column constant: no net to fit)
        sizes = torch.tensor([v + 1 for v in vocab_sizes], dtype=torch.long)
        self.register_buffer("offsets", torch.cumsum(sizes, 0) - sizes)
        self.register_buffer("mask_tokens", torch.tensor(vocab_sizes, dtype=torch.long))
        self.register_buffer("token_column", torch.repeat_interleave(torch.arange(n), sizes))
        self.register_buffer("positions", _flat_positions(vocab_sizes, positions))
        self.embed = nn.Embedding(int(sizes.sum()), emb_dim)
        self.directions = nn.Parameter(torch.zeros(n, emb_dim))
        fan_in = n * emb_dim
        self.w1 = nn.Parameter(torch.randn(predicted, fan_in, hidden) / math.sqrt(fan_in))
        self.b1 = nn.Parameter(torch.zeros(predicted, hidden))
        self.w2 = nn.Parameter(torch.randn(predicted, hidden, hidden) / math.sqrt(hidden))
        self.b2 = nn.Parameter(torch.zeros(predicted, hidden))
        self.heads = nn.ModuleList(nn.Linear(hidden, v) for v in vocab_sizes[context:])
        self.shifts = nn.Parameter(torch.zeros(predicted, hidden, 2))
        self.dropout = nn.Dropout(dropout)

    def token_table(self) -> torch.Tensor:
        """Every token's embedding, its position's share included."""
        return self.embed.weight + self.positions[:, None] * self.directions[self.token_column]

    def head(self, c: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Column c's output layer with its position shift folded in: the logits' terms
        ``(h · s1) * position + (h · s2) * position²`` are a rank-two update of the weights."""
        start, k = self.offsets[c], c - self.context
        position = self.positions[start : start + self.vocab_sizes[c], None]
        shift = self.shifts[k].T  # (2, hidden)
        weight = self.heads[k].weight + position * shift[0] + position.square() * shift[1]
        return weight, self.heads[k].bias

    def logits(self, c: int, hidden: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(hidden, *self.head(c))

    def hidden_all(self, tokens: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
        """(predicted columns, batch, hidden): each predicted column's net given the known cells."""
        idx = self._cells(tokens, known)
        if len(self.w1) and len(self.token_column) * GATHER_RATIO <= idx.numel():
            layer_one = nn.functional.embedding_bag(idx, self._token_products(), mode="sum")
        else:
            layer_one = self._products(nn.functional.embedding(idx, self.token_table()))
        return self._rest(layer_one)[-1]

    def _layers(self, tokens: torch.Tensor, known: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The forward pass up to the hidden states, with what clipped_gradients measures:
        (cell indices, embeddings (rows x columns x emb), layer one's input, its output, layer
        two's input, hidden states (predicted columns x rows x hidden))."""
        idx = self._cells(tokens, known)
        embedded = nn.functional.embedding(idx, self.token_table())
        return idx, embedded, *self._rest(self._products(embedded))

    def _cells(self, tokens: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
        """Each cell's row of the token table: its token, or its column's mask token."""
        return torch.where(known, tokens, self.mask_tokens) + self.offsets

    def _layer_one_weights(self) -> torch.Tensor:
        """w1 as (columns x emb, predicted columns x hidden): one product for every net."""
        return self.w1.permute(1, 0, 2).reshape(self.w1.shape[1], -1)

    def _products(self, embedded: torch.Tensor) -> torch.Tensor:
        """Layer one's product (rows, predicted columns x hidden) from the cells' embeddings."""
        return embedded.reshape(embedded.shape[0], -1) @ self._layer_one_weights()

    def _token_products(self) -> torch.Tensor:
        """Every token's share of layer one's product (tokens, predicted columns x hidden): a
        row's product is the sum of its cells' rows, a gather instead of a matmul."""
        products = self._layer_one_weights()
        weights = products.reshape(len(self.vocab_sizes), self.embed.embedding_dim, -1)
        table, sizes = self.token_table(), [v + 1 for v in self.vocab_sizes]
        return torch.cat([part @ w for part, w in zip(table.split(sizes), weights, strict=True)])

    def _rest(self, layer_one: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """From layer one's product: (its input with bias, its output, layer two's input, hidden
        states), each predicted columns x rows x hidden."""
        n_rows, n_nets = layer_one.shape[0], len(self.w1)
        h1_in = (
            layer_one.reshape(n_rows, n_nets, self.b1.shape[1]).permute(1, 0, 2) + self.b1[:, None]
        )
        h1 = self.dropped(torch.relu(h1_in))
        h2_in = torch.bmm(h1, self.w2) + self.b2[:, None]
        return h1_in, h1, h2_in, h1 + self.dropped(torch.relu(h2_in))

    def dropped(self, hidden: torch.Tensor) -> torch.Tensor:
        """Dropout with one mask per row, shared by every column's net: the nets are separate,
        so each still sees plain dropout, and drawing (rows x hidden) random numbers instead of
        (columns x rows x hidden) was a fifth of a training step's time."""
        p = self.dropout.p
        if not self.training or p == 0.0:
            return hidden
        keep = torch.rand(hidden.shape[1:], device=hidden.device) >= p
        return hidden * (keep.to(hidden.dtype) / (1.0 - p))

    def forward(self, tokens: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
        return self.loss(tokens, known)

    def loss(self, tokens: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
        hidden = self.hidden_all(tokens, known)
        unknown = (~known).float()
        total = tokens.new_zeros((), dtype=torch.float32)
        per_column = hidden.unbind(0)  # one backward node, not one zero-filled select per column
        for k, c in enumerate(range(self.context, len(self.vocab_sizes))):
            logits = self.logits(c, per_column[k])
            nll = nn.functional.cross_entropy(logits, tokens[:, c], reduction="none")
            total = total + (nll * unknown[:, c]).sum()
        return total / unknown.sum().clamp_min(1.0)

    def clipped_gradients(self, tokens: torch.Tensor, known: torch.Tensor, max_norm: float):
        """DP-SGD's clipped sum: each row's gradient (of its mean loss over its unknown cells)
        scaled to norm at most ``max_norm``, summed into every parameter's ``.grad``; returns
        the rows' gradient norms before clipping.

        The norms are found without per-row gradients ("ghost clipping"): every weight here is
        used once per row as a product, so a row's gradient for it is an outer product a ⊗ b of
        the row's input and output gradient, with norm |a| |b|; embedding rows are distinct per
        column, so their squares add up. One backward gives the output gradients, a second one
        the clipped sum. Dropout must be off (each row's graph must be the one measured).
        """
        n_rows = tokens.shape[0]
        idx, embedded, h1_in, h1, h2_in, hidden = self._layers(tokens, known)
        unknown = (~known).float()
        logits, losses = [], tokens.new_zeros(n_rows, dtype=torch.float32)
        per_column = hidden.unbind(0)  # one backward node, not one zero-filled select per column
        for k, c in enumerate(range(self.context, len(self.vocab_sizes))):
            logits.append(self.logits(c, per_column[k]))
            nll = nn.functional.cross_entropy(logits[-1], tokens[:, c], reduction="none")
            losses = losses + nll * unknown[:, c]
        losses = losses / unknown.sum(dim=1).clamp_min(1.0)
        grads = torch.autograd.grad(
            losses.sum(), [embedded, h1_in, h2_in, *logits], retain_graph=True
        )
        g_embedded, g_h1, g_h2, g_logits = grads[0], grads[1], grads[2], grads[3:]
        with torch.no_grad():
            square = lambda x: x.square().sum(dim=-1)  # noqa: E731
            g_cells = square(g_embedded)  # rows x columns
            norms = g_cells.sum(dim=1)  # embed.weight
            norms += (self.positions[idx].square() * g_cells).sum(dim=1)  # directions
            w1_input = square(embedded.reshape(n_rows, -1))
            norms += w1_input * square(g_h1).sum(dim=0) + square(g_h1).sum(dim=0)  # w1, b1
            norms += (square(h1) * square(g_h2)).sum(dim=0) + square(g_h2).sum(dim=0)  # w2, b2
            for k, g in enumerate(g_logits):
                start, size = self.offsets[k + self.context], self.vocab_sizes[k + self.context]
                position = self.positions[start : start + size]
                h = square(per_column[k])
                norms += square(g) * h + square(g)  # head weight and bias
                norms += ((g @ position).square() + (g @ position.square()).square()) * h  # shifts
            norms = norms.sqrt()
            scale = (max_norm / (norms + 1e-6)).clamp(max=1.0)
        (losses * scale).sum().backward()
        return norms

    @torch.no_grad()
    def first_layer_deltas(self) -> tuple[dict[int, torch.Tensor], dict[int, torch.Tensor]]:
        """Layer one, precomputed per predicted column c.

        base[c]: pre-activation when every column is masked. deltas[c][offsets[j] + t]: what
        revealing token t of column j adds to it (zero for the mask token itself).
        """
        n = len(self.vocab_sizes)
        emb_dim = self.embed.embedding_dim
        table = self.token_table()
        bases, deltas = {}, {}
        for c in range(self.context, n):
            w = self.w1[c - self.context].reshape(n, emb_dim, -1)
            parts = [
                table[self.offsets[j] : self.offsets[j] + self.vocab_sizes[j] + 1] @ w[j]
                for j in range(n)
            ]
            masked = torch.stack([p[-1] for p in parts])
            bases[c] = self.b1[c - self.context] + masked.sum(0)
            deltas[c] = torch.cat([p - p[-1] for p in parts]).contiguous()
        return bases, deltas


def _flat_positions(
    vocab_sizes: list[int], positions: list[np.ndarray | None] | None
) -> torch.Tensor:
    """All columns' token positions end to end (mask tokens included), 0 where there is none."""
    parts = []
    for c, size in enumerate(vocab_sizes):
        part = np.zeros(size + 1, dtype=np.float32)
        given = None if positions is None else positions[c]
        if given is not None:
            part[:size] = np.nan_to_num(np.asarray(given, dtype=np.float32), nan=0.0)
        parts.append(part)
    return torch.from_numpy(np.concatenate(parts)) if parts else torch.zeros(0)
