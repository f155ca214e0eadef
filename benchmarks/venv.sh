#!/usr/bin/env bash
# Create (once) a peer's virtual environment and print its python on stdout.
#
#     bash benchmarks/venv.sh sdv      # SDV and SDMetrics: GaussianCopula, CTGAN, QualityReport
#     bash benchmarks/venv.sh mostly   # mostlyai-engine: TabularARGN
#     bash benchmarks/venv.sh smartnoise   # smartnoise-synth: MST and AIM (differential privacy)
#
# The peers never enter the project's own environment, nor each other's. Each venv lives outside
# the repository (~/.cache/duck_synth_bench/venv-<name>, or $DUCK_SYNTH_BENCH_VENV for sdv and
# $DUCK_SYNTH_BENCH_MOSTLY_VENV for mostly) and is reused while its stamp matches its
# requirements; when they change or an install was interrupted (no stamp), it is made again.
# Everything but the python's path goes to stderr.
#
# torch goes in first and pinned (the CPU wheel): an unpinned torch, pulled in by sdv or
# mostlyai-engine, is a huge CUDA build. mostlyai-engine also pulls CUDA torchvision and
# torchaudio that break its import ("operator torchvision::nms does not exist"); it needs
# neither, so they are uninstalled afterwards.
set -euo pipefail

TORCH="torch==2.13.0"
case "${1:-}" in
sdv)
    VENV="${DUCK_SYNTH_BENCH_VENV:-$HOME/.cache/duck_synth_bench/venv-sdv}"
    WHAT="the peers' venv"
    PACKAGES=(sdv sdmetrics pyarrow)
    REMOVE=()
    CHECK="" # python code that must run in the new venv, if any
    ;;
mostly)
    VENV="${DUCK_SYNTH_BENCH_MOSTLY_VENV:-$HOME/.cache/duck_synth_bench/venv-mostly}"
    WHAT="mostlyai-engine's venv"
    PACKAGES=(mostlyai-engine pyarrow)
    REMOVE=(torchvision torchaudio)
    CHECK="import mostlyai.engine"
    ;;
smartnoise)
    VENV="${DUCK_SYNTH_BENCH_SMARTNOISE_VENV:-$HOME/.cache/duck_synth_bench/venv-smartnoise}"
    WHAT="smartnoise-synth's venv"
    PACKAGES=(smartnoise-synth pyarrow)
    REMOVE=()
    CHECK="from snsynth import Synthesizer; Synthesizer.create('mst', epsilon=1.0)"
    ;;
*)
    echo "usage: venv.sh sdv|mostly|smartnoise" >&2
    exit 2
    ;;
esac

# The stamp, e.g. "torch==2.13.0 | mostlyai-engine pyarrow | -torchvision -torchaudio".
REQUIREMENTS="$TORCH | ${PACKAGES[*]}"
if ((${#REMOVE[@]})); then
    REQUIREMENTS+=" | ${REMOVE[*]/#/-}"
fi
STAMP="$VENV/.duck_synth_bench_stamp"

if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$REQUIREMENTS" && -x "$VENV/bin/python" ]]; then
    echo "$VENV/bin/python"
    exit 0
fi

{
    echo "creating $WHAT in $VENV (a few minutes, once)"
    rm -rf "$VENV"
    mkdir -p "$(dirname "$VENV")"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet "$TORCH"
    "$VENV/bin/pip" install --quiet "$TORCH" "${PACKAGES[@]}"
    if ((${#REMOVE[@]})); then
        "$VENV/bin/pip" uninstall --yes "${REMOVE[@]}" || true
    fi
    if [[ -n "$CHECK" ]]; then
        "$VENV/bin/python" -c "$CHECK"
    fi
} 1>&2
echo "$REQUIREMENTS" >"$STAMP"
echo "$VENV/bin/python"
