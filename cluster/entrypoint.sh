#!/usr/bin/env bash
# The release-gate job's entrypoint: replay every stored failure, then fuzz every target of
# the campaign config on the Ray cluster this runs in, then save the results.
#
#   CONFIG=/work/campaign.toml BUDGET=2h RESULTS=/results bash cluster/entrypoint.sh
#
# Exit status: 0 clean; 1 a stored failure reproduces or the campaign found a new one;
# 2 a configuration, target or cluster error, or a replay or campaign that crashed or was killed
# (any status but 0, 1 and 130); 130 stopped early (the job is retried and resumes). The store named in the config should live on a
# persistent volume, so the next gate replays what this one found.
set -uo pipefail
cd "$(dirname "$0")/.."                # relative target paths mean the repository, on every node

CONFIG=${CONFIG:-/work/campaign.toml}
BUDGET=${BUDGET:-1h}
RESULTS=${RESULTS:-/results}
ADDRESS=${RAY_ADDRESS:-auto}          # inside a RayJob the head's address is set for us
mkdir -p "$RESULTS"

store=$(python - "$CONFIG" <<'PY'
import sys
from gradfuzz.config import load_config
print(load_config(sys.argv[1]).store)
PY
) || { echo "entrypoint: cannot read $CONFIG" >&2; exit 2; }

replay_status=0
if [ -d "$store/failures" ]; then
  echo "== replaying stored failures in $store"
  gradfuzz replay "$store" --format json > "$RESULTS/replay.json"
  replay_status=$?
  [ "$replay_status" -eq 2 ] && exit 2
fi

echo "== campaign $CONFIG for $BUDGET on the Ray cluster at $ADDRESS"
resume=()
if [ -f "$store/campaign.json" ] && grep -q '"status": "running"\|"status": "interrupted"' "$store/campaign.json"; then
  resume=(--resume)                    # a preempted or restarted job continues its campaign
fi
gradfuzz campaign "$CONFIG" --executor ray --address "$ADDRESS" --budget "$BUDGET" "${resume[@]}"
campaign_status=$?

cp "$store/campaign.json" "$RESULTS/" 2>/dev/null || true
gradfuzz export "$store" "$RESULTS/failures-parquet" --overwrite >/dev/null 2>&1 || true
gradfuzz report "$store" --html "$RESULTS/report.html" >/dev/null 2>&1 || true
echo "== results in $RESULTS: campaign.json, replay.json, failures-parquet/, report.html"

# Fail closed: only the statuses gradfuzz documents mean what they say. Anything else (137: OOM
# kill, 139: segfault, 134: abort) is a campaign that did not finish, whatever the replay said.
case "$replay_status" in
  0|1) ;;
  *) echo "entrypoint: replay ended with status $replay_status (crashed or killed): failing the job" >&2; exit 2 ;;
esac
case "$campaign_status" in
  0|1) ;;
  130) exit 130 ;;                     # stopped (SIGTERM/preemption) early: the job is retried and resumes
  *) echo "entrypoint: campaign ended with status $campaign_status (crashed or killed): failing the job" >&2; exit 2 ;;
esac
[ "$campaign_status" -eq 1 ] || [ "$replay_status" -eq 1 ] && exit 1
exit 0
