#!/usr/bin/env bash
# Starts the web server and the django-q2 cluster on 127.0.0.1:8000; Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
pids=()
stop() {
  trap - INT TERM EXIT
  echo; echo "Stopping…"
  kill "${pids[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
}
trap stop INT TERM EXIT
$PY manage.py qcluster &
pids+=($!)
$PY manage.py runserver 127.0.0.1:8000 --noreload &
pids+=($!)
echo "Upload Ops: http://127.0.0.1:8000/  (Ctrl-C stops web and worker)"
wait -n "${pids[@]}"
