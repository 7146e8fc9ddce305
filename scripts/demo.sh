#!/usr/bin/env bash
# The main job: set up, then fuzz the bundled examples for real and replay what was found.
#   bash scripts/demo.sh            (BUDGET=20s bash scripts/demo.sh for a longer run)
source "$(dirname "$0")/_env.sh"

store=.gradfuzz-demo
rm -rf "$store"
budget=${BUDGET:-5s}

echo "== gradfuzz check: the seed article's examples and a set of correct gradients ($budget each)"
set +e
gradfuzz check examples/seed_ops.py examples/stable_ops.py --budget "$budget" --seed 7 --store "$store"
check=$?
echo
echo "== gradfuzz replay: re-run every stored failure from its stored bits"
gradfuzz replay "$store"
replay=$?
set -e

# The seed's my_op and type_mismatch_op are buggy on purpose: check and replay must both
# find them (exit 1). Any other outcome means gradfuzz itself misbehaved.
if [ "$check" -eq 1 ] && [ "$replay" -eq 1 ]; then
  echo
  echo "Demo finished: gradfuzz caught the seed article's finite-difference gradient (my_op) and"
  echo "type mismatch, passed the correct gradients, and replayed the stored failures ($store/)."
  exit 0
fi
echo "Demo FAILED: expected check and replay to report the seed bugs (exit 1), got check=$check replay=$replay." >&2
exit 1
