"""train(): read a table or query, analyse and encode it, fit a model, store it in the catalog.

Bad input is refused before anything is written. Once the run starts it is recorded in
``synth.runs``; the model row is added in one transaction at the very end, so a failed or
interrupted training adds no model.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace

import duckdb
import numpy as np
import pyarrow as pa
import torch
from safetensors.torch import save as save_tensors
from sqlglot import exp
from tqdm.auto import tqdm

from . import caller, catalog, sessions
from .conditions import parse_predicate
from .encoding import Encoder, Protection, analyze, is_numeric_type, read_type, unsupported_reason
from .errors import SynthError
from .models import choose_method, create_model, default_epochs
from .models.base import Cancelled, FitConfig, GenerativeModel
from .models.steps import LAGS, StepSpace
from .models.timegan import TimeGanModel
from .options import TrainOptions, parse
from .privacy import ColumnBudget, PrivacyBudget
from .recommend import rank, shape_of
from .sources import describe, read_source
from .sqltext import DUCKDB, quote_identifier


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


def read_sql(
    relation: str, columns: list[tuple[str, str]], options: TrainOptions, seed: int
) -> str:
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
    started = time.monotonic()  # max_time counts reading and encoding too
    options = parse(TrainOptions, "train", options_json)
    if not isinstance(name, str) or not catalog.MODEL_NAME.match(name or ""):
        raise SynthError(f"train(): model name must be letters, digits, _ . -, got {name!r}")
    method = choose_method(options.method)
    seed = (
        options.seed
        if options.seed is not None
        else int.from_bytes(os.urandom(4), "little") & 0x7FFFFFFF
    )
    budget = privacy_budget(options)
    why = "chosen"
    if budget is not None:
        if method == "auto":  # not from the data: choosing by its shape would read it
            method, why = "autoregressive", "differential privacy: DP-SGD"
        if method not in PRIVATE_METHODS:
            raise SynthError(
                f"train(): epsilon is supported by methods {' and '.join(PRIVATE_METHODS)}, "
                f"not '{method}'"
            )
        if options.session_key is not None:
            raise SynthError(
                "train(): differential privacy for sessions is not available yet (a session "
                "has many rows); train on one row per session, or without epsilon"
            )
    relation = read_source(con, source)
    columns = select_columns(describe(con, relation), options)
    source_rows = con.execute(f"SELECT count(*) FROM ({relation})").fetchone()[0]
    if source_rows == 0:
        raise SynthError(f"train(): the training data '{source}' is empty")
    facts = column_facts(con, relation, columns)
    violated = check_constraints(con, relation, [c for c, _ in columns], options.constraints)
    if method == "auto":
        session_key = options.session_key if options.session_key in dict(columns) else None
        best = rank(shape_of(con, relation, columns, session_key))[0]
        method, why = best.method, f"auto: {best.reason}"
    device = options.device or ("cuda" if torch.cuda.is_available() else "cpu")
    protection = Protection(options.rare_threshold, np.random.default_rng(seed))
    if method == "privbayes":  # Hazy's coarsening: few bins and categories keep tables small
        protection.max_bins, protection.max_categories = options.n_bins, options.max_cat
        protection.uniform_bins = options.bin_strategy == "uniform"
    if budget is not None:
        # DP noise comes from the OS, never from the seed; one share more: the row count
        protection.budget = ColumnBudget(
            budget.statistics_epsilon / (len(columns) + 1),
            budget.statistics_delta / len(columns),
            np.random.default_rng(),
        )
    session_options = (options.session_key, options.order_by, options.metadata)
    if options.session_key is None and any(session_options):
        raise SynthError("train(): order_by and metadata describe sessions; give session_key too")
    if options.session_key is None and method == "timegan":
        raise SynthError(
            "train(): method 'timegan' models sessions; give session_key => and order_by =>"
        )
    if options.session_key is not None and method in ("tabgan", "privbayes"):
        raise SynthError(
            f"train(): method '{method}' models rows, not sessions; for session data use "
            "'timegan' or 'autoregressive'"
        )
    if options.session_key is not None:
        layout = sessions.layout(
            con, relation, columns, options.session_key, options.order_by, options.metadata
        )
        plan = _session_plan(con, relation, layout, options, protection, method, seed)
    else:
        table = con.execute(read_sql(relation, columns, options, seed)).to_arrow_table()
        encoders = analyze(table, dict(columns), options.encoding, protection)
        plan = TrainingPlan(
            encoders=encoders,
            columns=[
                {"name": e.name, "type": t, "kind": e.kind}
                for e, (_, t) in zip(encoders, columns, strict=True)
            ],
            parts=[
                _part("", method, encoders, table, share=1.0, hyper=model_options(method, options))
            ],
            training_rows=table.num_rows,
            rows=table.num_rows,
        )
        if budget is not None:  # what is stored is read through DP too
            noisy = table.num_rows + float(protection.budget.laplace(1)[0])
            plan.training_rows = max(int(round(noisy)), 1)
            facts, violated = private_facts(encoders), {}

    caller.check()  # cancelled while the data was read: no run is recorded
    run_id = catalog.start_run(con, name, method, source)
    try:
        metrics, tensors, params = {}, {}, {}
        for part in plan.parts:
            config = FitConfig(
                epochs=options.epochs or default_epochs(method),
                max_time=max(
                    part.time_share * options.max_time - (time.monotonic() - started), 1.0
                ),
                batch_size=options.batch_size,
                validation_share=0.0 if budget is not None else options.validation_share,
                seed=seed,
                device=device,
                privacy=budget,
            )
            fitted = (
                _fit(con, run_id, part.model, part.data, config)
                if part.learns
                else {"epochs": 0, "history": []}
            )
            part_params, part_tensors = part.model.state()
            metrics[part.name or "model"] = fitted
            params[part.name or "model"] = part_params
            prefix = f"{part.name}." if part.name else ""
            tensors |= {prefix + key: value for key, value in part_tensors.items()}
        caller.check()  # a cancel that came in the last step adds no model either
        main = metrics["model"]
        statistics = {
            "encoders": [e.to_json() for e in plan.encoders],
            "model": params["model"],
            "facts": facts,
        }
        if plan.sessions is not None:
            statistics["sessions"] = dict(plan.sessions)
            if "steps" in params:
                statistics["sessions"] |= {"step_model": params["steps"], "lags": LAGS}
        record = catalog.ModelRecord(
            name=name,
            version=0,
            method=method,
            source=source,
            created=catalog.utc_now(),
            options={**asdict(options), "method": method, "seed": seed},
            columns=plan.columns,
            statistics=statistics,
            metrics={
                **main,
                **({"steps": metrics["steps"]} if "steps" in metrics else {}),
                "seconds": time.monotonic() - started,
                **({"source_rows": source_rows} if budget is None else {}),
                **({"constraint_violations": violated} if violated else {}),
                **({"privacy": privacy_spent(budget, main)} if budget is not None else {}),
            },
            weights=save_tensors(tensors),
            training_rows=plan.training_rows,
            format_version=catalog.FORMAT_VERSION,
        )
        last = metrics.get("steps", main)
        summary = {
            "model": name,
            "version": None,  # known inside the transaction
            "method": method,
            "why": why,
            "rows": plan.rows,
            "columns": len(plan.columns),
            "epochs": last["epochs"],
            "seconds": round(time.monotonic() - started, 2),
            "val_loss": last.get("best_val_loss"),
            "stopped": last.get("stopped"),
            "seed": seed,
            "run_id": run_id,
            "device": device,
            "epsilon": privacy_spent(budget, main)["epsilon"] if budget is not None else None,
        }
        if plan.sessions is not None:
            summary["sessions"] = plan.training_rows

        def commit_with(version: int) -> None:
            summary["version"] = version
            if before_commit is not None:
                before_commit(summary)

        catalog.insert_model(con, record, run_id, commit_with)
    except (KeyboardInterrupt, Cancelled) as error:
        # "cancelled", or the server's statement timeout that stopped it
        reason = str(error) if isinstance(error, Cancelled) and str(error) else "cancelled"
        detail = "training was cancelled" if reason == "cancelled" else reason
        catalog.finish_run(con, run_id, "cancelled", detail)
        raise SynthError(f"train('{name}'): {reason}; no model was added (run {run_id})") from None
    except BaseException as error:
        catalog.finish_run(
            con,
            run_id,
            "failed",
            str(error).splitlines()[0] if str(error) else type(error).__name__,
        )
        if isinstance(error, SynthError):
            raise
        raise SynthError(f"train('{name}') failed: {error}") from error
    return summary


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


def private_facts(encoders: list[Encoder]) -> dict[str, dict]:
    """column_facts from what DP released: no uniqueness claim; the longest kept category."""
    return {
        e.name: {
            "unique": False,
            "max_length": max((len(str(c)) for c in e.stats.get("categories", [])), default=None)
            if e.duck_type == "VARCHAR"
            else None,
        }
        for e in encoders
    }


@dataclass
class TrainingPart:
    """One network to fit: ``name`` prefixes its tensors ('' for the main one)."""

    name: str
    model: GenerativeModel | TimeGanModel
    data: tuple[np.ndarray, ...]  # what model.fit takes: (tokens,), or a session model's arrays
    time_share: float
    learns: bool = True  # False: every column is given or constant, nothing to fit


@dataclass
class TrainingPlan:
    encoders: list[Encoder]  # the main model's columns
    columns: list[dict]  # the output's columns: name, DuckDB type, kind
    parts: list[TrainingPart]
    training_rows: int  # what target counts by default: rows, or sessions
    rows: int  # source rows read
    sessions: dict | None = None  # session layout, step encoders and step token space


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


def _tokens(encoders: list[Encoder], table: pa.Table) -> np.ndarray:
    modelled = [e for e in encoders if e.n_tokens > 0]
    if not modelled:
        return np.zeros((table.num_rows, 0), dtype=np.int64)
    return np.stack([e.encode(table.column(e.name).combine_chunks()) for e in modelled], axis=1)


def model_options(method: str, options: TrainOptions) -> dict:
    """The train() options a method's constructor takes."""
    if method == "privbayes":
        return {"n_parents": options.n_parents, "sample_parents": options.sample_parents}
    return {}


