#!/usr/bin/env bash
# The main job on the local federation: bring up real Kubernetes + Karmada processes, start
# fedstate-scheduler, fedstate-manager and one fedstate-mongo-agent per member, apply FedState's
# MultiCloudMongoDB sample, and print the placement and the resulting status.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
[ -x deploy/local/build.sh ] || missing+=("local federation (deploy/local)")
grep -q '"run"\|Run(' scheduler/src/main.rs 2>/dev/null || missing+=("fedstate-scheduler service")
grep -q 'Controller' manager/src/*.rs 2>/dev/null || missing+=("fedstate-manager")
grep -q 'Controller' mongo-agent/src/*.rs 2>/dev/null || missing+=("fedstate-mongo-agent")
if [ ${#missing[@]} -gt 0 ]; then
  echo "demo: not built yet:"
  printf '  - %s\n' "${missing[@]}"
  echo "What works today: the offline planner, e.g."
  echo "  cargo run -q -p fedstate-scheduler -- plan --clusters <clusters.yaml> --object deploy/samples/seed/multicloudmongodb-full.yaml"
  exit 2
fi
exec cargo run --locked -q -p fedstate-local -- demo "$@"
