#!/usr/bin/env bash
# Set up (scripts/setup.sh) and run every test. Privileged tests (BPF, tc, namespaces) need
# root; without it they are skipped with the reason, except under CI=true where they fail.
# Extra arguments go to vitest (e.g. a file filter or --reporter=json).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
npx tsc -p tsconfig.test.json
exec npx vitest run "$@"
