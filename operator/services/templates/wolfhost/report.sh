#!/usr/bin/env bash
# Tells the operator how configuration went: POST with this VM's bearer token, retried
# with backoff (the operator may be restarting) for up to about an hour.
set -uo pipefail
# shellcheck source=/dev/null
. /etc/gamevm/gamevm.env

ready=$1
games=$2
message=$3
if [ -z "${GAMEVM_REPORT_URL:-}" ]; then
  echo "no report URL configured: the operator cannot be told" >&2
  exit 1
fi
body=$(printf '{"gamingEnvironmentReady": %s, "gamesMounted": %s, "message": "%s"}' \
  "$ready" "$games" "${message//\"/\'}")
delay=5
for _ in $(seq 1 40); do
  if curl -fsS -X POST --max-time 20 \
    -H "Authorization: Bearer $GAMEVM_TOKEN" \
    -H "Content-Type: application/json" \
    --data "$body" "$GAMEVM_REPORT_URL"; then
    exit 0
  fi
  sleep "$delay"
  delay=$((delay < 120 ? delay * 2 : 120))
done
exit 1
