"""Session (panel) synthesis on plm's Males: duck_synth against SDV PAR and mostlyai-engine.

    python benchmarks/sessions.py              # 30 s per fit; resumable
    python benchmarks/sessions.py --quick      # 10 s per fit, a smoke run
    python benchmarks/sessions.py --fresh      # forget cached step results, measure again
    python benchmarks/sessions.py --report-only   # the report from what is cached so far
    python benchmarks/sessions.py --budget 60 --methods duck_synth par --max-busy 0.3

Males: 545 men (``nr``) observed yearly 1980-1987 (``year``), 8 rows each; ``school`` and
``ethn`` are constant per man (the metadata), the rest vary. The men, not the rows, are
shuffled with seed 0 and split 80/20 into train and holdout sessions. Methods, each under the
same fit budget: duck_synth (``train(session_key => 'nr', order_by => 'year')``; also
``method => 'timegan'``, reported as unavailable while train() says so), SDV's PARSynthesizer
(sequence key ``nr``, sequence index ``year``, context columns the metadata; epochs calibrated
to the budget by throwaway fits) and mostlyai-engine's sequential TabularARGN (a subject table
of the men's metadata and the linked table of their years; ``max_training_time``). Each method
generates as many sessions as the train split has; they and the real holdout (the ceiling) are
judged against the train split: how sessions hold together (lengths, consecutive years,
constant metadata, wage's lag-1 autocorrelation, per-man mean wage), duck_synth's
``evaluate(..., session_key, order_by, holdout)`` and SDMetrics' QualityReport on the flat rows.

The machinery is foundation.py's and peers.py's: one process per step, cached results reused
while their arguments (the step script's digest among them) are unchanged, a busy-CPU reading
before each step; the steps are peers_duck.py's, peers_sdv.py's and peers_mostly.py's. The
report goes to benchmarks/results/sessions.md (sessions-quick.md for --quick) and is printed.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from dataclasses import dataclass

from foundation import RESULTS, Figures, Step, log, markdown_table, now
from peers import DATA, HOLDOUT_SHARE, SEED, PeersRunner, fingerprinted, fmt

CSV = DATA / "Males.csv"
KEY, ORDER = "nr", "year"
METADATA = ["school", "ethn"]  # constant within every man's rows (checked: session_shape)
MEASURE = "wage"  # lag-1 autocorrelation, per-man mean
FULL_LENGTH = 8  # every real man has 8 years
CATEGORICAL = ["union", "ethn", "married", "health", "industry", "occupation", "residence"]
METHODS = {
    "duck_synth": "duck_synth",
    "duck_synth_timegan": "duck_synth timegan",
    "par": "SDV PAR",
    "mostly": "mostlyai-engine TabularARGN (sequential)",
}
SESSION = {"session_key": KEY, "order_by": ORDER}
TIMED = {"train", "fit", "sample"}  # the step actions whose seconds the report shows


@dataclass(frozen=True)
class Mode:
    name: str
    budget: int  # seconds of training per method


FULL, QUICK = Mode("full", 30), Mode("quick", 10)


# -- the plan ------------------------------------------------------------------------------------
def method_steps(method: str, mode: Mode, work: str) -> tuple[list[Step], str]:
    """A method's fit and sample steps, and the Parquet file its sessions go to."""
    train, output = f"{work}/train.parquet", f"{work}/{method}.parquet"
    fit, sample = f"{method}.fit", f"{method}.sample"
    timeout = 10 * mode.budget + 600
    if method.startswith("duck_synth"):
        database = f"{work}/{method}.duckdb"
        fit_args = {"database": database, "train": train, "max_time": mode.budget, "seed": SEED}
        fit_args |= SESSION
        if method == "duck_synth_timegan":
            fit_args["method"] = "timegan"
        sample_args = {"database": database, "seed": SEED, "output": output, **SESSION}
        return [
            Step(fit, "duck", "train", fit_args, ("split",), timeout),
            Step(sample, "duck", "sample", sample_args, (fit,)),
        ], output
    if method == "par":
        model = f"{work}/par.pkl"
        fit_args = {"method": "par", "train": train, "model": model, "seed": SEED}
        fit_args |= {"budget": mode.budget, "categorical": CATEGORICAL, "context": METADATA}
        fit_args |= SESSION
        sample_args = {"model": model, "like": train, "seed": SEED, "output": output, **SESSION}
        return [
            Step(fit, "sdv", "fit", fit_args, ("split",), timeout),
            Step(sample, "sdv", "sample", sample_args, (fit,)),
        ], output
    workspace = f"{work}/mostly_workspace"
    fit_args = {"train": train, "workspace": workspace, "seed": SEED, "budget": mode.budget}
    fit_args |= {"context": METADATA, **SESSION}
    sample_args = {"workspace": workspace, "like": train, "seed": SEED, "output": output}
    sample_args |= SESSION
    return [
        Step(fit, "mostly", "fit", fit_args, ("split",), timeout),
        Step(sample, "mostly", "sample", sample_args, (fit,)),
    ], output


