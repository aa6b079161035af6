#!/usr/bin/env bash
# Every benchmark of SPEC section 10: on SQLite, then on PostgreSQL where it applies.
#
#   bench/run_all.sh            full sizes (about 45 minutes on 2 cores)
#   bench/run_all.sh --quick    small sizes, to check the benchmarks themselves run
#   bench/run_all.sh --sqlite   SQLite only
#
# Each benchmark prints its figures beside the targets with PASS or MISS; a MISS is a
# result, not a failure: the exit code is non-zero only when a benchmark itself failed.
set -u
cd "$(dirname "$0")/.."
PY=.venv/bin/python
quick=0
backends=("" "--postgres")
for arg in "$@"; do
  case "$arg" in
    --quick) quick=1 ;;
    --sqlite) backends=("") ;;
    *) echo "usage: bench/run_all.sh [--quick] [--sqlite]" >&2; exit 2 ;;
  esac
done

status=0
run() {
  echo
  echo "\$ $PY -m $*"
  "$PY" -m "$@" || status=1
}

for db in "${backends[@]}"; do
  if [ "$quick" = 1 ]; then
    run bench.plan $db --patients 5000
    run bench.claim $db --patients 10000 --runs 50
    run bench.dispatch $db --patients 500
    run bench.lateness $db --patients 5 --seconds 15 --enrolled 2000 --burst 50
    run bench.memory $db --patients 5000 --idle 5
    run bench.apscheduler_baseline $db --patients 100 --drops 100 --outage 2
    run bench.dashboard $db --patients 5000 --runs 50
    run bench.status $db --patients 2000 --stuck 200
    run bench.checkins $db --replies 20 --commands 3
  else
    run bench.plan $db
    run bench.claim $db
    run bench.dashboard $db
    run bench.dispatch $db
    run bench.lateness $db --burst 500
    run bench.memory $db
    run bench.apscheduler_baseline $db
    run bench.status $db
    run bench.checkins $db
  fi
done
exit $status
