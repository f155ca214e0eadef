"""duck_synth against its peers on three public datasets, each method under one time budget.

    python benchmarks/peers.py              # full run: 300 s per fit, all rows; resumable
    python benchmarks/peers.py --quick      # 20 s per fit, 5,000 rows per dataset
    python benchmarks/peers.py --fresh      # forget cached step results, measure again
    python benchmarks/peers.py --report-only   # the report from what is cached so far
    python benchmarks/peers.py --budget 120 --datasets diamonds slid --methods duck_synth ctgan

Methods: duck_synth, SDV GaussianCopula, SDV CTGAN, mostlyai-engine TabularARGN. Datasets:
diamonds, movies (its free-text ``title`` left out for every method) and SLID, from
shared/bench/data/ (R's row index dropped), shuffled with seed 0 and split 80/20 into train and
holdout. Every synthetic set (as many rows as the train split) and the real holdout (the
ceiling) are judged against the train split by duck_synth's ``evaluate()`` (scores, TSTR
utility on the holdout, DCR share) and by SDMetrics' QualityReport.

The step machinery is foundation.py's: one process per step (so each peak RSS is one step's),
results cached per step in benchmarks/results/peers-<mode>/ and reused while their arguments
are unchanged, a busy-CPU reading before each step. The steps are peers_duck.py's (this
Python), peers_sdv.py's (SDV and SDMetrics, in the venv made by ``venv.sh sdv``) and
peers_mostly.py's (mostlyai-engine, in its own, made by ``venv.sh mostly``). The report goes to
benchmarks/results/peers.md (peers-quick.md for --quick) and is printed; README.md explains it.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import sys
from dataclasses import dataclass
from pathlib import Path

from foundation import (
    RESULTS,
    SCRIPTS,
    Figures,
    Runner,
    Step,
    log,
    markdown_table,
    now,
)

HERE = Path(__file__).resolve().parent
DATA = HERE.parent.parent / "shared" / "bench" / "data"
SEED = 0
HOLDOUT_SHARE = 0.2
GENRES = ["Action", "Animation", "Comedy", "Drama", "Documentary", "Romance", "Short"]


@dataclass(frozen=True)
class Dataset:
    name: str
    file: str
    categorical: tuple[str, ...]
    target: str
    drop: tuple[str, ...] = ()
    query: str | None = None  # instead of ``file``: a DuckDB query whose rows are the data


DATASETS = {
    "diamonds": Dataset("diamonds", "diamonds.csv", ("cut", "color", "clarity"), "cut"),
    "movies": Dataset("movies", "movies.csv", ("mpaa", *GENRES), "rating", drop=("title",)),
    "slid": Dataset("slid", "SLID.csv", ("sex", "language"), "wages"),
}
METHODS = {
    "duck_synth": "duck_synth",
    "tabgan": "duck_synth tabgan",
    "gaussian_copula": "GaussianCopula",
    "ctgan": "CTGAN",
    "mostly": "TabularARGN",
}
OURS = ("duck_synth", "tabgan")  # duck_synth's default method, and its CTGAN-style GAN
PEERS = [m for m in METHODS if m not in OURS]


@dataclass(frozen=True)
class Mode:
    name: str
    budget: int  # seconds of training per method
    subsample: int | None  # rows kept per dataset before the split
    epochs: int | None = None  # equal epochs instead of equal time (tabgan against CTGAN)


FULL = Mode("full", budget=300, subsample=None)
QUICK = Mode("quick", budget=20, subsample=5000)


# -- the plan ------------------------------------------------------------------------------------
def dataset_plan(data: Dataset, mode: Mode, work: Path, methods: list[str]) -> list[Step]:
    d = data.name
    folder = work / d
    folder.mkdir(parents=True, exist_ok=True)
    train, holdout = str(folder / "train.parquet"), str(folder / "holdout.parquet")
    source = {"query": data.query} if data.query else {"csv": str(DATA / data.file)}
    split = source | {"seed": SEED, "holdout_share": HOLDOUT_SHARE}
    split |= {"train": train, "holdout": holdout, "drop": list(data.drop)}
    split |= {"subsample": mode.subsample}
    steps = [Step(f"{d}.split", "duck", "split", split)]
    fit_timeout = 10 * mode.budget + 600
    synthetic: dict[str, tuple[str, str]] = {}  # method -> (file, the step that wrote it)
    for method in methods:
        output = str(folder / f"{method}.parquet")
        fit, sample = f"{d}.{method}.fit", f"{d}.{method}.sample"
        if method in OURS:
            database = str(folder / f"{method}.duckdb")
            fit_args = {"database": database, "train": train, "max_time": mode.budget}
            fit_args |= {"seed": SEED}
            if method == "tabgan":
                fit_args["method"] = "tabgan"
            if mode.epochs:
                fit_args["epochs"] = mode.epochs
            sample_args = {"database": database, "like": train, "seed": 1, "output": output}
            steps += [
                Step(fit, "duck", "train", fit_args, (f"{d}.split",), fit_timeout),
                Step(sample, "duck", "sample", sample_args, (fit,)),
            ]
        elif method in ("gaussian_copula", "ctgan"):
            model = str(folder / f"{method}.pkl")
            fit_args = {"method": method, "train": train, "model": model, "seed": SEED}
            fit_args |= {"budget": mode.budget, "categorical": list(data.categorical)}
            if mode.epochs and method == "ctgan":
                fit_args["epochs"] = mode.epochs
            sample_args = {"model": model, "like": train, "seed": 1, "output": output}
            steps += [
                Step(fit, "sdv", "fit", fit_args, (f"{d}.split",), fit_timeout),
                Step(sample, "sdv", "sample", sample_args, (fit,)),
            ]
        else:
            workspace = str(folder / "mostly_workspace")
            fit_args = {"train": train, "workspace": workspace, "seed": SEED}
            fit_args |= {"budget": mode.budget}
            sample_args = {"workspace": workspace, "like": train, "seed": 1, "output": output}
            steps += [
                Step(fit, "mostly", "fit", fit_args, (f"{d}.split",), fit_timeout),
                Step(sample, "mostly", "sample", sample_args, (fit,)),
            ]
        synthetic[method] = (output, sample)
    synthetic["ceiling"] = (holdout, f"{d}.split")
    for label, (path, made_by) in synthetic.items():
        needs = tuple(dict.fromkeys((f"{d}.split", made_by)))
        ours = {"real": train, "synthetic": path}
        if label != "ceiling":  # the ceiling (holdout as the synthetic set): scores only
            ours |= {"holdout": holdout, "target": data.target}
        theirs = {"real": train, "synthetic": path, "categorical": list(data.categorical)}
        steps += [
            Step(f"{d}.{label}.evaluate", "duck", "evaluate", ours, needs),
            Step(f"{d}.{label}.sdmetrics", "sdv", "quality", theirs, needs),
        ]
    return steps


def plan(mode: Mode, work: Path, datasets: list[str], methods: list[str]) -> list[Step]:
    steps = [
        Step("versions", "duck", "versions", reuse=False),
        Step("sdv_versions", "sdv", "versions", reuse=False),
    ]
    if "mostly" in methods:
        steps.append(Step("mostly_versions", "mostly", "versions", reuse=False))
    for name in datasets:
        steps += dataset_plan(DATASETS[name], mode, work, methods)
    return [fingerprinted(step) for step in steps]


def fingerprinted(step: Step) -> Step:
    """The step with its script's digest among its arguments: an edited script re-measures."""
    digest = hashlib.sha256(SCRIPTS[step.side].read_bytes()).hexdigest()[:12]
    return dataclasses.replace(step, args=step.args | {"script": digest})


