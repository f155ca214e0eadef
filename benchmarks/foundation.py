"""The foundation benchmark: duck_synth against SDV GaussianCopula on ggplot2's diamonds.

    python benchmarks/foundation.py            # full run (about 15 minutes), resumable
    python benchmarks/foundation.py --quick    # small sizes, for development (a few minutes)
    python benchmarks/foundation.py --fresh    # forget cached step results, measure everything

Every step runs in its own process, so each peak RSS belongs to one step. duck_synth's steps
(peers_duck.py) run in this Python; the peers' (SDV, SDMetrics: peers_sdv.py) in their own
virtual environment, made by ``venv.sh sdv``; peers.py runs the same step scripts. Steps exchange
Parquet files in benchmarks/results/<mode>/work/. Each finished step is cached as
benchmarks/results/<mode>/<step>.json and reused while its arguments are unchanged and nothing it
needs was measured again. The report is written to benchmarks/results/ as foundation.md (full)
or foundation-quick.md (quick) and printed. README.md beside this file explains each figure.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS = HERE / "results"
DATA_CANDIDATES = [
    REPO.parent / "shared" / "bench" / "data" / "diamonds.csv",
    REPO / "shared" / "bench" / "data" / "diamonds.csv",
]
# Each side's step script: "duck" runs in this Python, every other side in the venv that
# ``venv.sh <side>`` makes. peers.py runs three, privacy.py all four; this one "duck" and "sdv".
SCRIPTS = {
    "duck": HERE / "peers_duck.py",
    "sdv": HERE / "peers_sdv.py",
    "mostly": HERE / "peers_mostly.py",
    "smartnoise": HERE / "peers_smartnoise.py",
}
SEED = 0
HOLDOUT_SHARE = 0.2
FAIR = "cut = 'Fair'"
MODEL, TABLE = "d", "diamonds"  # duck_synth's model, trained on the table of the train split
CATEGORICAL = ["cut", "color", "clarity"]
LEVELS = {  # duck_synth reads the ordered categoricals as ENUMs of these levels
    "cut": ["Fair", "Good", "Very Good", "Premium", "Ideal"],
    "color": ["D", "E", "F", "G", "H", "I", "J"],
    "clarity": ["I1", "SI2", "SI1", "VS2", "VS1", "VVS2", "VVS1", "IF"],
}
MIB_PER_GIB = 1024
BUSY_WINDOW = 3.0  # seconds over which other processes' CPU use is read before each step
QUIET_PATIENCE, QUIET_POLL = 600.0, 10.0  # --max-busy: longest wait per step, poll interval
ROWS_PER_SECOND = 100_000  # target for generation into a table
FAST = f"≥ {ROWS_PER_SECOND:,} rows/s"
FAIR_SLOWDOWN = 1.5  # target: WHERE cut = 'Fair' at most this much slower than unconditional


@dataclass(frozen=True)
class Sizes:
    """How big each measured thing is in one mode."""

    mode: str
    max_time: int  # train(max_time => ...)
    rows: int  # the "1M rows" figures: unconditional and WHERE cut = 'Fair'
    big_rows: int  # the "10M rows" figure
    peer_rows: int  # GaussianCopula's sample, for its rows/s

    @property
    def fit_limit(self) -> float:
        """train() may overrun max_time by a fifth (120 s for max_time => 100)."""
        return 1.2 * self.max_time


FULL = Sizes("full", max_time=100, rows=1_000_000, big_rows=10_000_000, peer_rows=1_000_000)
QUICK = Sizes("quick", max_time=15, rows=100_000, big_rows=1_000_000, peer_rows=100_000)


@dataclass(frozen=True)
class Step:
    """One measured thing, run as ``python SCRIPT ACTION ARGS RESULT`` on one side."""

    name: str
    side: str  # a key of SCRIPTS: "duck", the project's Python; otherwise a peer's venv
    action: str
    args: dict = field(default_factory=dict)
    needs: tuple[str, ...] = ()  # steps whose output this one reads
    timeout: float = 1800
    reuse: bool = True  # False: always measured again (cheap steps such as versions)


# -- the plan ------------------------------------------------------------------------------------
FILES = {
    "train": "train.parquet",
    "holdout": "holdout.parquet",
    "database": "duck_synth.duckdb",
    "duck_sample": "duck_synth.parquet",
    "gc_model": "gaussian_copula.pkl",
    "gc_sample": "gaussian_copula.parquet",
}


def plan(sizes: Sizes, work: Path, data: Path) -> list[Step]:
    """Every step of one run, in an order that respects ``needs``."""
    files = {key: str(work / name) for key, name in FILES.items()}
    split = {"csv": str(data), "seed": SEED, "holdout_share": HOLDOUT_SHARE}
    split |= {"train": files["train"], "holdout": files["holdout"]}
    return [
        Step("versions", "duck", "versions", reuse=False),
        Step("peer_versions", "sdv", "versions", reuse=False),
        Step("split", "duck", "split", split),
        *duck_plan(sizes, files),
        *peer_plan(sizes, files),
    ]


def duck_plan(sizes: Sizes, files: dict[str, str]) -> list[Step]:
    """Train, then sample for the quality report, then the three generation figures."""
    database, train = files["database"], files["train"]
    model = {"database": database, "model": MODEL}
    fit = model | {"train": train, "table": TABLE, "levels": LEVELS}
    fit |= {"max_time": sizes.max_time, "seed": SEED}
    sample = model | {"like": train, "seed": 1, "output": files["duck_sample"]}
    rows, big = model | {"seed": 1, "rows": sizes.rows}, sizes.big_rows
    trained = ("train",)
    return [
        Step("train", "duck", "train", fit, ("split",), timeout=10 * sizes.max_time + 300),
        Step("sample", "duck", "sample", sample, trained),
        Step("generate", "duck", "generate", rows, trained),
        Step("generate_fair", "duck", "generate", rows | {"where": FAIR}, trained),
        Step("generate_big", "duck", "generate", rows | {"rows": big}, trained),
    ]


def peer_plan(sizes: Sizes, files: dict[str, str]) -> list[Step]:
    """GaussianCopula fit and sample, then the three quality reports."""
    train, model = files["train"], files["gc_model"]
    fit = {"method": "gaussian_copula", "train": train, "seed": SEED, "model": model}
    fit |= {"categorical": CATEGORICAL}
    sample = {"model": model, "seed": 1, "like": train, "rows": sizes.peer_rows}
    sample |= {"output": files["gc_sample"]}
    return [
        Step("gc_fit", "sdv", "fit", fit, ("split",)),
        Step("gc_sample", "sdv", "sample", sample, ("gc_fit",)),
        quality_step("quality_duck", train, files["duck_sample"], "sample"),
        quality_step("quality_gc", train, files["gc_sample"], "gc_sample"),
        quality_step("quality_ceiling", train, files["holdout"], "split"),
    ]


def quality_step(name: str, real: str, synthetic: str, made_by: str) -> Step:
    args = {"real": real, "synthetic": synthetic, "categorical": CATEGORICAL}
    return Step(name, "sdv", "quality", args, tuple(dict.fromkeys(("split", made_by))))


# -- running -------------------------------------------------------------------------------------
def venv_python(name: str) -> str:
    """A peer's interpreter; ``venv.sh NAME`` makes its venv when missing (its log: stderr).

    Raises RuntimeError "not installable: <venv.sh's last line on stderr>" when that fails.
    """
    command = ["bash", str(HERE / "venv.sh"), name]
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as process:
        last = "no output"
        for line in process.stderr:
            sys.stderr.write(line)
            last = line.strip() or last
        output = process.stdout.read()
    if process.returncode != 0:
        raise RuntimeError(f"not installable: {last}")
    return output.strip().splitlines()[-1]


class Runner:
    """Runs steps in their own processes and caches what they measured."""

    def __init__(self, folder: Path, fresh: bool, max_busy: float | None = None):
        self.folder, self.fresh, self.max_busy = folder, fresh, max_busy
        self.work = folder / "work"
        self.work.mkdir(parents=True, exist_ok=True)
        self.measured: set[str] = set()
        self.results: dict[str, dict] = {}
        self._pythons = {"duck": sys.executable}

    def python(self, side: str) -> str:
        if side not in self._pythons:
            self._pythons[side] = venv_python(side)
        return self._pythons[side]

    def cached(self, step: Step) -> dict | None:
        path = self.folder / f"{step.name}.json"
        stale = self.fresh or not step.reuse or self.measured.intersection(step.needs)
        if stale or not path.exists():
            return None
        record = json.loads(path.read_text())
        # a step it reads from measured again since (by an earlier, interrupted run): stale
        finished = [self.results.get(need, {}).get("finished", "") for need in step.needs]
        if any(f > record.get("finished", "") for f in finished):
            return None
        return record if record.get("args") == step.args else None

    def run(self, step: Step) -> dict:
        failed = [n for n in step.needs if "error" in self.results.get(n, {"error": ""})]
        if failed:
            record = {"error": f"skipped: {', '.join(failed)} failed"}
        elif (record := self.cached(step)) is not None:
            log(f"{step.name}: cached")
        else:
            record = self.measure(step)
        self.results[step.name] = record
        return record

    def measure(self, step: Step) -> dict:
        log(f"{step.name}: running")
        args_path = self.work / f"{step.name}.args.json"
        figures_path = self.work / f"{step.name}.figures.json"
        args_path.write_text(json.dumps(step.args))
        figures_path.unlink(missing_ok=True)
        command = [
            self.python(step.side),
            str(SCRIPTS[step.side]),
            step.action,
            str(args_path),
            str(figures_path),
        ]
        busy = wait_for_quiet(self.max_busy)
        with open(self.work / f"{step.name}.log", "w") as output:
            try:
                done = subprocess.run(
                    command,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    timeout=step.timeout,
                    check=False,
                )
                error = None if done.returncode == 0 else f"exit {done.returncode}"
            except subprocess.TimeoutExpired:
                error = f"timed out after {step.timeout:.0f} s"
        if error:
            log(f"{step.name}: FAILED ({error}); see {self.work / (step.name + '.log')}")
            return {"error": error}
        self.measured.add(step.name)
        record = {
            "args": step.args,
            "busy_cpus": busy,
            "commit": git_commit(),
            "finished": now(),
            "figures": json.loads(figures_path.read_text()),
        }
        (self.folder / f"{step.name}.json").write_text(json.dumps(record, indent=2))
        log(f"{step.name}: done in {record['figures']['process_seconds']:.1f} s")
        return record


def busy_cpus(window: float = BUSY_WINDOW) -> float:
    """How many CPUs other processes kept busy over ``window`` seconds (between our steps).

    Read from /proc/stat; unlike the load average it does not remember our previous step.
    """

    def counters() -> tuple[int, int]:
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return sum(values), values[3] + values[4]  # all jiffies, idle + iowait

    (total, idle), _ = counters(), time.sleep(window)
    total_after, idle_after = counters()
    share = 1 - (idle_after - idle) / max(total_after - total, 1)
    return (os.cpu_count() or 1) * share


def wait_for_quiet(max_busy: float | None, patience: float = QUIET_PATIENCE) -> float:
    """Wait (at most ``patience`` s) until other processes keep at most ``max_busy`` CPUs busy."""
    waited, busy = 0.0, busy_cpus()
    while max_busy is not None and busy > max_busy and waited < patience:
        if waited == 0:
            log(f"{busy:.1f} CPUs busy elsewhere (> {max_busy}): waiting up to {patience:.0f} s")
        waited += QUIET_POLL
        busy = busy_cpus(QUIET_POLL)
    return busy


def log(message: str) -> None:
    print(f"[{datetime.now():%H:%M:%S}] {message}", file=sys.stderr, flush=True)


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


# -- the report ----------------------------------------------------------------------------------
class Figures:
    """Read access to the steps' figures; a missing one (failed step) reads as None."""

    def __init__(self, results: dict[str, dict]):
        self.results = results

    def get(self, step: str, key: str) -> float | None:
        return self.results.get(step, {}).get("figures", {}).get(key)


