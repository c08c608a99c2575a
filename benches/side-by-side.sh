#!/usr/bin/env bash
# The side-by-side scheduling benchmark in one command: builds our binaries (release unless
# --debug), makes sure the pinned Go binaries are there, and runs target/<profile>/side_by_side,
# which brings up its own local federation and stops it at the end. Extra arguments go to
# side_by_side (see `side_by_side --help`; `--smoke` is the CI version).
#
#   benches/side-by-side.sh                       # the full benchmark (about an hour)
#   benches/side-by-side.sh --debug --smoke       # the CI smoke test (200 bindings, one round)
#
# Only one local federation may run on a machine at a time: on a shared machine take its lock,
# e.g. `flock /tmp/fedstate-e2e.lock benches/side-by-side.sh`.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
profile=release
args=()
for a in "$@"; do
  case "$a" in
    --debug) profile=debug ;;
    *) args+=("$a") ;;
  esac
done
flags=(--release)
[ "$profile" = debug ] && flags=()
FEDSTATE_LOCAL_BIN_DIR="$("$repo/deploy/local/build.sh" | tail -n 1)"
export FEDSTATE_LOCAL_BIN_DIR
(cd "$repo" && cargo build --locked "${flags[@]}" -p fedstate-scheduler --bin fedstate-scheduler \
  -p fedstate-benches --bin side_by_side --bin ceiling_scheduler)
exec "$repo/target/$profile/side_by_side" "${args[@]}"