def plan(mode: Mode, work: str, methods: list[str]) -> list[Step]:
    train, holdout = f"{work}/train.parquet", f"{work}/holdout.parquet"
    split = {"csv": str(CSV), "seed": SEED, "holdout_share": HOLDOUT_SHARE}
    split |= {"train": train, "holdout": holdout, **SESSION}
    steps = [
        Step("versions", "duck", "versions", reuse=False),
        Step("sdv_versions", "sdv", "versions", reuse=False),  # SDMetrics judges every set
    ]
    if "mostly" in methods:
        steps.append(Step("mostly_versions", "mostly", "versions", reuse=False))
    steps.append(Step("split", "duck", "split", split))
    judged: dict[str, tuple[str, str]] = {}  # label -> (Parquet file, the step that wrote it)
    for method in methods:
        made, output = method_steps(method, mode, work)
        steps += made
        judged[method] = (output, made[-1].name)
    judged["ceiling"] = (holdout, "split")
    for label, (path, made_by) in judged.items():
        needs = tuple(dict.fromkeys(("split", made_by)))
        ours = {"real": train, "synthetic": path, **SESSION}
        if label != "ceiling":  # the ceiling is the holdout: no second holdout for privacy
            ours["holdout"] = holdout
        shape = {"real": train, "synthetic": path, "metadata": METADATA, "measure": MEASURE}
        shape |= {"full_length": FULL_LENGTH, **SESSION}
        theirs = {"real": train, "synthetic": path, "categorical": CATEGORICAL, "exclude": [KEY]}
        steps += [
            Step(f"{label}.shape", "duck", "session_shape", shape, needs),
            Step(f"{label}.evaluate", "duck", "evaluate", ours, needs),
            Step(f"{label}.sdmetrics", "sdv", "quality", theirs, needs),
        ]
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
            record = PeersRunner.cached(self, kept) or {"error": "not measured yet"}
        self.results[step.name] = record
        return record


# -- the report ----------------------------------------------------------------------------------
def share(value: float | None) -> str:
    return fmt(None if value is None else 100 * value, ".0f", "%")


def lengths(steps: dict | None) -> str:
    """{length: sessions} as "8: 436" or "1-8 (8: 400)"."""
    if not steps:
        return "—"
    counts = {int(k): v for k, v in steps.items()}
    low, high = min(counts), max(counts)
    most = max(counts, key=counts.get)
    return f"{low}: {counts[low]}" if low == high else f"{low}-{high} (mode {most})"


def status(f: Figures, method: str) -> str | None:
    """Why a method has no figures: unavailable, not installable, failed; None when it has."""
    fit = f.results.get(f"{method}.fit", {})
    if why := unavailable(fit):
        return f"unavailable: {why}"
    if "error" in fit:
        return f"fit failed: {fit['error']}"
    sample = f.results.get(f"{method}.sample", {})
    if "error" in sample:
        return f"sample failed: {sample['error']}"
    return None


def fit_cell(f: Figures, method: str) -> str:
    """Seconds, with the epochs fitted; for duck_synth the method train() ran and why it stopped."""
    seconds = fmt(f.get(f"{method}.fit", "seconds"), ",.1f", " s")
    summary = f.get(f"{method}.fit", "summary") or {}
    epochs = f.get(f"{method}.fit", "epochs") or summary.get("epochs")
    count = epochs and f"{epochs} epoch{'' if epochs == 1 else 's'}"
    notes = [summary.get("method"), count, summary.get("stopped")]
    notes = [str(n) for n in notes if n]
    return seconds + (f" ({', '.join(notes)})" if notes else "")


