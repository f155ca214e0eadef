"""train(): read a table or query, analyse and encode it, fit a model, store it in the catalog.

Bad input is refused before anything is written. Once the run starts it is recorded in
``synth.runs``; the model row is added in one transaction at the very end, so a failed or
interrupted training adds no model.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from dataclasses import asdict

import duckdb
import numpy as np
import torch
from safetensors.torch import save as save_tensors
from tqdm import tqdm

from . import catalog
from .encoding import Protection, analyze, read_type, unsupported_reason
from .errors import SynthError
from .models import choose_method, create_model
from .models.base import Cancelled, FitConfig
from .options import TrainOptions, parse
from .sources import describe, read_source
from .spool import quote_identifier

cancel_requested = threading.Event()


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


def train(con: duckdb.DuckDBPyConnection, name: str, source: str, options_json: str) -> dict:
    """Train a model and return its summary row.

    >>> FROM train('d', 'diamonds', max_time => 60)
    -- model | version | method | rows | columns | epochs | seconds | ...
    """
    options = parse(TrainOptions, "train", options_json)
    if not isinstance(name, str) or not catalog.MODEL_NAME.match(name or ""):
        raise SynthError(f"train(): model name must be letters, digits, _ . -, got {name!r}")
    method = choose_method(options.method)
    for field_name in ("epochs", "batch_size", "rare_threshold"):
        if getattr(options, field_name) is not None and getattr(options, field_name) < 1:
            raise SynthError(f"train(): {field_name} must be at least 1")
    if not 0 <= options.validation_share < 1:
        raise SynthError("train(): validation_share must be in [0, 1)")
    if options.nrows is not None and options.nrows < 1:
        raise SynthError("train(): nrows must be at least 1")
    seed = (
        options.seed
        if options.seed is not None
        else int.from_bytes(os.urandom(4), "little") & 0x7FFFFFFF
    )
    relation = read_source(con, source)
    columns = select_columns(describe(con, relation), options)
    source_rows = con.execute(f"SELECT count(*) FROM ({relation})").fetchone()[0]
    if source_rows == 0:
        raise SynthError(f"train(): the training data '{source}' is empty")
    table = con.execute(read_sql(relation, columns, options, seed)).to_arrow_table()
    protection = Protection(options.rare_threshold, np.random.default_rng(seed))
    encoders = analyze(table, dict(columns), options.encoding, protection)
    modelled = [e for e in encoders if e.n_tokens > 0]
    tokens = (
        np.stack([e.encode(table.column(e.name).combine_chunks()) for e in modelled], axis=1)
        if modelled
        else np.zeros((table.num_rows, 0), dtype=np.int64)
    )
    device = options.device or ("cuda" if torch.cuda.is_available() else "cpu")

    run_id = catalog.start_run(con, name, method, source)
    started = time.monotonic()
    try:
        model = create_model(
            method, [e.n_tokens for e in modelled], [e.token_positions() for e in modelled]
        )
        config = FitConfig(
            epochs=options.epochs,
            max_time=options.max_time,
            batch_size=options.batch_size,
            validation_share=options.validation_share,
            seed=seed,
            device=device,
        )
        metrics = (
            _fit(con, run_id, model, tokens, config) if modelled else {"epochs": 0, "history": []}
        )
        params, tensors = model.state()
        record = catalog.ModelRecord(
            name=name,
            version=0,
            method=method,
            source=source,
            created=catalog.utc_now(),
            options={**asdict(options), "method": method, "seed": seed},
            columns=[
                {"name": e.name, "type": t, "kind": e.kind}
                for e, (_, t) in zip(encoders, columns, strict=True)
            ],
            statistics={"encoders": [e.to_json() for e in encoders], "model": params},
            metrics={**metrics, "seconds": time.monotonic() - started, "source_rows": source_rows},
            weights=save_tensors(tensors),
            training_rows=table.num_rows,
            format_version=catalog.FORMAT_VERSION,
        )
        version = catalog.insert_model(con, record, run_id)
    except (KeyboardInterrupt, Cancelled):
        catalog.finish_run(con, run_id, "cancelled", "training was cancelled")
        raise SynthError(f"train('{name}'): cancelled; no model was added (run {run_id})") from None
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
    return {
        "model": name,
        "version": version,
        "method": method,
        "why": "the autoregressive method is the default for tabular data"
        if options.method == "auto"
        else "chosen",
        "rows": table.num_rows,
        "columns": len(encoders),
        "epochs": metrics["epochs"],
        "seconds": round(time.monotonic() - started, 2),
        "val_loss": metrics.get("best_val_loss"),
        "stopped": metrics.get("stopped"),
        "seed": seed,
        "run_id": run_id,
        "device": device,
    }


def _fit(con, run_id: int, model, tokens: np.ndarray, config: FitConfig) -> dict:
    cancel_requested.clear()
    losses: list[dict] = []
    bar = tqdm(
        total=config.epochs,
        desc="train",
        unit="epoch",
        file=sys.stderr,
        disable=not sys.stderr.isatty() and not os.environ.get("DUCK_SYNTH_PROGRESS"),
    )

    def progress(event: dict) -> None:
        if cancel_requested.is_set():
            raise Cancelled()
        if event.get("epoch_done"):
            losses.append({k: event[k] for k in ("epoch", "train_loss", "val_loss")})
            share = max(event["epoch"] / config.epochs, event["elapsed"] / config.max_time)
            catalog.update_run(con, run_id, min(share, 0.99), event["epoch"], losses)
            bar.update(1)
            bar.set_postfix(val_loss=f"{event['val_loss']:.4f}")

    try:
        return model.fit(tokens, config, progress)
    finally:
        bar.close()