# -- running -------------------------------------------------------------------------------------
class PeersRunner(Runner):
    """foundation's Runner with three sides: duck_synth, the SDV venv, the mostlyai venv.

    A side whose venv cannot be made fails its steps with the reason, instead of stopping.
    """

    # the step actions whose seconds a report shows: --max-busy waits before these only (None:
    # before every step)
    timed: set[str] | None = None

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.unavailable: dict[str, str] = {}

    def measure(self, step: Step) -> dict:
        if self.timed is None or step.action in self.timed:
            return super().measure(step)
        patient, self.max_busy = self.max_busy, None
        try:
            return super().measure(step)
        finally:
            self.max_busy = patient

    def run(self, step: Step) -> dict:
        if step.side not in self.unavailable:
            try:
                self.python(step.side)
            except RuntimeError as error:
                self.unavailable[step.side] = str(error)
                log(f"{step.side}: {error}")
        if step.side in self.unavailable:
            self.results[step.name] = {"error": self.unavailable[step.side]}
            return self.results[step.name]
        return super().run(step)


# -- the report ----------------------------------------------------------------------------------
def fmt(value: float | None, spec: str, unit: str = "") -> str:
    return "—" if value is None else f"{value:{spec}}{unit}"


def error_of(f: Figures, step: str) -> str | None:
    record = f.results.get(step)
    return None if record is None else record.get("error")


