#!/usr/bin/env bash
# The soak test in one command: builds our binaries (debug), makes sure the pinned Go binaries
# are there, and runs target/debug/soak, which brings up its own local federation, runs
# fedstate-scheduler, fedstate-manager and the agents as processes, and stops everything at the
# end. Extra arguments go to soak (see `soak --help`; `--smoke` is the CI version).
#
#   benches/soak.sh                   # full size: 200 MultiCloudMongoDBs + 2,000 bindings, 30 min
#   benches/soak.sh --smoke           # CI: 5 + 200, 5 minutes of churn
#
# Only one local federation may run on a machine at a time: on a shared machine take its lock,
# e.g. `flock /tmp/fedstate-e2e.lock benches/soak.sh --smoke`.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
FEDSTATE_LOCAL_BIN_DIR="$("$repo/deploy/local/build.sh" | tail -n 1)"
export FEDSTATE_LOCAL_BIN_DIR
(cd "$repo" && cargo build --locked -p fedstate-scheduler --bin fedstate-scheduler \
  -p fedstate-manager --bin fedstate-manager -p fedstate-mongo-agent --bin fedstate-mongo-agent \
  -p fedstate-e2e --bin fedstate-sim-shell -p fedstate-benches --bin soak)
exec "$repo/target/debug/soak" "$@"