def shape_rows(f: Figures, methods: list[str]) -> list[list[str]]:
    real = "ceiling"  # every shape step measures the real train split as well: take any
    for label in [*methods, "ceiling"]:
        if f.get(f"{label}.shape", "real_sessions") is not None:
            real = label
            break
    s = f"{real}.shape"
    rows = [
        [
            "real train (reference)",
            "—",
            "—",
            fmt(f.get(s, "real_sessions"), ",.0f"),
            lengths(f.get(s, "real_steps")),
            share(f.get(s, "real_full_length_share")),
            "1.000",
            share(f.get(s, "real_consecutive_share")),
            share(f.get(s, "real_constant_share:school")),
            share(f.get(s, "real_constant_share:ethn")),
            fmt(f.get(s, "real_lag1"), ".2f"),
            "1.000",
        ]
    ]
    for label in [*methods, "ceiling"]:
        name = METHODS.get(label, "ceiling: real holdout")
        problem = status(f, label) if label != "ceiling" else None
        if problem:
            rows.append([name, problem.replace("|", "/"), *["—"] * 10])
            continue
        s = f"{label}.shape"
        fit = fit_cell(f, label) if label != "ceiling" else "—"
        gen = fmt(f.get(f"{label}.sample", "seconds"), ",.1f", " s") if label != "ceiling" else "—"
        rows.append(
            [
                name,
                fit,
                gen,
                fmt(f.get(s, "sessions"), ",.0f"),
                lengths(f.get(s, "steps")),
                share(f.get(s, "full_length_share")),
                fmt(f.get(s, "length_tv_complement"), ".3f"),
                share(f.get(s, "consecutive_share")),
                share(f.get(s, "constant_share:school")),
                share(f.get(s, "constant_share:ethn")),
                fmt(f.get(s, "lag1"), ".2f"),
                fmt(f.get(s, "mean_ks_complement"), ".3f"),
            ]
        )
    return rows


def score_rows(f: Figures, methods: list[str]) -> list[list[str]]:
    rows = []
    for label in [*methods, "ceiling"]:
        name = METHODS.get(label, "ceiling: real holdout")
        if label != "ceiling" and status(f, label):
            continue
        ours, theirs = f"{label}.evaluate", f"{label}.sdmetrics"
        rows.append(
            [
                name,
                fmt(f.get(ours, "sessions"), ".3f"),
                fmt(f.get(ours, "session_shapes"), ".3f"),
                fmt(f.get(ours, "session_pair_trends"), ".3f"),
                fmt(f.get(ours, f"step_shape:{MEASURE}"), ".3f"),
                fmt(f.get(ours, f"lag1_autocorrelation:{MEASURE}"), ".3f"),
                fmt(f.get(ours, "session_dcr_share"), ".3f"),
                fmt(f.get(ours, "overall"), ".3f"),
                fmt(f.get(theirs, "overall"), ".3f"),
                fmt(f.get(theirs, "column_shapes"), ".3f"),
                fmt(f.get(theirs, "column_pair_trends"), ".3f"),
            ]
        )
    return rows


NOTES = f"""\
- Every generated set has as many sessions as the train split (duck_synth: generate()'s default
  target; PAR: `sample_sequences`; mostlyai-engine: as many synthetic subjects, each given its
  steps, so a subject given no step is a session fewer). **ceiling**: the real holdout (109 men)
  judged the same way; its DCR share needs a second holdout and is left out.
- **fit**: seconds of the fit call alone (duck_synth: `train(max_time => budget)`; PAR: `fit`
  with the epochs that throwaway 1- and 3-epoch fits say fill the budget, probes not counted;
  mostlyai-engine: split, analyze, encode, train of the subject model (a fifth of the budget)
  and of the sequential model (the rest), `max_training_time`). **gen**: generating the
  sessions, process start excluded.
- **{FULL_LENGTH} steps**: share of sessions with exactly {FULL_LENGTH} rows; **length TV**: 1 -
  total variation distance between the real and synthetic distributions of steps per session.
  **consecutive**: share of sessions whose `{ORDER}` values are consecutive integers, none
  repeated. **{METADATA[0]} / {METADATA[1]} constant**: share of sessions in which that column
  has one value. **{MEASURE} lag-1 r**: pooled within-session correlation of `{MEASURE}` with
  the previous year's. **mean {MEASURE} KS**: KS complement of the per-man mean `{MEASURE}`.
- **evaluate()**: `evaluate(train, synthetic, session_key => '{KEY}', order_by => '{ORDER}',
  holdout => holdout)`: `sessions` (mean of session shapes, session pair trends, step shapes,
  lag-1 similarities), the session-profile scores, `step_shape` and `lag1_autocorrelation`
  (1 - |r_real - r_synthetic| / 2) of `{MEASURE}`, and the whole-session DCR share (0.5 ideal,
  1 copying); its session-profile KS of the mean `{MEASURE}` is the table above's. **flat
  overall**: evaluate()'s row-level overall (every column but `{KEY}`). **SDMetrics**:
  QualityReport on the flat rows, `{KEY}` left out (it agrees with flat overall: evaluate()
  computes SDMetrics' scores in SQL)."""


