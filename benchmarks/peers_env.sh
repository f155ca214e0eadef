#!/usr/bin/env bash
# Create (once) the virtual environment that holds the peers: SDV and SDMetrics.
#
# The peers never enter the project's own environment. The venv lives outside the repository
# (default ~/.cache/duck_synth_bench/venv-sdv, or $DUCK_SYNTH_BENCH_VENV) and is reused while its
# stamp matches the requirements below; an interrupted install is redone. Prints the venv's python.
#
# torch goes in first and pinned: an unpinned torch (pulled in by sdv) is a huge CUDA build.
set -euo pipefail

VENV="${DUCK_SYNTH_BENCH_VENV:-$HOME/.cache/duck_synth_bench/venv-sdv}"
REQUIREMENTS="torch==2.13.0 | sdv sdmetrics pyarrow"
STAMP="$VENV/.duck_synth_bench_stamp"

if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$REQUIREMENTS" && -x "$VENV/bin/python" ]]; then
    echo "$VENV/bin/python"
    exit 0
fi

{
    echo "creating the peers' venv in $VENV (a few minutes, once)"
    rm -rf "$VENV"
    mkdir -p "$(dirname "$VENV")"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet "torch==2.13.0"
    "$VENV/bin/pip" install --quiet "torch==2.13.0" sdv sdmetrics pyarrow
} 1>&2
echo "$REQUIREMENTS" >"$STAMP"
echo "$VENV/bin/python"