def dataset_rows(f: Figures, d: str, methods: list[str]) -> list[list[str]]:
    rows = []
    for method in [*methods, "ceiling"]:
        label = METHODS.get(method, "ceiling: real holdout")
        fit, sample = f"{d}.{method}.fit", f"{d}.{method}.sample"
        ours, theirs = f"{d}.{method}.evaluate", f"{d}.{method}.sdmetrics"
        problem = error_of(f, fit) if method != "ceiling" else None
        if problem and problem.startswith("not installable"):
            rows.append([d, label, problem, *["—"] * 11])
            continue
        fit_s = fmt(f.get(fit, "seconds"), ",.1f", " s") if method != "ceiling" else "—"
        epochs = f.get(fit, "epochs")
        if epochs:
            per_epoch = (f.get(fit, "seconds") or 0) / epochs
            fit_s += f" ({epochs} epochs, {per_epoch:.2f} s/epoch)"
        if problem:
            fit_s = f"failed: {problem}"
        rows.append(
            [
                d,
                label,
                fit_s,
                fmt(f.get(sample, "rows_per_second"), ",.0f"),
                fmt(f.get(fit, "peak_rss_mib"), ",.0f", " MiB"),
                fmt(f.get(ours, "overall"), ".3f"),
                fmt(f.get(ours, "shapes"), ".3f"),
                our_pairs(f, ours),
                fmt(f.get(theirs, "overall"), ".3f"),
                fmt(f.get(theirs, "column_shapes"), ".3f"),
                their_pairs(f, theirs),
                utility(f, ours),
                fmt(f.get(ours, "dcr_share"), ".3f"),
                fmt(f.get(ours, "exact_copy_rate"), ".3f"),
            ]
        )
    return rows


def our_pairs(f: Figures, step: str) -> str:
    """evaluate()'s pair trends; without a strong pair, the mean over all pairs, starred."""
    value, every = f.get(step, "pair_trends"), f.get(step, "pair_trends_all")
    if value is None and every is not None:
        return f"{every:.3f}*"
    return fmt(value, ".3f")


def their_pairs(f: Figures, step: str) -> str:
    """SDMetrics' Column Pair Trends; when NaN (a pair with NULLs), the mean of the scored ones."""
    value = f.get(step, "column_pair_trends")
    if value is not None and value != value:  # NaN
        mean = f.get(step, "pair_trends_nanmean")
        return "nan" if mean is None else f"{mean:.3f}†"
    return fmt(value, ".3f")


def utility(f: Figures, step: str) -> str:
    if f.get(step, "utility_error"):
        return "evaluate() failed: " + f.get(step, "utility_error").replace("|", "/")
    ratio, primary = f.get(step, "utility_ratio"), f.get(step, "utility_primary")
    tstr, trtr = f.get(step, "tstr_primary"), f.get(step, "trtr_primary")
    if ratio is None or primary is None or tstr is None or trtr is None:
        return fmt(ratio, ".3f")
    return f"{ratio:.3f} ({primary} {tstr:.2f} / {trtr:.2f})"


