"""duck_synth's differential privacy against its peers at the same epsilon: quality, fit time
and a membership-inference attack.

    python benchmarks/privacy.py                 # diamonds and SLID at epsilon 1 and 5; resumable
    python benchmarks/privacy.py --epsilons 1 --datasets slid --methods privbayes mst
    python benchmarks/privacy.py --fresh         # forget cached step results, measure again
    python benchmarks/privacy.py --report-only   # the report from what is cached so far

Methods at each epsilon (delta 1e-5 where the method has one): duck_synth's DP-SGD
(``train(epsilon => ...)``, the autoregressive method) and ``method => 'privbayes'``;
smartnoise-synth's MST and AIM (``--statistics-share`` of epsilon, 0.3 as duck_synth's default,
for the bounds of continuous columns, the rest for the synthesizer); mostlyai-engine's DP mode
(the same share as the engine's ``value_protection_epsilon``, the rest as its DP-SGD
``max_epsilon``); duck_synth spends that share on its statistics. duck_synth without DP is
the reference. Fits that take a time budget (duck_synth's DP-SGD, mostlyai-engine) get
``--budget`` seconds; PrivBayes, MST and AIM run to completion.

The data, split and judging are peers.py's: the dataset shuffled with seed 0 and split 80/20,
as many synthetic rows as the train split, judged against the train split by duck_synth's
``evaluate()`` (overall score; membership-inference AUC and DCR share with the holdout as
non-members) and by SDMetrics' QualityReport. The step machinery is foundation.py's; the peers
run in their own venvs (``venv.sh sdv``, ``mostly``, ``smartnoise``). The report goes to
benchmarks/results/privacy.md and is printed; README.md explains it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from foundation import RESULTS, Figures, Step, markdown_table, now
from peers import (
    DATA,
    DATASETS,
    HOLDOUT_SHARE,
    SEED,
    PeersRunner,
    fingerprinted,
    fmt,
    our_pairs,
    their_pairs,
)

METHODS = {
    "duck_synth": "duck_synth DP-SGD",
    "privbayes": "duck_synth privbayes",
    "mst": "smartnoise MST",
    "aim": "smartnoise AIM",
    "mostly": "mostlyai-engine DP",
}
REFERENCE = "reference"  # duck_synth without DP, once per dataset
OURS = ("duck_synth", "privbayes")
BUDGET = 120  # seconds of training for the methods that take a budget
UNBOUNDED_TIMEOUT = 900  # MST and AIM have no budget (AIM: 556 s on diamonds at epsilon 1): a guard


def dataset_plan(
    name: str, work: Path, epsilons: list[float], methods: list[str], budget: int, share: float
) -> list[Step]:
    data = DATASETS[name]
    folder = work / name
    folder.mkdir(parents=True, exist_ok=True)
    train, holdout = str(folder / "train.parquet"), str(folder / "holdout.parquet")
    split = {"csv": str(DATA / data.file), "seed": SEED, "holdout_share": HOLDOUT_SHARE}
    split |= {"train": train, "holdout": holdout, "drop": list(data.drop), "subsample": None}
    steps = [Step(f"{name}.split", "duck", "split", split)]
    runs = [(REFERENCE, None)] + [(m, e) for e in epsilons for m in methods]
    for method, epsilon in runs:
        label = f"{name}.{method}" + (f".eps{epsilon:g}" if epsilon else "")
        output = str(folder / f"{label}.parquet")
        fitted = fit_steps(method, epsilon, label, folder, train, output, budget, data, share)
        fitted = [Step(s.name, s.side, s.action, s.args, (f"{name}.split", *s.needs), s.timeout)
                  for s in fitted]  # fmt: skip
        steps += fitted
        made = (f"{name}.split", fitted[-1].name)
        judged = {"real": train, "synthetic": output}
        steps += [
            Step(f"{label}.evaluate", "duck", "evaluate", judged | {"holdout": holdout}, made),
            Step(
                f"{label}.sdmetrics",
                "sdv",
                "quality",
                judged | {"categorical": list(data.categorical)},
                made,
            ),
        ]
    return steps


def fit_steps(method, epsilon, label, folder, train, output, budget, data, share) -> list[Step]:
    """The step(s) that fit ``method`` at ``epsilon`` and write ``output``; the last writes it."""
    privacy = {"epsilon": epsilon, "statistics_share": share} if epsilon else {}
    if method in (REFERENCE, *OURS):
        database = str(folder / f"{label}.duckdb")
        fit = {"database": database, "train": train, "max_time": budget, "seed": SEED} | privacy
        if method == "privbayes":
            fit["method"] = "privbayes"
        sample = {"database": database, "like": train, "seed": 1, "output": output}
        return [
            Step(f"{label}.fit", "duck", "train", fit, (), 10 * budget + 600),
            Step(f"{label}.sample", "duck", "sample", sample, (f"{label}.fit",)),
        ]
    if method in ("mst", "aim"):
        args = {"train": train, "like": train, "output": output, "method": method}
        args |= {"categorical": list(data.categorical), "delta": 1e-5} | privacy
        return [Step(f"{label}.fit", "smartnoise", "fit_sample", args, (), UNBOUNDED_TIMEOUT)]
    workspace = str(folder / f"{label}_workspace")
    fit = {"train": train, "workspace": workspace, "seed": SEED, "budget": budget} | privacy
    sample = {"workspace": workspace, "like": train, "seed": 1, "output": output}
    return [
        Step(f"{label}.fit", "mostly", "fit", fit, (), 10 * budget + 600),
        Step(f"{label}.sample", "mostly", "sample", sample, (f"{label}.fit",)),
    ]


def plan(work: Path, datasets, epsilons, methods, budget, share) -> list[Step]:
    steps = [
        Step("versions", "duck", "versions", reuse=False),
        Step("sdv_versions", "sdv", "versions", reuse=False),
    ]
    if "mostly" in methods:
        steps.append(Step("mostly_versions", "mostly", "versions", reuse=False))
    if {"mst", "aim"} & set(methods):
        steps.append(Step("smartnoise_versions", "smartnoise", "versions", reuse=False))
    for name in datasets:
        steps += dataset_plan(name, work, epsilons, methods, budget, share)
    return [fingerprinted(step) for step in steps]


# -- the report ----------------------------------------------------------------------------------
def rows_for(f: Figures, name: str, epsilon: float | None, methods: list[str]) -> list[list[str]]:
    rows = []
    labels = [(REFERENCE, None)] if epsilon is None else [(m, epsilon) for m in methods]
    best = None
    if epsilon is not None:
        scored = {m: f.get(f"{name}.{m}.eps{epsilon:g}.sdmetrics", "overall") for m in methods}
        ranked = sorted((v, m) for m, v in scored.items() if v is not None)
        best = ranked[-1][1] if ranked else None
    for method, eps in labels:
        label = f"{name}.{method}" + (f".eps{eps:g}" if eps else "")
        error = (f.results.get(f"{label}.fit") or {}).get("error")
        spent = f.get(f"{label}.fit", "epsilon") if method in OURS else eps
        title = METHODS.get(method, "duck_synth, no DP (reference)")
        if method == best:
            title = f"**{title}**"
        rows.append(
            [
                name,
                "—" if eps is None else f"{eps:g}",
                title,
                f"failed: {error[:80]}"
                if error
                else fmt(f.get(f"{label}.fit", "seconds"), ",.1f", " s"),
                fmt(spent, ".3f"),
                fmt(f.get(f"{label}.sdmetrics", "overall"), ".3f"),
                fmt(f.get(f"{label}.sdmetrics", "column_shapes"), ".3f"),
                their_pairs(f, f"{label}.sdmetrics"),
                fmt(f.get(f"{label}.evaluate", "overall"), ".3f"),
                our_pairs(f, f"{label}.evaluate"),
                fmt(f.get(f"{label}.evaluate", "membership_auc"), ".3f"),
                fmt(f.get(f"{label}.evaluate", "dcr_share"), ".3f"),
            ]
        )
    return rows


NOTES = """\
- **ε spent**: what duck_synth recorded in its catalog (statistics share + DP-SGD by Opacus'
  RDP accountant, or PrivBayes' budget); for the peers, the ε they were given. Bold: the best
  SDMetrics overall score at that ε.
- **fit**: seconds of the fit call (smartnoise: `fit`; mostlyai-engine: split, analyze, encode,
  train). DP-SGD fits (duck_synth, mostlyai-engine) have the budget given in the environment
  lines; PrivBayes, MST and AIM run to completion.
- **SDMetrics**: QualityReport overall, column shapes, column pair trends († = NaN, a pair
  with NULLs: the mean of the scored pairs). **ours**: duck_synth's `evaluate()` overall and
  pair trends (* = no strongly related pair in the real data, as on SLID: the mean over all
  pairs; the overall score is then the shapes alone, for SDMetrics too). **membership AUC**: the distance attack of `evaluate()` (train rows
  against holdout rows by their distance to the nearest synthetic row; 0.5 = no better than a
  coin). **DCR share**: share of synthetic rows nearer the train split than the holdout."""


def report(results, datasets, epsilons, methods, setting: str) -> str:
    f = Figures(results)
    headers = [
        "dataset",
        "ε",
        "method",
        "fit",
        "ε spent",
        "SDMetrics: overall",
        "SDMetrics: shapes",
        "SDMetrics: pairs",
        "ours: overall",
        "ours: pairs",
        "membership AUC",
        "DCR share",
    ]
    rows = []
    for name in datasets:
        rows += rows_for(f, name, None, methods)
        for epsilon in epsilons:
            rows += rows_for(f, name, epsilon, methods)
    versions = []
    for step in ("versions", "sdv_versions", "mostly_versions", "smartnoise_versions"):
        figures = (results.get(step) or {}).get("figures", {})
        versions += [
            f"{k} {v}" for k, v in figures.items() if k not in ("process_seconds", "peak_rss_mib")
        ]
    failures = [f"- {name}: {r['error']}" for name, r in results.items() if "error" in r]
    parts = [
        f"# duck_synth's differential privacy against its peers ({now()})",
        markdown_table(headers, rows),
        NOTES,
        "## Environment",
        f"- training budget {setting}",
        "- " + ", ".join(versions),
    ]
    if failures:
        parts += ["## Failed steps", "\n".join(failures)]
    return "\n\n".join(parts) + "\n"


def not_cached(runner: PeersRunner, step: Step) -> dict:
    """A step without a result: failed (only successes are cached; its log is kept) or not run."""
    log = runner.work / f"{step.name}.log"
    if log.exists():
        return {"error": f"failed or timed out when last run (see {log.name})"}
    return {"error": "not measured yet"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--datasets", nargs="+", choices=list(DATASETS), default=["diamonds", "slid"]
    )
    parser.add_argument("--epsilons", nargs="+", type=float, default=[1.0, 5.0])
    parser.add_argument("--methods", nargs="+", choices=list(METHODS), default=list(METHODS))
    parser.add_argument("--budget", type=int, default=BUDGET, help="training seconds")
    parser.add_argument(
        "--statistics-share", type=float, default=0.3, help="of epsilon, for statistics"
    )
    parser.add_argument("--fresh", action="store_true", help="ignore cached step results")
    parser.add_argument("--report-only", action="store_true", help="run nothing")
    parser.add_argument("--max-busy", type=float, help="wait for at most this many busy CPUs")
    options = parser.parse_args(argv)
    methods = [m for m in METHODS if m in options.methods]
    runner = PeersRunner(RESULTS / "privacy", options.fresh, options.max_busy)
    steps = plan(
        runner.work.resolve(),
        options.datasets,
        options.epsilons,
        methods,
        options.budget,
        options.statistics_share,
    )
    for step in steps:
        if options.report_only:
            runner.results[step.name] = runner.cached(step) or not_cached(runner, step)
        else:
            runner.run(step)
    text = report(
        runner.results,
        options.datasets,
        options.epsilons,
        methods,
        f"{options.budget} s for duck_synth DP-SGD, the reference and mostlyai-engine; "
        f"statistics share {options.statistics_share:g} of epsilon for every method",
    )
    (RESULTS / "privacy.md").write_text(text)
    print(text)
    return 1 if any("error" in r for r in runner.results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
