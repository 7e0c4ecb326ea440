#!/usr/bin/env bash
# Starts the web server, the django-q2 cluster and the simulated fleet on 127.0.0.1:8000;
# Ctrl-C stops all three.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
# Local use only: debug pages and the local SECRET_KEY (DEBUG is off unless set).
export DEBUG="${DEBUG:-true}"
pids=()
stop() {
  trap - INT TERM EXIT
  echo; echo "Stopping…"
  kill "${pids[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
}
trap stop INT TERM EXIT
# Below the web's priority: its every-minute jobs wait for idle cores (docs/operations.md).
nice -n 10 $PY manage.py qcluster &
pids+=($!)
$PY manage.py runserver 127.0.0.1:8000 --noreload &
pids+=($!)
# The simulated upload fleet: real gates and reporters, so the dashboard has a fleet to show.
$PY manage.py run_fleet --dashboard-url http://127.0.0.1:8000 &
pids+=($!)
echo "Upload Ops: http://127.0.0.1:8000/  (Ctrl-C stops web, worker and the simulated fleet)"
# Web and worker are the dashboard: if either stops, stop everything (the fleet is optional).
wait -n "${pids[0]}" "${pids[1]}"