def divide(a: float | None, b: float | None) -> str:
    return "—" if a is None or not b else f"{a / b:.2f}x"


def ratio_rows(f: Figures, d: str, methods: list[str]) -> list[list[str]]:
    rows = []
    figures = [
        ("fit", "seconds"),
        ("sample", "rows_per_second"),
        ("fit", "peak_rss_mib"),
        ("evaluate", "overall"),
        ("sdmetrics", "overall"),
        ("evaluate", "utility_ratio"),
    ]
    for ours in [m for m in methods if m in OURS]:
        for peer in [m for m in methods if m not in OURS]:
            cells = [
                divide(f.get(f"{d}.{ours}.{step}", key), f.get(f"{d}.{peer}.{step}", key))
                for step, key in figures
            ]
            rows.append([d, f"{METHODS[ours]} ÷ {METHODS[peer]}", *cells])
    return rows


def environment_lines(f: Figures, mode: Mode, datasets: list[str]) -> list[str]:
    ours = f.results.get("versions", {}).get("figures", {})
    sdv = f.results.get("sdv_versions", {}).get("figures", {})
    mostly = f.results.get("mostly_versions", {})
    measured = {name: r for name, r in f.results.items() if "busy_cpus" in r}
    busiest = sorted(measured.items(), key=lambda item: -item[1]["busy_cpus"])[:5]
    commits = sorted({r.get("commit", "?") for r in measured.values()})
    lines = [
        f"- duck_synth {ours.get('duck_synth', '?')} (commit {', '.join(commits) or '?'}), "
        f"duckdb {ours.get('duckdb', '?')}, torch {ours.get('torch', '?')}, "
        f"{ours.get('cpus', '?')} CPUs",
        "- SDV venv: "
        + ", ".join(
            f"{k} {v}" for k, v in sdv.items() if k != "process_seconds" and k != "peak_rss_mib"
        ),
    ]
    if "error" in mostly:
        lines.append(f"- mostlyai-engine: {mostly['error']}")
    elif mostly:
        versions = mostly.get("figures", {})
        lines.append(
            "- mostlyai venv: "
            + ", ".join(
                f"{k} {v}"
                for k, v in versions.items()
                if k not in ("process_seconds", "peak_rss_mib")
            )
        )
    for d in datasets:
        lines.append(
            f"- {d}: {f.get(f'{d}.split', 'train_rows') or '?'} train / "
            f"{f.get(f'{d}.split', 'holdout_rows') or '?'} holdout rows; target "
            f"`{DATASETS[d].target}`"
            + (f"; left out: {', '.join(DATASETS[d].drop)}" if DATASETS[d].drop else "")
        )
    lines.append(
        f"- mode {mode.name}: training budget {mode.budget} s per method, "
        f"{'all rows' if not mode.subsample else f'{mode.subsample:,} rows per dataset'}"
    )
    lines.append(
        "- CPUs kept busy by other processes before a step, the five busiest: "
        + ", ".join(f"{name} {r['busy_cpus']:.1f}" for name, r in busiest)
    )
    return lines