def ratio(ours: float | None, theirs: float | None) -> str:
    return "—" if ours is None or not theirs else f"{ours / theirs:.2f}x"


def seconds(value: float | None) -> str:
    return "failed" if value is None else f"{value:,.1f} s"


def rate(value: float | None) -> str:
    return "failed" if value is None else f"{value:,.0f} rows/s"


def mib(value: float | None) -> str:
    return "failed" if value is None else f"{value:,.0f} MiB"


def score(value: float | None) -> str:
    return "failed" if value is None else f"{value:.3f}"


def met(ok: bool | None) -> str:
    return "—" if ok is None else ("yes" if ok else "**no**")


def check(value: float | None, test: Callable[[float], bool]) -> bool | None:
    return None if value is None else bool(test(value))


def row(
    figure: str,
    ours: str,
    target: str = "—",
    ok: bool | None = None,
    peer: str = "—",
    vs: str = "—",
) -> list[str]:
    """figure | duck_synth | target | met | GaussianCopula | duck_synth ÷ GaussianCopula."""
    return [figure, ours, target, met(ok), peer, vs]


def headline_rows(f: Figures, sizes: Sizes) -> list[list[str]]:
    return [
        *fit_rows(f, sizes),
        quality_headline(f),
        *generation_rows(f, sizes),
        *fair_rows(f, sizes),
        *big_rows(f, sizes),
    ]


