#!/usr/bin/env bash
# Create (once) the virtual environment that holds mostlyai-engine (TabularARGN).
#
# Its own venv, apart from SDV's and the project's: default ~/.cache/duck_synth_bench/venv-mostly,
# or $DUCK_SYNTH_BENCH_MOSTLY_VENV; reused while its stamp matches the requirements below.
# Prints the venv's python.
#
# torch goes in first and pinned (the CPU wheel; an unpinned torch is a huge CUDA build).
# mostlyai-engine pulls CUDA torchvision and torchaudio that break its import ("operator
# torchvision::nms does not exist"); it needs neither, so they are uninstalled afterwards.
set -euo pipefail

VENV="${DUCK_SYNTH_BENCH_MOSTLY_VENV:-$HOME/.cache/duck_synth_bench/venv-mostly}"
REQUIREMENTS="torch==2.13.0 | mostlyai-engine pyarrow | -torchvision -torchaudio"
STAMP="$VENV/.duck_synth_bench_stamp"

if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$REQUIREMENTS" && -x "$VENV/bin/python" ]]; then
    echo "$VENV/bin/python"
    exit 0
fi

{
    echo "creating mostlyai-engine's venv in $VENV (a few minutes, once)"
    rm -rf "$VENV"
    mkdir -p "$(dirname "$VENV")"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet "torch==2.13.0"
    "$VENV/bin/pip" install --quiet "torch==2.13.0" mostlyai-engine pyarrow
    "$VENV/bin/pip" uninstall --yes torchvision torchaudio || true
    "$VENV/bin/python" -c "import mostlyai.engine"
} 1>&2
echo "$REQUIREMENTS" >"$STAMP"
echo "$VENV/bin/python"