NOTES = """\
- Every synthetic set has as many rows as the train split and is judged against the train
  split. **ceiling**: the real holdout judged the same way (utility and privacy need a holdout
  apart from the judged set, so they are left out there).
- **fit**: seconds of the fit call alone (duck_synth: `train(max_time => budget)`;
  GaussianCopula: `fit`, no budget needed; CTGAN: `fit` with the epochs that throwaway 1- and
  3-epoch fits say fill the budget; TabularARGN: mostlyai-engine's split, analyze, encode and
  train with `max_training_time` = budget, which may stop earlier by early stopping).
  **gen rows/s**: that many rows sampled, process start excluded. **fit peak RSS**: the fit
  process's peak resident memory.
- **ours**: duck_synth's `evaluate()`; pairs count only pairs strongly associated in the real
  data (SDMetrics' rule); * = no such pair, the mean over all pairs instead. **SDMetrics**:
  QualityReport; † = its pair score was NaN (pairs with NULLs), the mean of the scored pairs.
- **utility_ratio**: TSTR ÷ TRTR of the primary metric (macro F1 for a categorical target, R²
  for a numeric one), clipped at 0; both models tested on the real holdout. **DCR share**: share
  of synthetic rows nearer the train split than the holdout (0.5 is ideal, 1 is copying).
  **exact copies**: share of synthetic rows equal to a train row."""


def report(results: dict[str, dict], mode: Mode, datasets: list[str], methods: list[str]) -> str:
    f = Figures(results)
    main_rows = [row for d in datasets for row in dataset_rows(f, d, methods)]
    headers = [
        "dataset",
        "method",
        "fit",
        "gen rows/s",
        "fit peak RSS",
        "ours: overall",
        "ours: shapes",
        "ours: pairs",
        "SDMetrics: overall",
        "SDMetrics: shapes",
        "SDMetrics: pairs",
        "utility_ratio (TSTR / TRTR)",
        "DCR share",
        "exact copies",
    ]
    ratio_headers = [
        "dataset",
        "ratio",
        "fit s (lower better)",
        "rows/s (higher better)",
        "fit RSS (lower better)",
        "ours: overall",
        "SDMetrics: overall",
        "utility_ratio",
    ]
    ratios = [row for d in datasets for row in ratio_rows(f, d, methods)]
    failures = [f"- {name}: {r['error']}" for name, r in results.items() if "error" in r]
    parts = [
        f"# duck_synth against its peers ({mode.name}, {now()})",
        markdown_table(headers, main_rows),
        NOTES,
        "## duck_synth's figures divided by each peer's",
        markdown_table(ratio_headers, ratios),
        "## Environment",
        "\n".join(environment_lines(f, mode, datasets)),
    ]
    if failures:
        parts += ["## Failed steps", "\n".join(failures)]
    return "\n\n".join(parts) + "\n"


# -- the command ---------------------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="20 s budgets, 5,000 rows")
    parser.add_argument("--fresh", action="store_true", help="ignore cached step results")
    parser.add_argument("--budget", type=int, help="training seconds per method")
    parser.add_argument(
        "--epochs", type=int, help="equal epochs instead of equal time (for tabgan and CTGAN)"
    )
    parser.add_argument("--datasets", nargs="+", choices=list(DATASETS), default=list(DATASETS))
    parser.add_argument(
        "--methods",
        nargs="+",
        choices=list(METHODS),
        default=[m for m in METHODS if m != "tabgan"],
    )
    parser.add_argument(
        "--report-only", action="store_true", help="report the cached steps, run nothing"
    )
    parser.add_argument("--max-busy", type=float, help="wait for at most this many busy CPUs")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv)
    mode = QUICK if options.quick else FULL
    if options.budget:
        mode = Mode(mode.name, options.budget, mode.subsample)
    if options.epochs:  # the epochs bound the fits; the budget only guards against a hang
        mode = Mode(f"{mode.name}-epochs{options.epochs}", 36_000, mode.subsample, options.epochs)
    methods = [m for m in METHODS if m in options.methods]
    runner = PeersRunner(RESULTS / f"peers-{mode.name}", options.fresh, options.max_busy)
    for step in plan(mode, runner.work.resolve(), options.datasets, methods):
        if options.report_only:
            runner.results[step.name] = runner.cached(step) or {"error": "not measured yet"}
        else:
            runner.run(step)
    text = report(runner.results, mode, options.datasets, methods)
    (RESULTS / ("peers.md" if mode.name == "full" else f"peers-{mode.name}.md")).write_text(text)
    print(text)
    return 1 if any("error" in r for r in runner.results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
