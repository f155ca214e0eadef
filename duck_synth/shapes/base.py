"""What every data shape provides: its training plan, its loading and its sampler.

A shape is how a model sees its data: rows of a table, sessions learned by two networks, or
sessions learned jointly by one. train() asks the chosen shape for a ``TrainingPlan`` (the
encoders and the networks to fit, with their data) and stores what the shape adds to the
model's statistics; generate() asks the record's shape to load it and for a sampler that draws
batches. train.py and generate.py never ask which shape they run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import duckdb
import numpy as np
import pyarrow as pa
import torch

from ..encoding import Encoder, Protection, read_type
from ..models import create_model
from ..models.base import AnyModel
from ..options import TrainOptions
from ..privacy import PrivacyBudget
from ..sqltext import quote_identifier

if TYPE_CHECKING:
    from ..catalog import ModelRecord
    from ..conditions import CompiledFilter
    from ..options import GenerateOptions
    from .rows import RowSampler

PILOT_BATCH, SCHEMA_BATCH = 2**40, 2**40 + 1  # batch numbers no real batch reaches
STEPS_BATCH_OFFSET = 2**41  # a session batch's steps draw from their own seeded generators


@dataclass
class Training:
    """What train() settled before a shape plans: the options, the method, the seed, and how
    the statistics are protected (rare values, a DP budget)."""

    options: TrainOptions
    method: str
    seed: int
    protection: Protection
    budget: PrivacyBudget | None = None


@dataclass
class TrainingPart:
    """One network to fit: ``name`` prefixes its tensors ('' for the main one)."""

    name: str
    model: AnyModel
    data: tuple[np.ndarray, ...]  # what model.fit takes: (tokens,), or a session model's arrays
    time_share: float
    learns: bool = True  # False: every column is given or constant, nothing to fit
    # its epochs are the run's times this: a small network beside a large one (a session model's
    # sessions beside its steps) gets as many optimizer steps, not a few dozen
    epochs_factor: int = 1


@dataclass
class TrainingPlan:
    encoders: list[Encoder]  # the main model's columns
    columns: list[dict]  # the output's columns: name, DuckDB type, kind
    parts: list[TrainingPart]
    training_rows: int  # what target counts by default: rows, or sessions
    rows: int  # source rows read
    facts: dict | None = None  # column facts replacing the source's (DP: only what was released)
    stored: dict = field(default_factory=dict)  # what the shape adds to the model's statistics
    summary: dict = field(default_factory=dict)  # what it adds to train()'s summary row


@dataclass
class Loaded:
    """A stored model ready to sample: its record, shape, encoders and network."""

    record: ModelRecord
    shape: Shape
    encoders: list[Encoder]
    model: AnyModel | None
    modelled: list[int]  # indexes of encoders the network learns
    texts: dict = field(default_factory=dict)  # column -> its text model (shapes/text.py)

    def column_types(self) -> list[tuple[str, str]]:
        return [(c["name"], c["type"]) for c in self.record.columns]


class Shape(Protocol):
    """A data shape (shapes/__init__.py chooses one per training and per stored model)."""

    name: str
    tabular: bool  # rows are the units: resample() and fairness work on them

    def claims(self, method: str, options: TrainOptions) -> bool:
        """Whether a training of ``method`` with ``options`` has this shape."""

    def owns(self, record: ModelRecord) -> bool:
        """Whether a stored model has this shape."""

    def check(self, method: str, options: TrainOptions) -> None:
        """Refuse (SynthError) train() options this shape cannot train."""

    def plan(
        self,
        con: duckdb.DuckDBPyConnection,
        relation: str,
        columns: list[tuple[str, str]],
        training: Training,
    ) -> TrainingPlan:
        """Read and encode the data; the networks to fit."""

    def stored(self, plan: TrainingPlan, params: dict[str, dict]) -> dict:
        """What the model's statistics keep beyond encoders, model and facts, given each
        fitted part's parameters by part name ('model' for the main one)."""

    def load(self, record: ModelRecord) -> Loaded:
        """The record's encoders and networks, restored."""

    def refuse(self, options: GenerateOptions) -> None:
        """Refuse (SynthError) generate() options this shape cannot draw."""

    def filter_scope(self, loaded: Loaded) -> tuple[list[Encoder], list[str]]:
        """(encoders predicates condition sampling on, other columns predicates may read)."""

    def sampler(
        self, loaded: Loaded, options: GenerateOptions, compiled: CompiledFilter, seed: int
    ) -> RowSampler:
        """What draws this model's batches under a compiled filter."""


def read_sql(
    relation: str, columns: list[tuple[str, str]], options: TrainOptions, seed: int
) -> str:
    """The training read: the columns cast to what the encoders read, strings cleaned as asked,
    ``nrows`` sampled."""
    items = []
    for name, duck_type in columns:
        value = quote_identifier(name)
        if duck_type == "VARCHAR":
            value = f"trim({value})" if options.strip_strings else value
            value = f"NULLIF({value}, '')" if options.empty_strings_as_null else value
        items.append(f"CAST({value} AS {read_type(duck_type)}) AS {quote_identifier(name)}")
    sample = (
        f" USING SAMPLE reservoir({options.nrows} ROWS) REPEATABLE ({seed})"
        if options.nrows
        else ""
    )
    return f"SELECT {', '.join(items)} FROM ({relation}) AS source{sample}"


def modelled(encoders: list[Encoder]) -> list[Encoder]:
    """The encoders a network learns (a constant or key column has no tokens)."""
    return [e for e in encoders if e.n_tokens > 0]


def tokens(encoders: list[Encoder], table: pa.Table) -> np.ndarray:
    """The modelled columns of ``table`` as tokens (rows x columns)."""
    learned = modelled(encoders)
    if not learned:
        return np.zeros((table.num_rows, 0), dtype=np.int64)
    return np.stack([e.encode(table.column(e.name).combine_chunks()) for e in learned], axis=1)


def rows_part(
    name: str,
    method: str,
    encoders: list[Encoder],
    table: pa.Table,
    share: float,
    hyper: dict | None = None,
) -> TrainingPart:
    """A network learning ``table``'s rows as tokens."""
    model = rows_model(method, encoders, hyper)
    learns = bool(modelled(encoders))
    return TrainingPart(name, model, (tokens(encoders, table),), share, learns=learns)


def rows_model(method: str, encoders: list[Encoder], hyper: dict | None = None) -> AnyModel:
    """The network of ``method`` over the encoders' modelled columns, its weights drawn."""
    learned = modelled(encoders)
    return create_model(
        method,
        [e.n_tokens for e in learned],
        [e.token_positions() for e in learned],
        [e.token_spans() for e in learned],
        **(hyper or {}),
    )


def batch_generators(seed: int, batch: int) -> tuple[torch.Generator, np.random.Generator]:
    """The seeded generators of one batch: the same seed and batch draw the same values."""
    return (
        torch.Generator().manual_seed(seed * 1_000_003 + batch),
        np.random.default_rng([seed, batch]),
    )
