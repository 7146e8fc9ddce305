#!/usr/bin/env bash
# The main job: set up, then a real fuzz campaign over the bundled examples on a local Ray
# instance (started and stopped by gradfuzz), then a replay of every failure it stored.
#   bash scripts/demo.sh            (BUDGET=5m bash scripts/demo.sh for a longer run)
source "$(dirname "$0")/_env.sh"

store=.gradfuzz-demo
rm -rf "$store"
budget=${BUDGET:-40s}

echo "== gradfuzz campaign: the seed article's examples and a set of correct gradients, $budget on Ray workers"
set +e
gradfuzz campaign examples/campaign.toml --executor ray --budget "$budget"
campaign=$?
echo
echo "== gradfuzz triage: the distinct bugs found"
gradfuzz triage "$store"
echo
echo "== gradfuzz replay: re-run every stored failure from its stored bits"
gradfuzz replay "$store"
replay=$?
set -e

# The seed's my_op and type_mismatch_op are buggy on purpose: the campaign and the replay must
# both find them (exit 1), and nothing else may be flagged. Anything else means gradfuzz misbehaved.
failing=$(python - "$store/campaign.json" <<'PY'
import json, sys
targets = json.load(open(sys.argv[1]))["targets"]
print(" ".join(sorted(t["target"].rsplit(":", 1)[1] for t in targets if t["failures_by_category"] or t["error"])))
PY
)
echo "targets with failures: $failing"
if [ "$campaign" -eq 1 ] && [ "$replay" -eq 1 ] && [ "$failing" = "my_op type_mismatch_op" ]; then
  echo
  echo "Demo finished: gradfuzz caught the seed article's finite-difference gradient (my_op) and"
  echo "type mismatch, passed the correct gradients, and replayed the stored failures ($store/,"
  echo "campaign.json holds per-target counts, throughput, seeds and the environment)."
  exit 0
fi
echo "Demo FAILED: expected the campaign and replay to report exactly my_op and type_mismatch_op (exit 1)," \
     "got campaign=$campaign replay=$replay, failing: $failing." >&2
exit 1