def _part(
    name: str,
    method: str,
    encoders: list[Encoder],
    table: pa.Table,
    share: float,
    hyper: dict | None = None,
):
    modelled = [e for e in encoders if e.n_tokens > 0]
    model = create_model(
        method,
        [e.n_tokens for e in modelled],
        [e.token_positions() for e in modelled],
        [e.token_spans() for e in modelled],
        **(hyper or {}),
    )
    return TrainingPart(name, model, (_tokens(encoders, table),), share, learns=bool(modelled))


SESSION_TIME_SHARE = 0.25  # of max_time for the session-level model; the steps get the rest


def _session_plan(
    con, relation: str, layout: sessions.SessionLayout, options: TrainOptions,
    protection: Protection, method: str, seed: int,
) -> TrainingPlan:  # fmt: skip
    """Sessions (metadata, start, length) and their steps (measurements, delta), encoded, and
    the networks that learn them."""
    types = dict(layout.columns)
    read = read_sql(relation, layout.columns, replace(options, nrows=None), seed)
    if options.nrows:  # nrows counts sessions here: sample keys, keep their whole sessions
        key = quote_identifier(layout.key)
        read = (
            f"SELECT * FROM ({read}) WHERE {key} IN (SELECT {key} FROM "
            f"(SELECT DISTINCT {key} FROM ({read})) "
            f"USING SAMPLE reservoir({options.nrows} ROWS) REPEATABLE ({seed}))"
        )
    session_sql, step_sql = sessions.split_sql(layout, read)
    session_table = con.execute(session_sql).to_arrow_table().drop(["__session"])
    step_table = con.execute(step_sql).to_arrow_table()
    if session_table.num_rows == 0:
        raise SynthError(f"train(): no session has a non-NULL {layout.key} and {layout.order_by}")
    session_types = {c: types[c] for c in layout.metadata}
    session_types |= {sessions.START: layout.order_type, sessions.LENGTH: "BIGINT"}
    internal = {sessions.START: _ordered_kind(layout.order_type), sessions.LENGTH: "numeric"}
    session_encoders = analyze(
        session_table, session_types, _overrides(options, layout.metadata) | internal, protection
    )
    step_columns = step_table.drop(["__session", "__step"])
    step_types = {c: types[c] for c in layout.measurements}
    step_types[sessions.DELTA] = sessions.delta_type(layout)
    step_encoders = analyze(
        step_columns,
        step_types,
        _overrides(options, layout.measurements) | {sessions.DELTA: "numeric"},
        protection,
    )
    session_index = np.asarray(step_table.column("__session"))
    step_index = np.asarray(step_table.column("__step"))
    step_tokens = _tokens(step_encoders, step_columns)
    if method == TimeGanModel.method:
        parts = [_joint_part(session_encoders, session_table, step_encoders, step_tokens,
                             session_index, step_index)]  # fmt: skip
    else:
        parts = _two_parts(method, session_encoders, session_table, step_encoders, step_tokens,
                           session_index, step_index)  # fmt: skip
    kinds = {e.name: e.kind for e in session_encoders + step_encoders}
    kinds |= {layout.key: "session_key", layout.order_by: "order"}
    output_types = dict(layout.columns)
    if not (is_numeric_type(types[layout.key]) or types[layout.key] == "VARCHAR"):
        output_types[layout.key] = "BIGINT"  # fresh keys count sessions: 1, 2, ...
    return TrainingPlan(
        encoders=session_encoders,
        columns=[{"name": c, "type": output_types[c], "kind": kinds[c]} for c, _ in layout.columns],
        parts=parts,
        training_rows=session_table.num_rows,
        rows=step_table.num_rows,
        sessions={
            "layout": layout.to_json(),
            "step_encoders": [e.to_json() for e in step_encoders],
            "steps": step_table.num_rows,
        },
    )