def fit_rows(f: Figures, sizes: Sizes) -> list[list[str]]:
    fit, gc_fit = f.get("train", "seconds"), f.get("gc_fit", "seconds")
    rss, gc_rss = f.get("train", "peak_rss_mib"), f.get("gc_fit", "peak_rss_mib")
    limit = sizes.fit_limit
    return [
        row(
            f"fit time, max_time => {sizes.max_time} (lower is better)",
            seconds(fit),
            f"≤ {limit:.0f} s",
            check(fit, lambda v: v <= limit),
            seconds(gc_fit),
            ratio(fit, gc_fit),
        ),
        row("fit peak RSS (lower is better)", mib(rss), peer=mib(gc_rss), vs=ratio(rss, gc_rss)),
    ]


def quality_headline(f: Figures) -> list[str]:
    ours, theirs = f.get("quality_duck", "overall"), f.get("quality_gc", "overall")
    ok = None if ours is None or theirs is None else ours >= theirs
    return row(
        "SDMetrics quality, overall (higher is better)",
        score(ours),
        "≥ GaussianCopula",
        ok,
        score(theirs),
        ratio(ours, theirs),
    )


def generation_rows(f: Figures, sizes: Sizes) -> list[list[str]]:
    """Unconditional generation; the peer's figures are GaussianCopula's sample() of as many."""
    n = f"{sizes.rows:,} rows into a table"
    time, gc_time = f.get("generate", "seconds"), f.get("gc_sample", "seconds")
    speed, gc_speed = f.get("generate", "rows_per_second"), f.get("gc_sample", "rows_per_second")
    rss, gc_rss = f.get("generate", "peak_rss_mib"), f.get("gc_sample", "peak_rss_mib")
    fast = check(speed, lambda v: v >= ROWS_PER_SECOND)
    return [
        row(
            f"{n}: time (lower is better)",
            seconds(time),
            "—",
            None,
            seconds(gc_time),
            ratio(time, gc_time),
        ),
        row(
            f"{n}: rows/s (higher is better)",
            rate(speed),
            FAST,
            fast,
            rate(gc_speed),
            ratio(speed, gc_speed),
        ),
        row(
            f"{n}: peak RSS (lower is better)", mib(rss), "—", None, mib(gc_rss), ratio(rss, gc_rss)
        ),
    ]


