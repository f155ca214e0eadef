"""train(): read a table or query, analyse and encode it, fit a model, store it in the catalog.

Bad input is refused before anything is written. Once the run starts it is recorded in
``synth.runs``; the model row is added in one transaction at the very end, so a failed or
interrupted training adds no model. How the data is read, encoded and learned is its shape's
(duck_synth/shapes/): a table, or sessions; this module runs any shape's plan the same way.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass

import duckdb
import numpy as np
import torch
from safetensors.torch import save as save_tensors
from sqlglot import exp

from . import caller, catalog, checkpoints, continued, relational, shapes
from .conditions import parse_predicate
from .encoding import Protection, unsupported_reason
from .errors import SynthError
from .fitting import fit_parts
from .models import choose_method
from .models.base import Cancelled
from .models.loop import TimeBudget
from .options import TrainOptions, parse
from .privacy import ColumnBudget, PrivacyBudget
from .recommend import rank, shape_of
from .shapes import Shape, Training, TrainingPlan
from .sources import describe, listed_names, read_source
from .sqltext import DUCKDB, quote_identifier
from .threads import torch_threads, training_threads


def select_columns(columns: list[tuple[str, str]], options: TrainOptions) -> list[tuple[str, str]]:
    names = [c for c, _ in columns]
    for given in (options.columns or []) + (options.exclude or []) + list(options.encoding):
        if given not in names:
            raise SynthError(f"unknown column '{given}' (source columns: {', '.join(names)})")
    chosen = [c for c in columns if options.columns is None or c[0] in options.columns]
    chosen = [c for c in chosen if c[0] not in (options.exclude or [])]
    if not chosen:
        raise SynthError("train(): no columns left to train on")
    for name, duck_type in chosen:
        reason = unsupported_reason(duck_type)
        if reason:
            raise SynthError(f"column '{name}': {reason}; exclude it (exclude => ['{name}'])")
    return chosen


def train(
    con: duckdb.DuckDBPyConnection,
    name: str,
    source: str,
    options_json: str,
    before_commit: Callable[[dict], object] | None = None,
) -> dict:
    """Train a model and return its summary row. ``before_commit(summary)`` runs in the
    transaction that adds the model (e.g. spooling the statement's result): if it fails, no
    model is added and the run is failed.

    >>> FROM train('d', 'diamonds', max_time => 60)
    -- model | version | method | rows | columns | epochs | seconds | ...
    """
    options = parse(TrainOptions, "train", options_json)
    time_budget = TimeBudget(options.max_time)  # max_time counts reading and encoding too
    if not isinstance(name, str) or not catalog.MODEL_NAME.match(name or ""):
        raise SynthError(f"train(): model name must be letters, digits, _ . -, got {name!r}")
    if (tables := listed_names(source)) is not None:  # a database
        if options.resume or options.resume_run:
            raise SynthError("train(): resume is for one table's training, not a database")
        if options.engine != "local":
            raise SynthError("train(): engine => 'ray' is for one table's training, not a database")
        return relational.train_database(con, name, tables, options, before_commit)
    if options.relations is not None or options.keep_orphans:
        raise SynthError("train(): relations and keep_orphans are for a list of tables")
    options, parent = continued.parent_of(con, options)
    seed = (
        options.seed
        if options.seed is not None
        else int.from_bytes(os.urandom(4), "little") & 0x7FFFFFFF
    )
    method = choose_method(parent.method if parent else options.method)
    budget = privacy_budget(options)
    method, why = private_method(method, budget)
    check_engine(options, method)  # before the data is read
    why = f"continues {options.from_model}" if parent else why
    relation = read_source(con, source)
    if parent is None:
        columns = select_columns(describe(con, relation), options)
    else:
        columns = continued.columns_of(parent, describe(con, relation))
    source_rows = con.execute(f"SELECT count(*) FROM ({relation})").fetchone()[0]
    if source_rows == 0:
        raise SynthError(f"train(): the training data '{source}' is empty")
    facts = column_facts(con, relation, columns)
    violated = check_constraints(con, relation, [c for c, _ in columns], options.constraints)
    if method == "auto":
        session_key = options.session_key if options.session_key in dict(columns) else None
        best = rank(shape_of(con, relation, columns, session_key))[0]
        method, why = best.method, f"auto: {best.reason}"
    check_engine(options, method)  # auto chose
    protection = protect(options, method, seed, budget, len(columns))
    shape = shapes.for_training(method, options)
    training = Training(options, method, seed, protection, budget)
    with seeded(seed):  # the networks' initial weights come from the seed too
        if parent is None:
            plan = shape.plan(con, relation, columns, training)
        else:
            plan = continued.plan(con, relation, columns, training, parent)
    if plan.facts is not None:  # what is stored is read through DP too
        facts, violated = plan.facts, {}
    read = Source(name, source, source_rows, facts, violated, why, time_budget)
    return fit_and_store(con, shape, plan, training, read, before_commit)


def check_engine(options: TrainOptions, method: str) -> None:
    """Refuse what ``engine => 'ray'`` does not train (distributed/training.py, loaded only
    when asked)."""
    if options.engine == "ray":
        from .distributed.training import check_options

        check_options(options, method)


@dataclass
class Source:
    """What train() learned of its source before fitting: to store and to report."""

    model: str  # the model's name
    text: str  # the source argument
    rows: int
    facts: dict[str, dict]
    violated: dict[str, int]
    why: str  # why the method was chosen
    time_budget: TimeBudget  # max_time, started when train() began


def private_method(method: str, budget: PrivacyBudget | None) -> tuple[str, str]:
    """(method, why): with a DP budget, a method that supports it (auto: DP-SGD)."""
    if budget is None:
        return method, "chosen"
    if method == "auto":  # not from the data: choosing by its shape would read it
        return "autoregressive", "differential privacy: DP-SGD"
    if method not in PRIVATE_METHODS:
        raise SynthError(
            f"train(): epsilon is supported by methods {' and '.join(PRIVATE_METHODS)}, "
            f"not '{method}'"
        )
    return method, "chosen"


def protect(
    options: TrainOptions, method: str, seed: int, budget: PrivacyBudget | None, n_columns: int
) -> Protection:
    """How the stored statistics are protected: rare values, coarsening, a DP share."""
    protection = Protection(options.rare_threshold, np.random.default_rng(seed))
    if method == "privbayes":  # Hazy's coarsening: few bins and categories keep tables small
        protection.max_bins, protection.max_categories = options.n_bins, options.max_cat
        protection.uniform_bins = options.bin_strategy == "uniform"
    if budget is not None:
        # DP noise comes from the OS, never from the seed; one share more: the row count
        protection.budget = ColumnBudget(
            budget.statistics_epsilon / (n_columns + 1),
            budget.statistics_delta / n_columns,
            np.random.default_rng(),
        )
    return protection


def fit_and_store(
    con: duckdb.DuckDBPyConnection,
    shape: Shape,
    plan: TrainingPlan,
    training: Training,
    source: Source,
    before_commit: Callable[[dict], object] | None = None,
) -> dict:
    """Fit the plan's networks in a recorded run and add the model; its summary row."""
    caller.check()  # cancelled while the data was read: no run is recorded
    name, device = source.model, training.options.device or default_device()
    digest = plan_fingerprint(plan, training)
    resumed = checkpoints.to_resume(con, name, training.options, digest)
    run_id = catalog.start_run(con, name, training.method, source.text)
    saving = None  # DP-SGD's accountant is not checkpointed
    if training.budget is None:
        every = training.options.checkpoint_every
        saving = checkpoints.RunCheckpoints(con, run_id, name, digest, every, resumed)
    threads = training_threads(training.options.threads)
    with recorded_run(con, name, run_id):
        with seeded(training.seed), torch_threads(threads):
            metrics, params, tensors = fit_parts(
                con, run_id, plan, training, source.time_budget, device, saving
            )
        metrics["threads"] = threads
        caller.check()  # a cancel that came in the last step adds no model either
        record = model_record(
            shape, plan, training, source, metrics, params, tensors, device, digest
        )
        summary = summary_row(plan, training, source, metrics, run_id, device)
        summary["resumed_from"] = resumed.run_id if resumed is not None else None

        def commit_with(version: int) -> None:
            summary["version"] = version
            if saving is not None:
                saving.remove()
            if before_commit is not None:
                before_commit(summary)

        catalog.insert_model(con, record, run_id, commit_with)
    return summary


@contextlib.contextmanager
def recorded_run(con: duckdb.DuckDBPyConnection, name: str, run_id: int) -> Iterator[None]:
    """A cancel (or the server's statement timeout) or failure in the block ends the run."""
    try:
        yield
    except (KeyboardInterrupt, Cancelled, duckdb.InterruptException) as error:
        # an interrupt that lands in one of the run's own queries (its progress row, a
        # checkpoint) is the same cancel as one that lands between two steps
        reason = str(error) if isinstance(error, Cancelled) and str(error) else "cancelled"
        detail = "training was cancelled" if reason == "cancelled" else reason
        catalog.finish_run(con, run_id, "cancelled", detail)
        raise SynthError(f"train('{name}'): {reason}; no model was added (run {run_id})") from None
    except BaseException as error:
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        catalog.finish_run(con, run_id, "failed", first)
        if isinstance(error, SynthError):
            raise
        raise SynthError(f"train('{name}') failed: {error}") from error


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """torch's random numbers drawn from ``seed`` (initial weights, batches, masks), the
    caller's generator left as it was: the same data, options and seed give the same model in
    any process, first training or not."""
    with torch.random.fork_rng(devices=range(torch.cuda.device_count())):
        torch.manual_seed(seed)
        yield


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def model_record(
    shape: Shape,
    plan: TrainingPlan,
    training: Training,
    source: Source,
    metrics: dict,
    params: dict,
    tensors: dict,
    device: str,
    digest: str,
) -> catalog.ModelRecord:
    """The model to add: the plan's encoders and columns, the fitted parts, what the shape
    stores beside them; ``digest`` is its plan_fingerprint."""
    budget, main = training.budget, metrics["model"]
    options = stored_options(training)
    statistics = {
        "encoders": [e.to_json() for e in plan.encoders],
        "model": params["model"],
        "facts": source.facts,
    } | shape.stored(plan, params)
    others = {k: v for k, v in metrics.items() if k != "model"}
    return catalog.ModelRecord(
        name=source.model,
        version=0,
        method=training.method,
        source=source.text,
        created=catalog.utc_now(),
        options=options,
        columns=plan.columns,
        statistics=statistics,
        metrics={
            **main,
            **others,
            "seconds": source.time_budget.elapsed(),
            **({"source_rows": source.rows} if budget is None else {}),
            **({"constraint_violations": source.violated} if source.violated else {}),
            **({"privacy": privacy_spent(budget, main)} if budget is not None else {}),
            "fingerprint": digest,
            # DP noise comes from the OS; GPU kernels may add in any order
            "reproducible": budget is None and device == "cpu",
            # a continued training: the version it continues, and what grew
            **(
                {"from_model": plan.summary["from_model"], "continued": plan.summary["changes"]}
                if "from_model" in plan.summary
                else {}
            ),
        },
        weights=save_tensors(tensors),
        training_rows=plan.training_rows,
        format_version=catalog.FORMAT_VERSION,
    )


def stored_options(training: Training) -> dict:
    """The options kept with the model: as given, with the method and seed settled."""
    return {**asdict(training.options), "method": training.method, "seed": training.seed}


# how a run is checkpointed and whether it continues one: never what it learns
# options that do not change what is learned (threads change the last bits: see threads.py)
LIFECYCLE_OPTIONS = ("checkpoint_every", "resume", "resume_run", "threads")


def plan_fingerprint(plan: TrainingPlan, training: Training) -> str:
    """The fingerprint of what ``plan`` fits, with the options ``training`` stores."""
    return fingerprint(plan, [e.to_json() for e in plan.encoders], stored_options(training))


def fingerprint(plan: TrainingPlan, encoders: list[dict], options: dict) -> str:
    """What a reproduction must match: the data as the networks saw it (every part's arrays in
    order, and the encoders that made them) and the options, seed included."""
    learning = {k: v for k, v in options.items() if k not in LIFECYCLE_OPTIONS}
    digest = hashlib.sha256(json.dumps([encoders, learning], sort_keys=True).encode())
    for part in plan.parts:
        for array in part.data:
            if isinstance(array, np.ndarray):
                digest.update(f"{array.dtype}{array.shape}".encode())
                digest.update(np.ascontiguousarray(array).tobytes())
            else:  # rows in blocks elsewhere (distributed/blocks.py): their own digest
                digest.update(f"{len(array)} {array.digest}".encode())
    return digest.hexdigest()[:16]


def summary_row(
    plan: TrainingPlan, training: Training, source: Source, metrics: dict, run_id: int, device: str
) -> dict:
    """train()'s row; epochs and losses are the last part's (the steps of two networks)."""
    budget = training.budget
    last = metrics[plan.parts[-1].name or "model"]
    return {
        "model": source.model,
        "version": None,  # known inside the transaction
        "method": training.method,
        "why": source.why,
        "rows": plan.rows,
        "columns": len(plan.columns),
        "epochs": last["epochs"],
        "seconds": round(source.time_budget.elapsed(), 2),
        "val_loss": last.get("best_val_loss"),
        "stopped": last.get("stopped"),
        "seed": training.seed,
        "run_id": run_id,
        "device": device,
        "threads": metrics.get("threads"),
        "epsilon": (
            privacy_spent(budget, metrics["model"])["epsilon"] if budget is not None else None
        ),
        **plan.summary,
    }


PRIVATE_METHODS = ("autoregressive", "privbayes")


def privacy_budget(options: TrainOptions) -> PrivacyBudget | None:
    """The DP budget train() was given (None: no epsilon, no DP)."""
    if options.epsilon is None:
        if options.noise_multiplier is not None:
            raise SynthError("train(): noise_multiplier needs epsilon (the budget to stop at)")
        return None
    return PrivacyBudget(
        epsilon=options.epsilon,
        delta=options.delta,
        max_grad_norm=options.max_grad_norm,
        noise_multiplier=options.noise_multiplier,
        statistics_share=options.dp_statistics_share,
    )


def privacy_spent(budget: PrivacyBudget, fitted: dict) -> dict:
    """The model's whole (epsilon, delta): the statistics' share plus what training spent."""
    training = fitted.get("privacy", {"epsilon": 0.0})
    return {
        "epsilon": budget.statistics_epsilon + training["epsilon"],
        "delta": budget.delta,
        "budget": budget.epsilon,
        "statistics_epsilon": budget.statistics_epsilon,
        "statistics_delta": budget.statistics_delta,
        "training": training,
    }


def column_facts(con, relation: str, columns: list[tuple[str, str]]) -> dict[str, dict]:
    """Per column: whether the training values were all distinct (drop_unique_violation) and,
    for strings, the longest length (limit_strings)."""
    parts = []
    for name, duck_type in columns:
        q = quote_identifier(name)
        parts.append(f"count(DISTINCT {q}) = count({q}) AND count({q}) >= 20")
        parts.append(f"max(length({q})) " if duck_type == "VARCHAR" else "NULL")
    values = con.execute(f"SELECT {', '.join(parts)} FROM ({relation})").fetchone()
    return {
        name: {"unique": bool(values[2 * i]), "max_length": values[2 * i + 1]}
        for i, (name, _) in enumerate(columns)
    }


def check_constraints(
    con, relation: str, names: list[str], constraints: list[str] | None
) -> dict[str, int]:
    """Each constraint must be a predicate over the model's columns; returns the training rows
    breaking each (the model learns them too, generation never emits them)."""
    violated = {}
    for text in constraints or []:
        predicate = parse_predicate(text, what="constraint", con=con)
        unknown = [c.name for c in predicate.find_all(exp.Column) if c.name not in names]
        if unknown:
            raise SynthError(
                f"train(): constraint {text!r}: unknown column '{unknown[0]}' "
                f"(the model has: {', '.join(names)})"
            )
        try:
            count = con.execute(
                f"SELECT count(*) FILTER (WHERE NOT ({predicate.sql(DUCKDB)})) FROM ({relation})"
            ).fetchone()[0]
        except duckdb.Error as error:
            first = str(error).splitlines()[0]
            raise SynthError(f"train(): constraint {text!r} cannot be checked: {first}") from None
        if count:
            violated[text] = int(count)
    return violated
