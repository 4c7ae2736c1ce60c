#!/usr/bin/env bash
# The whole test suite, as `npm test` runs it (and .ci/run through it):
# lint and type-check, install the real protocol clients and start the real
# services the tests use (Ceph RGW for S3), from Debian's packages when
# missing, then node:test.
set -euo pipefail
cd "$(dirname "$0")/.."

npm run lint

# The real clients of the cache protocols (ccache, gradle, bazel), once per machine.
bash scripts/clients.sh

if [[ -z "${HOARD_TEST_S3_ENDPOINT:-}" ]]; then
  bash scripts/rgw.sh start
  eval "$(bash scripts/rgw.sh env)"
  export HOARD_TEST_S3_ENDPOINT="$AWS_ENDPOINT_URL_S3"
fi

# Two test files at a time: the CI machine has two cores.
exec node --test --test-concurrency=2 --test-timeout=600000 "test/**/*.test.ts"
