#!/usr/bin/env bash
# The e2e tier: build (or reuse) the pinned Go binaries, run the e2e tests (each test binary
# brings up its own local federation and tears it down), then check that no process of the e2e
# federation is left. Extra arguments go to the test binaries (e.g. a test name filter).
#
#   deploy/local/e2e.sh                   # all e2e tests
#   deploy/local/e2e.sh federation_smoke  # just the smoke tests
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
run_dir="${FEDSTATE_E2E_DIR:-$repo/.fedstate-local/e2e}"

bin_dir="$("$here/build.sh" | tail -n 1)"
export FEDSTATE_LOCAL_BIN_DIR="$bin_dir" FEDSTATE_E2E=1 FEDSTATE_E2E_DIR="$run_dir"

our_dir=""
# Processes of the federation's binaries, or of ours, that still name the e2e run directory
# ("pid name" per line).
left_behind() {
    local p exe
    for p in /proc/[0-9]*; do
        exe="$(readlink "$p/exe" 2>/dev/null || true)"
        [[ "$exe" == "$bin_dir"/* || ( -n "$our_dir" && "$exe" == "$our_dir"/* ) ]] || continue
        if tr '\0' ' ' <"$p/cmdline" 2>/dev/null | grep -qF "$run_dir"; then
            echo "${p#/proc/} $(basename "$exe")"
        fi
    done
}
# Interrupted (Ctrl-C, a CI timeout): the test binaries die without their teardown, and the
# federation's processes run in their own process groups; stop them, or they hold the ports (and
# any lock this script runs under) until someone finds them.
kill_tree() {
    local child
    for child in $(pgrep -P "$1"); do kill_tree "$child"; done
    kill -TERM "$1" 2>/dev/null || true
}
interrupted() {
    trap - INT TERM
    echo "e2e: interrupted; stopping the tests and the federation's processes" >&2
    [[ -n "$test_pid" ]] && kill_tree "$test_pid"
    left_behind | while read -r pid _; do kill -TERM "$pid" 2>/dev/null || true; done
    sleep 2
    left_behind | while read -r pid _; do kill -KILL "$pid" 2>/dev/null || true; done
    exit 130
}
test_pid=""
trap interrupted INT TERM

status=0
# Our binaries, for the suites that run them as processes (as users run them) and build images of
# them; the tests find them next to themselves in the target directory (e2e/src/process.rs).
(cd "$repo" && cargo build -p fedstate-scheduler -p fedstate-manager -p fedstate-mongo-agent --bins) || exit 1
our_dir="$(cd "$repo" && cargo metadata --format-version 1 --no-deps |
    sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')/debug"
# --no-fail-fast: every suite runs and reports, not only those before the first failure. In the
# background, so a signal reaches the trap at once (bash runs traps only between commands).
(cd "$repo" && cargo test -p fedstate-e2e --no-fail-fast -- --nocapture --test-threads=1 "$@") &
test_pid=$!
wait "$test_pid" || status=$?

mapfile -t left < <(left_behind)
if ((${#left[@]})); then
    echo "e2e: processes left behind (pid name): ${left[*]}" >&2
    echo "e2e: logs in $run_dir/logs" >&2
    exit 1
fi
if ((status != 0)); then
    echo "e2e: tests failed; process logs of the last federation are in $run_dir/logs" >&2
fi
exit "$status"
