#!/usr/bin/env bash
# Regenerate cluster/requirements-gpu.lock from the environment CI tests (scripts/_env.sh's .venv):
# the same versions, with TensorFlow's CUDA build instead of tensorflow-cpu; test-only tools left out.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_env.sh
{
  echo "# Exact versions for the cluster image: the set CI tests (scripts/_env.sh), with TensorFlow's CUDA build."
  echo "# Regenerate: bash cluster/lock.sh (pip freeze of a fresh .venv; tensorflow-cpu -> tensorflow[and-cuda])."
  python -m pip freeze | grep -v -E '^(-e |gradfuzz|pytest|ruff|pandas|polars|duckdb|mpmath|iniconfig|pluggy)' \
    | sed 's/^tensorflow_cpu==/tensorflow[and-cuda]==/'
} > cluster/requirements-gpu.lock
