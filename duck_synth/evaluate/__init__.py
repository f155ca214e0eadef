"""evaluate(real, synthetic, ...): how faithful (and, with a holdout, how useful and safe) a
synthetic table is, one row per metric.

>>> FROM evaluate('diamonds', 'diamonds_synthetic')
-- metric        | columns | value | detail
-- overall       |         | 0.93  | {"of": ["shapes", "pair_trends"]}
-- shapes        |         | 0.95  | {"columns": 10, ...}
-- pair_trends   |         | 0.91  | {"pairs": 45, "contributing": 18, ...}
-- column_shape  | price   | 0.96  | {"method": "KSComplement", "kind": "numeric"}
-- pair_trend    | carat, price | 0.99 | {"method": "CorrelationSimilarity", ...}

Fidelity is computed in DuckDB SQL (see fidelity.py and pairs.py); privacy and utility metrics
come from privacy.py and utility.py when a holdout (and a target) is given.
"""

from __future__ import annotations

import contextlib
import math

import duckdb
import numpy as np
import pyarrow as pa

from .. import options as option_parsing
from .. import spool
from ..errors import SynthError
from ..options import EvaluateOptions
from ..sources import describe, read_source
from .codes import prepare_codes
from .columns import choose_columns, materialized, prepare, side_stats
from .fidelity import column_rows, mean, metric_row
from .pairs import information_rows, pair_trend_rows
from .relational import database_evaluation, database_lists
from .text import text_columns, text_rows

RESULT_SCHEMA = pa.schema(
    [
        ("metric", pa.string()),
        ("columns", pa.string()),
        ("value", pa.float64()),
        ("detail", pa.string()),
    ]
)


def evaluate(
    con: duckdb.DuckDBPyConnection,
    real: str,
    synthetic: str,
    options_json: str | dict | None = None,
) -> list[dict]:
    """The metric rows (metric, columns, value, detail) comparing ``synthetic`` with ``real``.

    ``real``, ``synthetic`` (and ``holdout``): names or queries; both lists: see relational.py."""
    opts = option_parsing.parse(EvaluateOptions, "evaluate", options_json)
    if (database := database_lists(real, synthetic, "evaluate", opts.relations)) is not None:
        return database_evaluation(con, *database, opts)  # lists of tables: a database
    if opts.target is not None and opts.holdout is None:
        raise SynthError(
            "evaluate(): target needs holdout => '...' (real rows kept out of training, "
            "to test models trained on synthetic and on real data)"
        )
    real_sql = read_source(con, real, what="evaluate(): real")
    synthetic_sql = read_source(con, synthetic, what="evaluate(): synthetic")
    holdout_sql = (
        read_source(con, opts.holdout, what="evaluate(): holdout") if opts.holdout else None
    )
    if opts.sensitive is not None and opts.holdout is None:
        raise SynthError(
            "evaluate(): sensitive needs holdout => '...' (the attack on training records is "
            "compared with the same attack on records the model never saw)"
        )
    if opts.sensitive is not None and opts.session_key is not None:
        raise SynthError("evaluate(): sensitive is for tables, not with session_key")
    if (opts.session_key is None) != (opts.order_by is None):
        raise SynthError("evaluate(): session metrics need both session_key and order_by")
    sides = {"real": real_sql, "synthetic": synthetic_sql, "holdout": holdout_sql}
    if opts.session_key is None:
        return _evaluate_sides(con, sides, opts)
    with materialized(con, sides) as tables:  # session metrics read each side many times
        return _evaluate_sides(con, tables, opts)


def _evaluate_sides(con, sides: dict[str, str | None], opts: EvaluateOptions) -> list[dict]:
    """evaluate() of one table's real, synthetic and holdout queries, its options checked."""
    real_sql, synthetic_sql, holdout_sql = sides["real"], sides["synthetic"], sides["holdout"]
    requested = opts.columns
    if opts.session_key is not None and requested is None:
        # fresh synthetic keys say nothing about the real ones: every column but the key
        requested = [n for n, _ in describe(con, real_sql, "evaluate(): real")]
        requested = [n for n in requested if n != opts.session_key]
    columns, skipped = choose_columns(con, real_sql, synthetic_sql, requested)
    if opts.target is not None and opts.target not in {c.name for c in columns}:
        raise SynthError(f"evaluate(): target '{opts.target}' is not an evaluated column")

    rows = _fidelity_rows(con, real_sql, synthetic_sql, columns, skipped, opts, holdout_sql)
    names = [c.name for c in columns]
    if opts.session_key is not None:
        from .sessions import session_metrics

        def profile_fidelity(real_profiles: str, synthetic_profiles: str) -> list[dict]:
            chosen, left_out = choose_columns(con, real_profiles, synthetic_profiles, None)
            return _fidelity_rows(con, real_profiles, synthetic_profiles, chosen, left_out, opts)

        rows += session_metrics(
            con,
            real_sql,
            synthetic_sql,
            holdout_sql,
            opts.session_key,
            opts.order_by,
            profile_fidelity,
            opts.sample,
            opts.seed,
        )
    if holdout_sql is not None and opts.session_key is None:  # sessions: whole-session privacy
        from .privacy import privacy_metrics  # written beside this module; imported when needed

        rows += privacy_metrics(
            con,
            real_sql,
            synthetic_sql,
            holdout_sql,
            names,
            opts.sample,
            opts.seed,
            opts.sensitive,
        )
    if opts.target is not None:
        from .utility import utility_metrics

        rows += utility_metrics(
            con, real_sql, synthetic_sql, holdout_sql, opts.target, names, opts.seed
        )
    return rows


