#!/bin/sh
# The image's command, run under tini (PID 1, which forwards SIGTERM and reaps zombies):
#   api (default)  uvicorn with the Makefile's flags; WEB_CONCURRENCY processes
#   worker         a taskiq job worker (one process; run more containers for more)
#   scheduler      the taskiq scheduler (one is enough: every tick is claimed in Redis)
#   migrate        apply the database migrations, then exit
#   anything else  run as given (`docker run IMAGE litestar users --help`)
# Every branch execs, so the server itself receives the signals and runs its ordered shutdown.
set -eu

role="${1:-api}"
if [ "$#" -gt 0 ]; then
  shift
fi

case "$role" in
  api)
    if [ "${WEB_CONCURRENCY:-1}" -gt 1 ]; then
      # several uvicorn processes: prometheus_client's multiprocess mode, so /metrics counts them all
      export PROMETHEUS_MULTIPROC_DIR="${PROMETHEUS_MULTIPROC_DIR:-/tmp/prometheus-multiproc}"
    fi
    if [ -n "${PROMETHEUS_MULTIPROC_DIR:-}" ]; then
      # files of a previous run would be counted again
      mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
      find "$PROMETHEUS_MULTIPROC_DIR" -maxdepth 1 -type f -name '*.db' -delete
    fi
    exec uvicorn app.main:create_app --factory --host "${HOST:-0.0.0.0}" --port "${PORT:-8000}" \
      --workers "${WEB_CONCURRENCY:-1}" --timeout-graceful-shutdown "${GRACEFUL_TIMEOUT:-20}" \
      --no-access-log --ws-per-message-deflate false "$@"
    ;;
  worker)
    # job metrics are per process (served on JOBS_METRICS_PORT), never multiprocess files
    unset PROMETHEUS_MULTIPROC_DIR
    exec taskiq worker app.composition:worker_broker --workers 1 --no-configure-logging \
      --wait-tasks-timeout "${JOBS_WAIT_SECONDS:-20}" --shutdown-timeout 30 "$@"
    ;;
  scheduler)
    unset PROMETHEUS_MULTIPROC_DIR
    exec taskiq scheduler app.composition:job_scheduler --no-configure-logging "$@"
    ;;
  migrate)
    exec litestar database upgrade --no-prompt "$@"
    ;;
  *)
    exec "$role" "$@"
    ;;
esac
