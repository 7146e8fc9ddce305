#!/usr/bin/env bash
# The test suite: set up, lint, then every test (slow ones included), then the corpus a second
# time on another kernel path: oneDNN off and one thread per op (TensorFlow's documented
# TF_ENABLE_ONEDNN_OPTS and TF_NUM_INTRAOP_THREADS/TF_NUM_INTEROP_THREADS). Kernels round
# differently there, as they do on CPUs with other vector units: a verdict that depends on the
# last bit fails here, on any machine.
#   bash scripts/test.sh [pytest args]   (with args: only those, in the default configuration)
source "$(dirname "$0")/_env.sh"
ruff check .
if [ "$#" -gt 0 ]; then
  exec python -m pytest "$@"
fi
python -m pytest
echo "== the corpus again with oneDNN off and one thread per op"
TF_ENABLE_ONEDNN_OPTS=0 TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1 exec python -m pytest -m corpus