def _fidelity_rows(con, real_sql, synthetic_sql, columns, skipped, opts, holdout_sql=None):
    tables = []
    try:
        for what, sql in (("real", real_sql), ("synthetic", synthetic_sql)):
            tables.append(prepare(con, sql, columns, what, opts.sample, opts.seed))
        real, synthetic = tables
        real_stats, syn_stats = side_stats(con, real, columns), side_stats(con, synthetic, columns)
        for what, stats in (("real", real_stats), ("synthetic", syn_stats)):
            if stats.rows == 0:
                raise SynthError(f"evaluate(): the {what} data has no rows")
        texts = text_columns(con, real, columns)  # judged by their texts, not as categories
        texts_judged = text_rows(con, real, synthetic, texts, holdout_sql, opts.sample, opts.seed)
        columns = [c for c in columns if c not in texts]
        per_column, trends, information = [], [], []
        if columns:  # else only text columns
            for table, stats in ((real, real_stats), (synthetic, syn_stats)):
                tables.append(prepare_codes(con, table, columns, real_stats, stats))
            codes = (tables[2], tables[3])
            sides = (real, synthetic)
            per_column = column_rows(con, sides, codes, columns, real_stats, syn_stats)
            trends = pair_trend_rows(con, sides, codes, columns, real_stats, syn_stats)
            information = information_rows(con, codes, columns)
    finally:
        for table in tables:
            with contextlib.suppress(duckdb.Error):
                con.execute(f"DROP TABLE IF EXISTS {table}")
    summary = _summary_rows(per_column, trends, information, skipped, real_stats, syn_stats)
    return summary + per_column + texts_judged + trends + information


def _summary_rows(per_column, trends, information, skipped, real_stats, syn_stats) -> list[dict]:
    def values(rows, metric):
        return [r["value"] for r in rows if r["metric"] == metric]

    shapes = mean(values(per_column, "column_shape"))
    contributing = [r["value"] for r in trends if r["detail"]["meets_threshold"]]
    pair_trends = mean(contributing)
    null_differences = values(per_column, "null_share_difference")
    overall = mean([shapes, pair_trends])
    return [
        metric_row("overall", "", overall, {"of": ["shapes", "pair_trends"]}),
        metric_row(
            "shapes",
            "",
            shapes,
            {
                "columns": len(null_differences),
                "skipped_columns": skipped,
                "real_rows": real_stats.rows,
                "synthetic_rows": syn_stats.rows,
            },
        ),
        metric_row(
            "pair_trends",
            "",
            pair_trends,
            {
                "pairs": len(trends),
                "contributing": len(contributing),
                "rule": "pairs with |pearson| > 0.5 or Cramér's V > 0.3 in the real data "
                "(SDMetrics' QualityReport)",
                "all_pairs": mean(values(trends, "pair_trend")),
            },
        ),
        metric_row("histogram", "", mean(values(per_column, "histogram_similarity")), {}),
        metric_row(
            "mutual_information", "", mean(values(information, "mutual_information_similarity")), {}
        ),
        metric_row(
            "null_shares",
            "",
            1 - (mean(null_differences) or 0.0),
            {"of": "1 - mean NULL-share difference"},
        ),
    ]


def evaluate_sql(con: duckdb.DuckDBPyConnection, real: str, synthetic: str, options: str) -> str:
    """The UDF behind the evaluate() macro: the metric rows, spooled; returns the SQL reading them."""
    import json

    rows = evaluate(con, real, synthetic, options)
    table = pa.Table.from_pylist(
        [
            {
                "metric": r["metric"],
                "columns": r["columns"],
                "value": _finite_or_none(r["value"]),
                "detail": json.dumps(_json_safe(r["detail"]), ensure_ascii=False),
            }
            for r in rows
        ],
        schema=RESULT_SCHEMA,
    )
    return spool.write_rows("evaluate", table, {"detail": "JSON"})


def _finite_or_none(value) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _json_safe(value):
    """Plain JSON values: NaN and infinities become null (JSON has no such numbers)."""
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):  # numpy scalars from other metric modules
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
