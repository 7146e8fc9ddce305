#!/usr/bin/env bash
# The test suite: set up, lint, then every test (slow ones included), then the corpus a second
# time on another kernel path: oneDNN off and one thread per op (TensorFlow's documented
# TF_ENABLE_ONEDNN_OPTS and TF_NUM_INTRAOP_THREADS/TF_NUM_INTEROP_THREADS). Kernels round
# differently there, as they do on CPUs with other vector units: a verdict that depends on the
# last bit fails here, on any machine.
#   bash scripts/test.sh [pytest args]   (with args: only those, in the default configuration)
source "$(dirname "$0")/_env.sh"
# The dashboard's tests drive a real headless browser: Debian's chromium, installed here if missing.
if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  as_root=""
  [ "$(id -u)" = 0 ] || as_root="sudo -n"
  echo "test set-up: installing chromium for the dashboard's browser tests" >&2
  { $as_root apt-get update -qq && DEBIAN_FRONTEND=noninteractive $as_root apt-get install -y -qq chromium; } \
    >.venv/chromium-install.log 2>&1 || echo "test set-up: could not install chromium (.venv/chromium-install.log)" >&2
fi
ruff check .
if [ "$#" -gt 0 ]; then
  exec python -m pytest "$@"
fi
python -m pytest
echo "== the corpus again with oneDNN off and one thread per op"
TF_ENABLE_ONEDNN_OPTS=0 TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1 exec python -m pytest -m corpus