def big_rows(f: Figures, sizes: Sizes) -> list[list[str]]:
    n = f"{sizes.big_rows:,} rows into a table"
    rss, speed = f.get("generate_big", "peak_rss_mib"), f.get("generate_big", "rows_per_second")
    return [
        row(
            f"{n}: peak RSS (lower is better)",
            mib(rss),
            "< 2,048 MiB",
            check(rss, lambda v: v < 2 * MIB_PER_GIB),
        ),
        row(
            f"{n}: rows/s (higher is better)",
            rate(speed),
            FAST,
            check(speed, lambda v: v >= ROWS_PER_SECOND),
        ),
    ]


def fair_rows(f: Figures, sizes: Sizes) -> list[list[str]]:
    plain, fair = f.get("generate", "seconds"), f.get("generate_fair", "seconds")
    slowdown = None if plain is None or fair is None else fair / plain
    drawn, returned = f.get("generate_fair", "rows_drawn"), f.get("generate_fair", "rows_returned")
    where = f"{sizes.rows:,} rows WHERE {FAIR}"
    return [
        row(f"{where}: time (lower is better)", seconds(fair)),
        row(
            f"{where} ÷ unconditional (lower is better)",
            "failed" if slowdown is None else f"{slowdown:.2f}x",
            f"≤ {FAIR_SLOWDOWN}x",
            check(slowdown, lambda v: v <= FAIR_SLOWDOWN),
        ),
        row(
            f"{where}: rows drawn / returned",
            "failed" if drawn is None else f"{drawn:,} / {returned:,}",
        ),
    ]