def _two_parts(
    method: str, session_encoders: list[Encoder], session_table: pa.Table,
    step_encoders: list[Encoder], step_tokens: np.ndarray, session_index: np.ndarray,
    step_index: np.ndarray,
) -> list[TrainingPart]:  # fmt: skip
    """The autoregressive way: sessions (metadata, start, length), then steps given their
    session, their place and the steps before (models/steps.py)."""
    session_part = _part("", method, session_encoders, session_table, SESSION_TIME_SHARE)
    step_modelled = [e for e in step_encoders if e.n_tokens > 0]
    session_modelled = [e for e in session_encoders if e.n_tokens > 0]
    space = StepSpace([e.n_tokens for e in session_modelled], [e.n_tokens for e in step_modelled])
    rows = space.rows(session_part.data[0], step_tokens, session_index, step_index)
    step_model = create_model(
        method,
        space.vocab_sizes(),
        space.positions(
            [e.token_positions() for e in session_modelled],
            [e.token_positions() for e in step_modelled],
        ),
        [None] * len(space.vocab_sizes()),
        context=space.context,
    )
    learns = rows.shape[1] > space.context
    return [session_part, TrainingPart("steps", step_model, (rows,), 1.0, learns=learns)]


def _joint_part(
    session_encoders: list[Encoder], session_table: pa.Table, step_encoders: list[Encoder],
    step_tokens: np.ndarray, session_index: np.ndarray, step_index: np.ndarray,
) -> TrainingPart:  # fmt: skip
    """The DoppelGANger way: one network; the length comes from its generation flags, so the
    session's LENGTH column is not one of its attributes."""
    attributes = [e for e in session_encoders if e.n_tokens > 0 and e.name != sessions.LENGTH]
    steps = [e for e in step_encoders if e.n_tokens > 0]
    lengths = np.bincount(session_index, minlength=session_table.num_rows)
    names = [e.name for e in steps]
    if sessions.DELTA in names:
        step_tokens = _first_gap_filled(step_tokens, names.index(sessions.DELTA), session_index)
    padded = np.zeros((len(lengths), int(lengths.max()), len(steps)), dtype=np.int64)
    padded[session_index, step_index] = step_tokens
    model = TimeGanModel(
        [e.n_tokens for e in attributes],
        [e.n_tokens for e in steps],
        int(lengths.max()),
        [e.token_spans() for e in attributes],
        [e.token_spans() for e in steps],
    )
    data = (_tokens(attributes, session_table), padded, lengths)
    return TrainingPart("", model, data, time_share=1.0)


