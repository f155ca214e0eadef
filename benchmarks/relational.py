"""Relational synthesis on nycflights13: duck_synth against SDV's HMASynthesizer (issue 19).

    python benchmarks/relational.py                 # both methods, resumable (HMA: up to 60 min)
    python benchmarks/relational.py --quick         # 2% of the planes: a smoke run
    python benchmarks/relational.py --methods sdv   # one side: duck_synth or sdv
    python benchmarks/relational.py --fresh         # measure the chosen methods again
    python benchmarks/relational.py --report-only   # the report from what is cached so far
    python benchmarks/relational.py --max-busy 0.3  # on a shared machine: wait for quiet CPUs

The tables: all 16 ``airlines``; ``planes``, a 10% sample of the 3,322 planes (seed 0); and
``flights``, every flight of those planes (a handful of columns: see TABLES). Relations:
flights.tailnum -> planes.tailnum (a flight's context: its plane) and flights.carrier ->
airlines.carrier. The next 10% of the planes with their flights are the *ceiling*: real data
judged as a synthetic set would be.

duck_synth declares the relations as PRIMARY KEY / REFERENCES constraints and runs
``train('bench', ['airlines', 'planes', 'flights'], seed => 1)``, then
``generate_tables('bench', prefix => 'syn_', scale => 1.0, seed => 1)``. SDV's HMASynthesizer
(default settings, its own venv, ``venv.sh sdv``) fits the same tables with the same metadata
(stopped after 60 minutes: the report then says so and how long it ran) and samples them with
``sample_scale(1.0)``. Every generated database and the ceiling are judged against the real
tables by SDMetrics' QualityReport (in the SDV venv: overall, Column Shapes, Column Pair
Trends, Cardinality, Intertable Trends) and by duck_synth's ``database_metrics`` (degrees,
zero-children share, referential integrity, cross-table trends, per-table quality).

The machinery is foundation.py's and peers.py's: one process per step, each step's figures
cached in benchmarks/results/relational[-quick]/ and reused while its arguments (a digest of
the step's code among them) are unchanged. This file is its own step script: run with a step
name, two JSON paths and nothing else, it runs that step (``prepare``, ``train``,
``generate``, ``metrics`` in this Python; ``hma_fit``, ``hma_sample``, ``quality`` in the SDV
venv, which imports nothing of duck_synth). The report goes to benchmarks/results/relational.md
and relational.json (relational-quick.* for --quick) and is printed.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import inspect
import json
import math
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

from foundation import RESULTS, SCRIPTS, Figures, Step, log, markdown_table, now
from peers import PeersRunner, fmt
from step_io import Stopwatch

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DATA_CANDIDATES = [
    REPO.parent / "shared" / "bench" / "data" / "nycflights13",
    REPO / "shared" / "bench" / "data" / "nycflights13",
]
SEED = 0  # the planes' sample, and numpy's seed for HMA's fit
TRAIN_SEED, SAMPLE_SEED = 1, 1
MODEL, PREFIX, SCALE = "bench", "syn_", 1.0
FIT_CAP = 3600  # seconds a fit may take (HMA is stopped there; duck_synth's process too)
METHODS = {"duck_synth": "duck_synth", "sdv": "SDV HMASynthesizer"}

# Each table's columns in order, with their kind: "id" (a key), "categorical", "integer"
# (numerical, Int64 for SDV). Left out: planes.speed (99% NULL); flights' year (always 2013),
# dep_time / arr_time / sched_arr_time (the delays and the scheduled departure say it), hour /
# minute / time_hour (sched_dep_time says it), flight (a route number: an identifier).
TABLES = {
    "airlines": {"primary_key": "carrier", "columns": {"carrier": "id", "name": "categorical"}},
    "planes": {
        "primary_key": "tailnum",
        "columns": {
            "tailnum": "id",
            "year": "integer",
            "type": "categorical",
            "manufacturer": "categorical",
            "model": "categorical",
            "engines": "integer",
            "seats": "integer",
            "engine": "categorical",
        },
    },
    "flights": {
        "primary_key": None,
        "columns": {
            "month": "integer",
            "day": "integer",
            "sched_dep_time": "integer",
            "dep_delay": "integer",
            "arr_delay": "integer",
            "carrier": "id",
            "tailnum": "id",
            "origin": "categorical",
            "dest": "categorical",
            "air_time": "integer",
            "distance": "integer",
        },
    },
}
# Parents first; a child's first relation is its context (duck_synth generates a plane's
# flights in the context of that plane), as the constraints are declared in this order.
RELATIONS = [
    {"child": "flights", "key": "tailnum", "parent": "planes", "parent_key": "tailnum"},
    {"child": "flights", "key": "carrier", "parent": "airlines", "parent_key": "carrier"},
]
SDMETRICS = {  # QualityReport's figures: step key -> name in the report
    "overall": "SDMetrics overall",
    "column_shapes": "SDMetrics Column Shapes",
    "column_pair_trends": "SDMetrics Column Pair Trends",
    "cardinality": "SDMetrics Cardinality",
    "intertable_trends": "SDMetrics Intertable Trends",
}
TIMED = {"train", "generate", "hma_fit", "hma_sample"}  # --max-busy waits before these only
FIT_TARGET = 0.5  # duck_synth's fit time at most this share of HMA's
PERFECT = 1 - 1e-9  # a score HMA reaches in full: duck_synth meets the target by reaching it too


@dataclass(frozen=True)
class Mode:
    name: str
    share: float  # of the planes, for the benchmark's tables (and as many again for the ceiling)


FULL, QUICK = Mode("full", 0.10), Mode("quick", 0.02)


def sdv_metadata() -> dict:
    """TABLES and RELATIONS as SDV's (and SDMetrics') multi-table metadata."""
    sdtypes = {
        "id": {"sdtype": "id"},
        "categorical": {"sdtype": "categorical"},
        "integer": {"sdtype": "numerical", "computer_representation": "Int64"},
    }
    tables = {}
    for table, spec in TABLES.items():
        tables[table] = {"columns": {c: sdtypes[kind] for c, kind in spec["columns"].items()}}
        if spec["primary_key"]:
            tables[table]["primary_key"] = spec["primary_key"]
    relationships = [
        {
            "parent_table_name": r["parent"],
            "parent_primary_key": r["parent_key"],
            "child_table_name": r["child"],
            "child_foreign_key": r["key"],
        }
        for r in RELATIONS
    ]
    return {"METADATA_SPEC_VERSION": "V1", "tables": tables, "relationships": relationships}


# -- duck_synth's steps (this Python) ------------------------------------------------------------
def prepare(args: dict) -> dict:
    """The benchmark's tables and the ceiling's, as Parquet files in ``real`` and ``ceiling``.

    The planes, sorted by tail number, are shuffled with ``seed``: the first ``share`` of them
    are the benchmark's, the next as many the ceiling's; each set gets every flight of its
    planes and all the airlines. Rows are sorted (ORDER BY ALL), so the files are the same
    every time.
    """
    import duckdb
    import numpy as np

    con = duckdb.connect()
    source = Path(args["source"])

    def read(table: str) -> str:
        return f"read_parquet('{source / (table + '.parquet')}')"

    tailnums = [
        r[0] for r in con.sql(f"SELECT tailnum FROM {read('planes')} ORDER BY 1").fetchall()
    ]
    order = np.random.default_rng(args["seed"]).permutation(len(tailnums))
    n = round(len(tailnums) * args["share"])
    figures: dict = {"planes_total": len(tailnums), "outputs": []}
    for part, chosen in (("real", order[:n]), ("ceiling", order[n : 2 * n])):
        folder = Path(args[part])
        folder.mkdir(parents=True, exist_ok=True)
        kept = [tailnums[i] for i in chosen]
        con.execute(
            "CREATE OR REPLACE TABLE chosen AS SELECT unnest(?::VARCHAR[]) AS tailnum", [kept]
        )
        for table, columns in args["columns"].items():
            names = ", ".join(f'"{c}"' for c in columns)
            where = "" if table == "airlines" else "WHERE tailnum IN (FROM chosen)"
            path = folder / f"{table}.parquet"
            query = f"SELECT {names} FROM {read(table)} {where} ORDER BY ALL"
            con.execute(f"COPY ({query}) TO '{path}' (FORMAT parquet)")
            figures[f"{part}.{table}"] = con.sql(f"SELECT count(*) FROM '{path}'").fetchone()[0]
            figures["outputs"].append(str(path))
        flights, airlines = f"'{folder / 'flights.parquet'}'", f"'{folder / 'airlines.parquet'}'"
        low, median, high = con.sql(
            f"SELECT min(n), median(n), max(n) FROM (SELECT count(f.tailnum) AS n FROM chosen c "
            f"LEFT JOIN {flights} f USING (tailnum) GROUP BY c.tailnum)"
        ).fetchone()
        figures[f"{part}.flights_per_plane"] = {"min": low, "median": median, "max": high}
        figures[f"{part}.airlines_without_flights"] = con.sql(
            f"SELECT count(*) FROM {airlines} WHERE carrier NOT IN (SELECT carrier FROM {flights})"
        ).fetchone()[0]
    return figures


def relational_missing() -> str | None:
    """Why this duck_synth cannot train a database yet (generate_tables() still planned)."""
    from duck_synth import surface

    function = surface.find("generate_tables")
    if function is None or function.planned:
        return "generate_tables() is not implemented yet (issue 19)"
    return None


def load_tables(con, folder: str, tables: dict, relations: list[dict], prefix: str = "") -> None:
    """The Parquet files of ``folder`` as tables, with PRIMARY KEY and REFERENCES constraints
    when ``relations`` are given (in their order: a child's first is its context)."""
    for table, spec in tables.items():  # parents first
        path = Path(folder) / f"{table}.parquet"
        described = con.execute(f"DESCRIBE SELECT * FROM read_parquet('{path}')").fetchall()
        columns = [f'"{row[0]}" {row[1]}' for row in described]
        if relations and spec["primary_key"]:
            columns.append(f'PRIMARY KEY ("{spec["primary_key"]}")')
        for r in relations:
            if r["child"] == table:
                columns.append(
                    f'FOREIGN KEY ("{r["key"]}") REFERENCES {prefix}{r["parent"]} '
                    f'("{r["parent_key"]}")'
                )
        con.execute(f"CREATE TABLE {prefix}{table} ({', '.join(columns)})")
        con.execute(f"INSERT INTO {prefix}{table} SELECT * FROM read_parquet('{path}')")


def train(args: dict) -> dict:
    """A fresh database with the real tables and their constraints, then train() timed."""
    import duck_synth

    if why := relational_missing():
        return {"unavailable": why}
    database = Path(args["database"])
    for stale in (database, database.with_name(database.name + ".wal")):
        stale.unlink(missing_ok=True)
    session = duck_synth.connect(str(database))
    load_tables(session.con, args["real"], args["tables"], args["relations"])
    names = ", ".join(f"'{t}'" for t in args["tables"])
    epochs = f", epochs => {args['epochs']}" if args.get("epochs") else ""
    query = f"FROM train('{args['model']}', [{names}], seed => {args['seed']}{epochs})"
    with Stopwatch() as watch:
        result = session.sql(query)
        rows = result.fetchall()
    summary = [dict(zip(result.columns, row, strict=True)) for row in rows]
    session.close()
    return {
        "query": query,
        "seconds": watch.seconds,
        "summary": summary,
        "outputs": [str(database)],
    }


def generate(args: dict) -> dict:
    """generate_tables() timed, then each generated table to Parquet (keys as text)."""
    import duck_synth

    session = duck_synth.connect(args["database"])
    tables, prefix = args["tables"], args["prefix"]
    for table in reversed(list(tables)):  # children first: a rerun replaces the tables
        session.sql(f"DROP TABLE IF EXISTS {prefix}{table}")
    query = (
        f"FROM generate_tables('{args['model']}', prefix => '{prefix}', "
        f"scale => {args['scale']}, seed => {args['seed']})"
    )
    with Stopwatch() as watch:
        result = session.sql(query)
        rows = result.fetchall()
    output = Path(args["output"])
    output.mkdir(parents=True, exist_ok=True)
    figures: dict = {"query": query, "seconds": watch.seconds, "rows": {}, "outputs": []}
    figures["result"] = [dict(zip(result.columns, row, strict=True)) for row in rows]
    for table, spec in tables.items():
        columns = ", ".join(
            f'CAST("{c}" AS VARCHAR) AS "{c}"' if kind == "id" else f'"{c}"'
            for c, kind in spec["columns"].items()
        )
        path = output / f"{table}.parquet"
        session.con.execute(
            f"COPY (SELECT {columns} FROM {prefix}{table}) TO '{path}' (FORMAT parquet)"
        )
        figures["rows"][table] = session.con.sql(f"SELECT count(*) FROM '{path}'").fetchone()[0]
        figures["outputs"].append(str(path))
    session.close()
    return figures


def metrics(args: dict) -> dict:
    """duck_synth's database_metrics of the synthetic tables against the real ones."""
    try:
        from duck_synth.evaluate.relational import database_metrics, database_sources
    except ImportError as error:
        return {"unavailable": f"duck_synth.evaluate.relational: {error}"}
    import duck_synth

    session = duck_synth.connect()
    con, tables = session.con, list(args["tables"])
    load_tables(con, args["real"], args["tables"], [])
    load_tables(con, args["synthetic"], args["tables"], [], prefix="syn_")
    with Stopwatch() as watch:
        synthetic = [f"syn_{t}" for t in tables]
        schema, sources = database_sources(con, tables, synthetic, args["relations"], "evaluate")
        rows = database_metrics(con, schema, sources)
    session.close()
    return {"rows": [dict(row) for row in rows], "seconds": watch.seconds}


# -- SDV's steps (the SDV venv: pandas, SDV, SDMetrics; no duck_synth) ---------------------------
def read_tables(folder: str, metadata: dict) -> dict:
    """Each table's Parquet file: numbers as floats, categoricals and keys as text (NULL: NaN)."""
    import numpy as np
    import pandas as pd

    frames = {}
    for table, spec in metadata["tables"].items():
        path = Path(folder) / f"{table}.parquet"
        frame = pd.read_parquet(path, columns=list(spec["columns"]))
        for column, described in spec["columns"].items():
            if described["sdtype"] == "numerical":
                frame[column] = pd.to_numeric(frame[column], errors="coerce").astype(float)
            else:
                text = frame[column].map(lambda v: np.nan if pd.isna(v) else str(v))
                frame[column] = text.astype(object)
        frames[table] = frame
    return frames


class FitCapReached(BaseException):
    """Raised by SIGALRM inside HMA's fit (a BaseException: no ``except Exception`` eats it)."""


def hma_fit(args: dict) -> dict:
    """HMASynthesizer with SDV's defaults fitted, timed, pickled; stopped at ``cap_seconds``."""
    import pickle

    import numpy as np
    from sdv.metadata import Metadata
    from sdv.multi_table import HMASynthesizer

    data = read_tables(args["real"], args["metadata"])
    synthesizer = HMASynthesizer(Metadata.load_from_dict(args["metadata"]))
    np.random.seed(args["seed"])

    def stop(*_: object) -> None:
        raise FitCapReached

    signal.signal(signal.SIGALRM, stop)
    signal.alarm(args["cap_seconds"])
    finished = True
    with Stopwatch() as watch:
        try:
            synthesizer.fit(data)
        except FitCapReached:
            finished = False
        finally:
            signal.alarm(0)
    figures = {"seconds": watch.seconds, "rows": {t: len(f) for t, f in data.items()}}
    if not finished:
        return figures | {"timed_out": True, "cap_seconds": args["cap_seconds"]}
    with open(args["model"], "wb") as file:
        pickle.dump(synthesizer, file)
    return figures | {"outputs": [args["model"]]}


def hma_sample(args: dict) -> dict:
    """``sample_scale(scale)`` timed; each table to Parquet in the metadata's columns."""
    import pickle

    import numpy as np
    import pandas as pd

    with open(args["model"], "rb") as file:
        synthesizer = pickle.load(file)
    np.random.seed(args["seed"])
    with Stopwatch() as watch:
        sampled = synthesizer.sample_scale(scale=args["scale"])
    output = Path(args["output"])
    output.mkdir(parents=True, exist_ok=True)
    figures: dict = {"seconds": watch.seconds, "rows": {}, "outputs": []}
    for table, spec in args["metadata"]["tables"].items():
        frame = sampled[table][list(spec["columns"])].copy()
        for column, described in spec["columns"].items():
            if described["sdtype"] == "id":  # SDV's keys may be numbers: text, as the real ones
                frame[column] = frame[column].map(lambda v: None if pd.isna(v) else str(v))
        path = output / f"{table}.parquet"
        frame.to_parquet(path, index=False)
        figures["rows"][table] = len(frame)
        figures["outputs"].append(str(path))
    return figures


def quality(args: dict) -> dict:
    """SDMetrics' QualityReport (multi-table) of ``synthetic`` against ``real``."""
    from sdmetrics.reports import QualityReport

    metadata = args["metadata"]
    real, synthetic = read_tables(args["real"], metadata), read_tables(args["synthetic"], metadata)
    report = QualityReport()
    with Stopwatch() as watch:
        report.generate(real, synthetic, metadata, verbose=False)
    properties = report.get_properties()
    scores = dict(zip(properties["Property"], properties["Score"].astype(float), strict=True))
    figures = {
        "overall": float(report.get_score()),
        "seconds": watch.seconds,
        "synthetic_rows": {t: len(f) for t, f in synthetic.items()},
    }
    for key, name in SDMETRICS.items():
        if key != "overall":
            figures[key] = scores.get(name.removeprefix("SDMetrics "))
    pairs = report.get_details("Column Pair Trends")["Score"].astype(float)
    figures["pair_trends_nanmean"] = float(pairs.mean()) if pairs.notna().any() else None
    cardinality = report.get_details("Cardinality")
    figures["cardinality_details"] = json.loads(cardinality.to_json(orient="records"))
    return figures


DUCK_STEPS = {"prepare": prepare, "train": train, "generate": generate, "metrics": metrics}
SDV_STEPS = {"hma_fit": hma_fit, "hma_sample": hma_sample, "quality": quality}
# Each step's code, digested into its arguments: editing it measures that step (and the steps
# that read its output) again, and no other.
STEP_CODE = {
    "prepare": [prepare],
    "train": [train, relational_missing, load_tables],
    "generate": [generate],
    "metrics": [metrics, load_tables],
    "hma_fit": [hma_fit, read_tables, FitCapReached],
    "hma_sample": [hma_sample],
    "quality": [quality, read_tables],
}
SIDE_PYTHON = {"relational": "duck", "relational_sdv": "sdv"}  # whose interpreter runs them
SCRIPTS.update(dict.fromkeys(SIDE_PYTHON, Path(__file__).resolve()))


# -- the plan ------------------------------------------------------------------------------------
def plan(
    mode: Mode, work: Path, source: Path, methods: list[str], epochs: int | None = None
) -> list[Step]:
    real, ceiling = work / "real", work / "ceiling"
    columns = {table: list(spec["columns"]) for table, spec in TABLES.items()}
    prepared = {"source": str(source), "seed": SEED, "share": mode.share, "columns": columns}
    prepared |= {"real": str(real), "ceiling": str(ceiling)}
    metadata = sdv_metadata()
    steps = [
        Step("versions", "duck", "versions", reuse=False),
        Step("sdv_versions", "sdv", "versions", reuse=False),
        Step("prepare", "relational", "prepare", prepared),
    ]
    judged: dict[str, tuple[str, str]] = {}  # label -> (folder of Parquet files, made by step)
    fit_timeout = FIT_CAP + 900  # the process: reading, pickling, imports around the fit
    if "duck_synth" in methods:
        database = str(work / "duck_synth.duckdb")
        fit = {"database": database, "real": str(real), "tables": TABLES, "model": MODEL}
        fit |= {"relations": RELATIONS, "seed": TRAIN_SEED, "epochs": epochs}
        sample = {"database": database, "tables": TABLES, "model": MODEL, "prefix": PREFIX}
        sample |= {"scale": SCALE, "seed": SAMPLE_SEED, "output": str(work / "duck_synth")}
        steps += [
            Step("duck_synth.fit", "relational", "train", fit, ("prepare",), fit_timeout),
            Step("duck_synth.sample", "relational", "generate", sample, ("duck_synth.fit",)),
        ]
        judged["duck_synth"] = (str(work / "duck_synth"), "duck_synth.sample")
    if "sdv" in methods:
        model = str(work / "hma.pkl")
        fit = {"real": str(real), "metadata": metadata, "model": model, "seed": SEED}
        fit |= {"cap_seconds": FIT_CAP}
        sample = {"model": model, "metadata": metadata, "scale": SCALE, "seed": SAMPLE_SEED}
        sample |= {"output": str(work / "sdv")}
        steps += [
            Step("sdv.fit", "relational_sdv", "hma_fit", fit, ("prepare",), fit_timeout),
            Step("sdv.sample", "relational_sdv", "hma_sample", sample, ("sdv.fit",)),
        ]
        judged["sdv"] = (str(work / "sdv"), "sdv.sample")
    judged["ceiling"] = (str(ceiling), "prepare")
    for label, (folder, made_by) in judged.items():
        needs = tuple(dict.fromkeys(("prepare", made_by)))
        theirs = {"real": str(real), "synthetic": folder, "metadata": metadata}
        ours = {"real": str(real), "synthetic": folder, "tables": TABLES, "relations": RELATIONS}
        steps += [
            Step(f"{label}.sdmetrics", "relational_sdv", "quality", theirs, needs),
            Step(f"{label}.metrics", "relational", "metrics", ours, needs),
        ]
    return [fingerprinted(step) for step in steps]


def fingerprinted(step: Step) -> Step:
    """The step with its code digested among its arguments (the versions steps: none)."""
    if step.side not in SIDE_PYTHON:
        return step
    code = "".join(inspect.getsource(item) for item in STEP_CODE[step.action])
    digest = hashlib.sha256(code.encode()).hexdigest()[:12]
    return dataclasses.replace(step, args=step.args | {"code": digest})


# -- running -------------------------------------------------------------------------------------
def unavailable(record: dict | None) -> str | None:
    """Why a step has no figures without having failed: an engine without the relational API
    (train()), a fit stopped at the cap, or a step before it in either case."""
    record = record or {}
    figures = record.get("figures", {})
    if figures.get("timed_out"):
        return f"did not finish within {figures['cap_seconds'] / 60:.0f} minutes"
    return record.get("unavailable") or figures.get("unavailable")


class RelationalRunner(PeersRunner):
    """peers.py's runner with this file's two sides (this Python and the SDV venv).

    A step whose need is unavailable (see ``unavailable``) is skipped, not failed. A train()
    that found no relational API is asked again next run; a fit stopped at the cap is cached
    like any result (``--fresh`` tries again). ``--fresh`` never redoes ``prepare``: its files
    are the same every time, and redoing it would make every cached step stale. A cached step
    whose output files are gone is measured again.
    """

    timed = TIMED

    def python(self, side: str) -> str:
        return super().python(SIDE_PYTHON.get(side, side))

    def cached(self, step: Step) -> dict | None:
        fresh = self.fresh
        self.fresh = fresh and step.action != "prepare"
        try:
            record = super().cached(step)
        finally:
            self.fresh = fresh
        if record is None or record.get("figures", {}).get("unavailable"):
            return None
        outputs = record.get("figures", {}).get("outputs", [])
        return None if any(not Path(path).exists() for path in outputs) else record

    def run(self, step: Step) -> dict:
        reason = next((r for n in step.needs if (r := unavailable(self.results.get(n)))), None)
        if reason:
            self.results[step.name] = {"unavailable": reason}
            return self.results[step.name]
        return super().run(step)

    def recall(self, step: Step) -> dict:
        """--report-only: what run() would give from the cache alone, measuring nothing."""
        reason = next((r for n in step.needs if (r := unavailable(self.results.get(n)))), None)
        if reason:
            record = {"unavailable": reason}
        else:
            kept = dataclasses.replace(step, reuse=True)
            record = PeersRunner.cached(self, kept) or {"error": "not measured yet"}
        self.results[step.name] = record
        return record


# -- the report ----------------------------------------------------------------------------------
@dataclass
class Figure:
    """One compared figure: each label's value, which way is better, the target."""

    name: str
    values: dict[str, float | None]  # duck_synth, sdv, ceiling
    higher_is_better: bool
    spec: str = ".3f"
    unit: str = ""

    @property
    def ratio(self) -> float | None:
        ours, theirs = self.values.get("duck_synth"), self.values.get("sdv")
        if ours is None or not theirs or _nan(ours) or _nan(theirs):
            return None
        return ours / theirs

    @property
    def target(self) -> str:
        if not self.higher_is_better:
            return f"≤ {FIT_TARGET}x" if self.name == "fit time" else "—"
        return "> HMA"

    @property
    def met(self) -> bool | None:
        ours, theirs = self.values.get("duck_synth"), self.values.get("sdv")
        if self.target == "—" or ours is None or theirs is None or _nan(ours) or _nan(theirs):
            return None
        if not self.higher_is_better:
            return ours <= FIT_TARGET * theirs
        return ours > theirs or ours >= theirs >= PERFECT  # no better than perfect: a tie


def _nan(value: float) -> bool:
    return isinstance(value, float) and math.isnan(value)


def metric_rows(f: Figures, label: str) -> dict[str, float | None]:
    """database_metrics' rows of one label as {"metric (columns)": value}."""
    found = {}
    for row in f.get(f"{label}.metrics", "rows") or []:
        columns = row.get("columns")
        if isinstance(columns, list | tuple):
            columns = ", ".join(map(str, columns))
        name = f"{row['metric']} ({columns})" if columns else str(row["metric"])
        try:
            found[name] = float(row.get("value"))
        except (TypeError, ValueError):
            found[name] = None
    return found


def figures_of(f: Figures) -> list[Figure]:
    labels = ["duck_synth", "sdv", "ceiling"]
    found = [
        Figure(
            "fit time",
            {m: f.get(f"{m}.fit", "seconds") for m in ("duck_synth", "sdv")},
            False,
            ",.1f",
            " s",
        ),
        Figure(
            "generation time",
            {m: f.get(f"{m}.sample", "seconds") for m in ("duck_synth", "sdv")},
            False,
            ",.1f",
            " s",
        ),
        Figure(
            "fit peak RSS",
            {m: f.get(f"{m}.fit", "peak_rss_mib") for m in ("duck_synth", "sdv")},
            False,
            ",.0f",
            " MiB",
        ),
    ]
    for key, name in SDMETRICS.items():
        found.append(Figure(name, {m: f.get(f"{m}.sdmetrics", key) for m in labels}, True))
    ours = {label: metric_rows(f, label) for label in labels}
    names = list(dict.fromkeys(n for rows in ours.values() for n in rows))
    for name in names:
        found.append(Figure(name, {m: ours[m].get(name) for m in labels}, True))
    return found


def status(f: Figures, method: str) -> str:
    """Why a method has no quality figures, or "" when it has them."""
    for step in (f"{method}.fit", f"{method}.sample", f"{method}.sdmetrics"):
        record = f.results.get(step)
        if record is None:
            return "not run"
        if why := unavailable(record):
            return why
        if "error" in record:
            return f"{step} failed: {record['error']}"
    return ""


def cell(figure: Figure, label: str, f: Figures) -> str:
    value = figure.values.get(label)
    if figure.name == "fit time" and f.get(f"{label}.fit", "timed_out"):
        return f"> {value / 60:,.0f} min (stopped)"
    if value is not None and _nan(value) and figure.name == SDMETRICS["column_pair_trends"]:
        mean = f.get(f"{label}.sdmetrics", "pair_trends_nanmean")
        return "nan" if mean is None else f"{mean:.3f}†"
    return fmt(value, figure.spec, figure.unit)


def headline_rows(f: Figures, figures: list[Figure]) -> list[list[str]]:
    rows = []
    for figure in figures:
        better = "higher" if figure.higher_is_better else "lower"
        met, ratio = figure.met, fmt(figure.ratio, ".2f", "x")
        if figure.name == "fit time" and f.get("sdv.fit", "timed_out") and figure.ratio:
            ratio = f"< {ratio}"  # HMA's seconds are a lower bound
        rows.append(
            [
                f"{figure.name} ({better} is better)",
                cell(figure, "duck_synth", f),
                cell(figure, "sdv", f),
                ratio,
                figure.target,
                "—" if met is None else ("yes" if met else "**no**"),
                cell(figure, "ceiling", f) if "ceiling" in figure.values else "—",
            ]
        )
    return rows


def size_rows(f: Figures) -> list[list[str]]:
    rows = []
    for table in TABLES:
        rows.append(
            [
                table,
                fmt(f.get("prepare", f"real.{table}"), ",.0f"),
                fmt((f.get("duck_synth.sample", "rows") or {}).get(table), ",.0f"),
                fmt((f.get("sdv.sample", "rows") or {}).get(table), ",.0f"),
                fmt(f.get("prepare", f"ceiling.{table}"), ",.0f"),
            ]
        )
    return rows


COLUMNS = "\n".join(f"  - {t}: {', '.join(spec['columns'])}" for t, spec in TABLES.items())
NOTES = f"""\
- **Tables**: all 16 airlines; a share of the 3,322 planes (sorted by tail number, shuffled with
  seed {SEED}); every flight of those planes. Columns:
{COLUMNS}
- Relations: flights.tailnum → planes.tailnum (the context), flights.carrier →
  airlines.carrier. No orphans and no NULL keys (the flights are those of the sampled planes).
- **ceiling**: the next as many planes with their flights (and all the airlines), judged
  against the benchmark's tables like a synthetic set: what real data reaches.
- **duck_synth**: the tables with PRIMARY KEY / REFERENCES constraints, `train('{MODEL}',
  {list(TABLES)}, seed => {TRAIN_SEED})` (with `epochs => N` when the run was given
  `--epochs N`, its defaults otherwise: the fit line shows the epochs run), then
  `generate_tables('{MODEL}', prefix => '{PREFIX}', scale => {SCALE}, seed => {SAMPLE_SEED})`.
  **SDV HMASynthesizer**: default settings, `fit` on the same tables with the same metadata
  (keys as `id`, integers `numerical` with Int64 representation, text `categorical`), stopped
  after {FIT_CAP // 60} minutes; `sample_scale({SCALE})`. Times are the call alone, in a fresh
  process; peak RSS is that process's.
- **SDMetrics**: the multi-table QualityReport (SDMetrics' own process, the SDV venv): overall
  is the mean of its four properties. † Column Pair Trends is NaN when a pair has NULLs: the
  mean of the scored pairs instead.
- The rows below SDMetrics' are duck_synth's `database_metrics` (duck_synth.evaluate.relational),
  each a score where 1 is best (see that module). The targets are issue 19's: duck_synth better
  than HMA on every quality figure (where HMA scores a perfect 1, reaching 1 too), its fit at
  most {FIT_TARGET}x HMA's."""


def environment_lines(f: Figures, mode: Mode) -> list[str]:
    def versions(step: str) -> str:
        record = f.results.get(step, {})
        if "error" in record:
            return record["error"]
        skip = ("process_seconds", "peak_rss_mib")
        found = record.get("figures", {}).items()
        return ", ".join(f"{k} {v}" for k, v in found if k not in skip) or "?"

    measured = {name: r for name, r in f.results.items() if "busy_cpus" in r}
    commits = sorted({r.get("commit", "?") for r in measured.values()})
    timed = {n: r for n, r in measured.items() if n.endswith((".fit", ".sample"))}
    trained = (f.get("duck_synth.fit", "summary") or [{}])[0]
    stopped = trained.get("stopped") and f"{trained.get('epochs')} epochs, {trained['stopped']}"
    return [
        f"- duck_synth (steps measured at commit {', '.join(commits) or '?'}): "
        f"{versions('versions')}",
        f"- SDV venv: {versions('sdv_versions')}",
        *([f"- duck_synth's train(): {stopped}"] if stopped else []),
        f"- mode {mode.name}: {mode.share:.0%} of the planes; fits stopped after "
        f"{FIT_CAP // 60} minutes",
        "- CPUs kept busy by other processes just before each timed step (above about 0.2 its "
        "seconds are pessimistic): "
        + (", ".join(f"{name} {r['busy_cpus']:.2f}" for name, r in timed.items()) or "—"),
    ]


def report(results: dict[str, dict], mode: Mode, methods: list[str]) -> tuple[str, dict]:
    """The markdown report and the JSON summary."""
    f = Figures(results)
    figures = figures_of(f)
    headers = ["figure", "duck_synth", "SDV HMA", "duck_synth ÷ HMA", "target", "met", "ceiling"]
    sizes = ["table", "real", "duck_synth", "SDV HMA", "ceiling"]
    states = [f"- {METHODS[m]}: {why}" for m in methods if (why := status(f, m))]
    failures = [f"- {name}: {r['error']}" for name, r in results.items() if "error" in r]
    parts = [
        f"# Relational synthesis on nycflights13 ({mode.name}, {now()})",
        markdown_table(headers, headline_rows(f, figures)),
        *(["## Missing figures", "\n".join(states)] if states else []),
        "## Rows",
        markdown_table(sizes, size_rows(f)),
        NOTES,
        "## Environment",
        "\n".join(environment_lines(f, mode)),
        *(["## Failed steps", "\n".join(failures)] if failures else []),
    ]
    summary = {
        "benchmark": "relational",
        "mode": mode.name,
        "written": now(),
        "methods": methods,
        "figures": [
            {
                "figure": fig.name,
                "higher_is_better": fig.higher_is_better,
                "values": fig.values,
                "ratio_duck_synth_to_sdv": fig.ratio,
                "target": fig.target,
                "met": fig.met,
            }
            for fig in figures
        ],
        "missing": {m: why for m in methods if (why := status(f, m))},
        "failed": {name: r["error"] for name, r in results.items() if "error" in r},
        "steps": results,
    }
    return "\n\n".join(parts) + "\n", summary


# -- the command ---------------------------------------------------------------------------------
def find_data(given: str | None) -> Path:
    candidates = [Path(given)] if given else DATA_CANDIDATES
    for path in candidates:
        if (path / "flights.parquet").exists():
            return path.resolve()
    raise SystemExit(f"nycflights13 not found (looked in {', '.join(map(str, candidates))})")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"{QUICK.share:.0%} of the planes")
    parser.add_argument(
        "--fresh", action="store_true", help="measure the chosen methods and judges again"
    )
    parser.add_argument("--methods", nargs="+", choices=list(METHODS), default=list(METHODS))
    parser.add_argument(
        "--report-only", action="store_true", help="report the cached steps, run nothing"
    )
    parser.add_argument("--max-busy", type=float, help="wait for at most this many busy CPUs")
    parser.add_argument("--data", help="the nycflights13 folder (default: shared/bench/data/)")
    parser.add_argument(
        "--epochs", type=int, help="duck_synth's epochs (default: its own budget, max_time 300)"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv)
    mode = QUICK if options.quick else FULL
    methods = [m for m in METHODS if m in options.methods]
    folder = RESULTS / ("relational" if mode is FULL else "relational-quick")
    runner = RelationalRunner(folder, options.fresh, options.max_busy)
    steps = plan(mode, runner.work.resolve(), find_data(options.data), methods, options.epochs)
    for step in steps:
        (runner.recall if options.report_only else runner.run)(step)
    text, summary = report(runner.results, mode, methods)
    name = "relational" if mode is FULL else "relational-quick"
    (RESULTS / f"{name}.md").write_text(text)
    (RESULTS / f"{name}.json").write_text(json.dumps(summary, indent=2, default=str))
    print(text)
    failed = [name for name, r in runner.results.items() if "error" in r]
    if failed:
        log(f"failed steps: {', '.join(failed)}")
    return 1 if failed else 0


def run_step() -> None:
    """Run as a step: ``relational.py STEP ARGS.json RESULT.json`` (see the module's doc)."""
    from step_io import main as step_main

    step_main(DUCK_STEPS | SDV_STEPS)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] in DUCK_STEPS | SDV_STEPS:
        run_step()
    else:
        sys.exit(main())