def quality_rows(f: Figures) -> list[list[str]]:
    """Each synthetic set (and the real holdout) judged against the real train split."""
    ceiling = f.get("quality_ceiling", "overall")
    rows = []
    for label, step in [
        ("duck_synth", "quality_duck"),
        ("GaussianCopula", "quality_gc"),
        ("ceiling: real holdout", "quality_ceiling"),
    ]:
        overall = f.get(step, "overall")
        rows.append(
            [
                label,
                score(overall),
                score(f.get(step, "column_shapes")),
                score(f.get(step, "column_pair_trends")),
                ratio(overall, ceiling),
                str(f.get(step, "synthetic_rows") or "—"),
            ]
        )
    return rows


def markdown_table(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def environment_lines(f: Figures, sizes: Sizes) -> list[str]:
    ours = f.results.get("versions", {}).get("figures", {})
    peers = f.results.get("peer_versions", {}).get("figures", {})
    measured = {name: r for name, r in f.results.items() if "busy_cpus" in r}
    busy = ", ".join(f"{name} {r['busy_cpus']:.1f}" for name, r in measured.items())
    commits = sorted({r.get("commit", "?") for r in measured.values()})
    packages = ["sdv", "sdmetrics", "copulas", "rdt", "torch", "pandas", "numpy"]
    return [
        f"- duck_synth {ours.get('duck_synth', '?')} (steps measured at commit "
        f"{', '.join(commits)}), duckdb "
        f"{ours.get('duckdb', '?')}, torch {ours.get('torch', '?')} "
        f"({ours.get('torch_threads', '?')} threads), {ours.get('cpus', '?')} CPUs, "
        f"{platform.python_implementation()} {platform.python_version()}",
        "- peers (own venv): " + ", ".join(f"{p} {peers.get(p, '?')}" for p in packages),
        f"- data: diamonds, {f.get('split', 'train_rows') or '?'} train / "
        f"{f.get('split', 'holdout_rows') or '?'} holdout rows (seed {SEED}); mode {sizes.mode}",
        f"- CPUs kept busy by other processes just before each step: {busy} (of "
        f"{ours.get('cpus', '?')}; above ~0.2, that step shared the CPUs and its times are "
        "pessimistic)",
    ]


def git_commit() -> str:
    done = subprocess.run(
        ["git", "-C", str(REPO), "describe", "--always", "--dirty"],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip() or "unknown"


def failure_lines(f: Figures) -> list[str]:
    return [
        f"- step {name}: {record['error']}"
        for name, record in f.results.items()
        if "error" in record
    ]


def report(results: dict[str, dict], sizes: Sizes) -> str:
    f = Figures(results)
    headline = markdown_table(
        ["figure", "duck_synth", "target", "met", "GaussianCopula", "duck_synth ÷ GaussianCopula"],
        headline_rows(f, sizes),
    )
    quality = markdown_table(
        [
            "judged against real train",
            "overall",
            "Column Shapes",
            "Column Pair Trends",
            "÷ ceiling",
            "rows",
        ],
        quality_rows(f),
    )
    failures = failure_lines(f)
    return (
        "\n\n".join(
            [
                f"# duck_synth foundation benchmark ({sizes.mode}, {now()})",
                headline,
                "## SDMetrics QualityReport",
                quality,
                "## Environment",
                "\n".join(environment_lines(f, sizes)),
                *(["## Failed steps", "\n".join(failures)] if failures else []),
            ]
        )
        + "\n"
    )


# -- the command ---------------------------------------------------------------------------------
def find_data(given: str | None) -> Path:
    candidates = [Path(given)] if given else DATA_CANDIDATES
    for path in candidates:
        if path.exists():
            return path.resolve()
    raise SystemExit(f"diamonds.csv not found (looked at {', '.join(map(str, candidates))})")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for development")
    parser.add_argument("--fresh", action="store_true", help="ignore cached step results")
    parser.add_argument("--data", help="path to diamonds.csv (default: shared/bench/data/)")
    parser.add_argument(
        "--max-busy",
        type=float,
        help=f"before each step, wait (up to {QUIET_PATIENCE:.0f} s) until other processes keep "
        "at most this many CPUs busy (for a shared machine; e.g. 0.2)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv)
    sizes = QUICK if options.quick else FULL
    folder = RESULTS / sizes.mode
    runner = Runner(folder, options.fresh, options.max_busy)
    for step in plan(sizes, runner.work.resolve(), find_data(options.data)):
        runner.run(step)
    text = report(runner.results, sizes)
    name = "foundation.md" if sizes is FULL else "foundation-quick.md"
    (RESULTS / name).write_text(text)
    print(text)
    return 1 if failure_lines(Figures(runner.results)) else 0


if __name__ == "__main__":
    sys.exit(main())
