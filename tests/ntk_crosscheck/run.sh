#!/usr/bin/env bash
# Cross-checks al_jax.ntk against neural-tangents in a second, pinned environment.
#
# neural-tangents 0.6.5 (its last release) imports only with an old jax and hard-requires
# TensorFlow, so it cannot live beside al_jax's jax. This script creates (or reuses) a venv
# with the versions below, saves a small model's eNTKs with the main environment, and
# compares them there (tests/ntk_crosscheck/compare_nt.py).
#
# Exit status: 0 when the comparison passed, or when the pinned environment cannot be
# installed (no package index reachable: reported as SKIPPED); 1 when it ran and disagreed.
set -uo pipefail
cd "$(dirname "$0")/../.."
# PYTHON runs al_jax (the project's environment); NT_PYTHON is the interpreter the pinned
# environment is created from (default: the same Python as PYTHON's).
PYTHON="${PYTHON:-python3}"
NT_PYTHON="${NT_PYTHON:-$PYTHON}"
VENV="${AL_JAX_NT_VENV:-${TMPDIR:-/tmp}/al_jax_nt_venv}"
PINS=("jax==0.4.25" "jaxlib==0.4.25" "numpy==1.26.4" "neural-tangents==0.6.5"
      "tensorflow==2.21.0" "tf2jax==0.3.6")
STAMP="$VENV/.al_jax_pins"
WANT="${PINS[*]} python $("$NT_PYTHON" -c 'import sys; print(sys.version.split()[0])' 2>/dev/null)"
start=$(date +%s)
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$WANT" ]; then
  rm -rf "$VENV"
  if ! { "$NT_PYTHON" -m venv "$VENV" && "$VENV/bin/python" -m pip install -q "${PINS[@]}"; }; then
    echo "ntk cross-check SKIPPED: could not install the pinned environment (${PINS[*]})"
    rm -rf "$VENV"
    exit 0
  fi
  echo "$WANT" > "$STAMP"
  echo "ntk cross-check: pinned environment created in $(( $(date +%s) - start )) s"
else
  echo "ntk cross-check: reusing the pinned environment $VENV"
fi
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
"$PYTHON" -m experiments.ntk_crosscheck "$out/ntk.npz" || exit 1
TF_CPP_MIN_LOG_LEVEL=3 JAX_PLATFORMS=cpu "$VENV/bin/python" tests/ntk_crosscheck/compare_nt.py "$out/ntk.npz"
