# Shared set-up for scripts/demo.sh and scripts/test.sh: a virtual environment in .venv
# with gradfuzz installed (editable) and its TensorFlow extra. Idempotent: it reinstalls
# only when pyproject.toml changed. Set GRADFUZZ_EXTRA=gpu to force the CUDA build.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PYTHON=${PYTHON:-}
if [ -z "$PYTHON" ]; then
  for candidate in python3.11 python3.12 python3.13 python3; do
    if command -v "$candidate" >/dev/null 2>&1; then PYTHON=$candidate; break; fi
  done
fi
[ -n "$PYTHON" ] || { echo "gradfuzz set-up: no python3 found; install Python 3.11+ first." >&2; exit 2; }

extra=${GRADFUZZ_EXTRA:-}
if [ -z "$extra" ]; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then extra=gpu; else extra=cpu; fi
fi

if [ ! -x .venv/bin/python ]; then
  echo "gradfuzz set-up: creating .venv with $PYTHON" >&2
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.gradfuzz-installed
want="$(sha256sum pyproject.toml | cut -c1-16)-$extra"
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
  echo "gradfuzz set-up: installing gradfuzz[$extra,dev] into .venv (about a minute the first time)" >&2
  log=.venv/install.log
  if ! { .venv/bin/python -m pip install --disable-pip-version-check --upgrade pip &&
         .venv/bin/python -m pip install --disable-pip-version-check -e ".[$extra,dev]"; } >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    echo "gradfuzz set-up: pip install failed (full log: $log)." >&2
    exit 2
  fi
  echo "$want" > "$stamp"
fi
export PATH="$PWD/.venv/bin:$PATH"