def environment_lines(f: Figures, mode: Mode, methods: list[str]) -> list[str]:
    def versions(step: str) -> str:
        record = f.results.get(step, {})
        if "error" in record:
            return record["error"]
        figures = record.get("figures", {})
        skip = ("process_seconds", "peak_rss_mib")
        return ", ".join(f"{k} {v}" for k, v in figures.items() if k not in skip) or "?"

    measured = {name: r for name, r in f.results.items() if "busy_cpus" in r}
    commits = sorted({r.get("commit", "?") for r in measured.values()})
    timed = {n: r for n, r in measured.items() if n.endswith((".fit", ".sample"))}
    lines = [
        f"- duck_synth (commit {', '.join(commits) or '?'}): {versions('versions')}",
        f"- SDV venv: {versions('sdv_versions')}",
    ]
    if "mostly" in methods:
        lines.append(f"- mostlyai venv: {versions('mostly_versions')}")
    lines += [
        f"- Males: {f.get('split', 'train_sessions') or '?'} train sessions "
        f"({f.get('split', 'train_rows') or '?'} rows) / {f.get('split', 'holdout_sessions') or '?'}"
        f" holdout sessions ({f.get('split', 'holdout_rows') or '?'} rows), seed {SEED}",
        f"- mode {mode.name}: fit budget {mode.budget} s per method",
        "- CPUs kept busy by other processes just before each timed step (of 2; above about "
        "0.2 its seconds are pessimistic, and the load may change during a step): "
        + ", ".join(f"{name} {r['busy_cpus']:.2f}" for name, r in timed.items()),
    ]
    return lines


def report(results: dict[str, dict], mode: Mode, methods: list[str]) -> str:
    f = Figures(results)
    shape_headers = [
        "method",
        "fit",
        "gen",
        "sessions",
        "steps",
        f"{FULL_LENGTH} steps",
        "length TV",
        "consecutive",
        f"{METADATA[0]} constant",
        f"{METADATA[1]} constant",
        f"{MEASURE} lag-1 r",
        f"mean {MEASURE} KS",
    ]
    score_headers = [
        "method",
        "evaluate: sessions",
        "session shapes",
        "session pairs",
        f"step shape {MEASURE}",
        f"lag-1 similarity {MEASURE}",
        "session DCR share",
        "flat overall",
        "SDMetrics: overall",
        "SDMetrics: shapes",
        "SDMetrics: pairs",
    ]
    failures = [f"- {name}: {r['error']}" for name, r in results.items() if "error" in r]
    parts = [
        f"# Session synthesis on Males ({mode.name}, {mode.budget} s per fit, {now()})",
        "## How the sessions hold together",
        markdown_table(shape_headers, shape_rows(f, methods)),
        "## Judged against the real train split",
        markdown_table(score_headers, score_rows(f, methods)),
        NOTES,
        "## Environment",
        "\n".join(environment_lines(f, mode, methods)),
    ]
    if failures:
        parts += ["## Failed steps", "\n".join(failures)]
    return "\n\n".join(parts) + "\n"


# -- the command ---------------------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"{QUICK.budget} s budgets")
    parser.add_argument("--fresh", action="store_true", help="ignore cached step results")
    parser.add_argument("--budget", type=int, help="training seconds per method")
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
        mode = Mode(mode.name, options.budget)
    methods = [m for m in METHODS if m in options.methods]
    runner = SessionsRunner(RESULTS / f"sessions-{mode.name}", options.fresh, options.max_busy)
    for step in plan(mode, str(runner.work.resolve()), methods):
        (runner.recall if options.report_only else runner.run)(step)
    text = report(runner.results, mode, methods)
    (RESULTS / ("sessions.md" if mode.name == "full" else "sessions-quick.md")).write_text(text)
    print(text)
    failed = [name for name, r in runner.results.items() if "error" in r]
    if failed:
        log(f"failed steps: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
