#!/usr/bin/env bash
# The test suite: set up, lint, then every test (slow ones included).
#   bash scripts/test.sh [pytest args]
source "$(dirname "$0")/_env.sh"
ruff check .
python -m pytest "$@"