def _first_gap_filled(tokens: np.ndarray, column: int, session_index: np.ndarray) -> np.ndarray:
    """A first step has no gap (NULL, which assembling ignores); it takes its session's next
    gap (or the most common one), so a network drawing all steps at once never learns NULL
    gaps, which would repeat a timestamp."""
    tokens = tokens.copy()
    first = np.r_[True, session_index[1:] != session_index[:-1]]
    later = tokens[~first, column]
    common = np.bincount(later).argmax() if len(later) else 0
    following = np.flatnonzero(first) + 1
    has_next = following < len(tokens)
    has_next[has_next] &= ~first[following[has_next]]
    fill = np.full(int(first.sum()), common)
    fill[has_next] = tokens[following[has_next], column]
    tokens[first, column] = fill
    return tokens


def _ordered_kind(duck_type: str) -> str:
    return "numeric" if is_numeric_type(duck_type) else "datetime"


def _overrides(options: TrainOptions, names: list[str]) -> dict[str, str]:
    return {c: kind for c, kind in options.encoding.items() if c in names}


RUN_UPDATE_S = 1.0  # how often a training's progress is written to synth.runs


def _fit(con, run_id: int, model, data: tuple[np.ndarray, ...], config: FitConfig) -> dict:
    losses: list[dict] = []
    bar = progress_bar()
    last_write = [time.monotonic()]

    def progress(event: dict) -> None:
        """Called by the model after each step and epoch: where a cancel of the statement's
        call (Session.interrupt(), a client's cancel, Ctrl-C) or its timeout stops training.
        The share done is the larger of the steps taken and the time spent of max_time, so
        the bar's estimate never runs past max_time."""
        caller.check()
        share = event["elapsed"] / config.max_time
        if "step" in event:
            steps = config.epochs * event["steps"]
            share = max(share, ((event["epoch"] - 1) * event["steps"] + event["step"]) / steps)
        else:
            share = max(share, event["epoch"] / config.epochs)
        share = min(share, 0.99)
        bar.update(round(100 * share, 1) - bar.n)
        if event.get("epoch_done"):
            losses.append({k: v for k, v in event.items() if k not in ("elapsed", "epoch_done")})
            bar.set_postfix({k: f"{v:.4f}" for k, v in losses[-1].items() if k != "epoch"})
        if event.get("epoch_done") or time.monotonic() - last_write[0] >= RUN_UPDATE_S:
            # server clients follow a training in FROM runs()
            catalog.update_run(con, run_id, share, event["epoch"], losses)
            last_write[0] = time.monotonic()

    try:
        return model.fit(*data, config, progress)
    finally:
        bar.close()


def progress_bar() -> tqdm:
    """A bar in percent of the training: a widget in a notebook, a bar on a terminal, nothing
    in logs unless DUCK_SYNTH_PROGRESS is set (then tqdm's plain lines)."""
    shown = (
        sys.stderr.isatty()
        or "ipykernel" in sys.modules
        or bool(os.environ.get("DUCK_SYNTH_PROGRESS"))
    )
    return tqdm(
        total=100,
        desc="train",
        unit="%",
        bar_format="{l_bar}{bar}| {n:.0f}% [{elapsed}<{remaining}{postfix}]",
        file=sys.stderr,
        disable=not shown,
        mininterval=0.5 if sys.stderr.isatty() else 10.0,
    )
