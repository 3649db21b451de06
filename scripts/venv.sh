#!/usr/bin/env bash
# Creates (or reuses) the project's virtual environment, .venv, with Python >= 3.12.
#
#   bash scripts/venv.sh            # then: .venv/bin/pip install -e '.[test]'
#   VENV=/path/to/env bash scripts/venv.sh
#
# al_jax needs Python >= 3.12: the jax releases whose XLA:CPU computes the right numbers
# (the numerics canaries in tests/test_numerics_canaries.py) are published for 3.12+ only.
# The interpreter is the first of: $AL_JAX_PYTHON; python3.12, python3.13 or python3 on PATH
# if >= 3.12 (an activated virtual environment counts); a pyenv-installed 3.12/3.13 (pyenv
# shims refuse versions that are installed but not selected, so they are looked up directly).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"

ok() {  # ok PYTHON: true if it runs and is >= 3.12
  "$1" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' >/dev/null 2>&1
}

find_python() {
  local c v root
  if [ -n "${AL_JAX_PYTHON:-}" ]; then
    ok "$AL_JAX_PYTHON" && { echo "$AL_JAX_PYTHON"; return; }
    echo "scripts/venv.sh: AL_JAX_PYTHON=$AL_JAX_PYTHON is not Python >= 3.12" >&2
    return 1
  fi
  for c in python3.12 python3.13 python3; do
    command -v "$c" >/dev/null 2>&1 && ok "$c" && { command -v "$c"; return; }
  done
  root="$(pyenv root 2>/dev/null || echo "${PYENV_ROOT:-$HOME/.pyenv}")"
  for v in 3.12 3.13; do
    for c in "$root"/versions/"$v".*/bin/python"$v"; do
      [ -x "$c" ] && ok "$c" && { echo "$c"; return; }
    done
  done
  echo "scripts/venv.sh: no Python >= 3.12 found (tried python3.12, python3.13, python3 and" \
       "pyenv's versions); install one, or point AL_JAX_PYTHON at it" >&2
  return 1
}

if [ -x "$VENV/bin/python" ] && ok "$VENV/bin/python"; then
  echo "using $VENV ($("$VENV/bin/python" --version))"
  exit 0
fi
PY="$(find_python)"
rm -rf "$VENV"
"$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null 2>&1 || true
echo "created $VENV with $("$VENV/bin/python" --version) from $PY"
