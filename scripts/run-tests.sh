#!/usr/bin/env bash
# The test suite, as `make test` and CI run it: real Anvil, SQLite, and PostgreSQL where reachable.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p test-artifacts
# Types first (mypy --strict, [tool.mypy] in pyproject.toml): an error fails the run in seconds.
.venv/bin/mypy node api oracle waymark scripts/bench tests
# Two workers on a 2-core machine; each worker starts its own Anvil. A module is one unit of work
# (the e2e stories that share a world are one unit together: tests/conftest.py), taken slowest
# first (the order tests/conftest.py gives), not xdist's most-tests-first.
PYTEST=(.venv/bin/python -m pytest -n 2 --dist loadfile --no-loadscope-reorder -p no:cacheprovider)
if [ "$#" -ne 0 ]; then
  exec "${PYTEST[@]}" "$@"
fi
# The whole suite: the e2e stories also run on a chain that mines a block every second, as a
# Besu/QBFT network does, instead of a block per transaction. That run mostly waits for blocks,
# so it runs beside the main run instead of after it (its output, in test-artifacts/, is shown
# when both have ended). Job control gives it a process group of its own: Ctrl-C stops the main
# run, and the EXIT trap stops this one the same way (pytest tears its demo networks down).
set -m
WAYMARK_TEST_BLOCK_TIME=1 "${PYTEST[@]}" tests/e2e/test_1_trade.py tests/e2e/test_2_dispute.py tests/e2e/test_3_counterfeit.py \
  tests/e2e/test_4_audit.py tests/e2e/test_5_every_node.py >test-artifacts/e2e-block-time.log 2>&1 &
block_time_run=$!
trap 'kill -INT -- "-$block_time_run" 2>/dev/null || true' EXIT
main=0
"${PYTEST[@]}" || main=$?
if [ "$main" -gt 128 ]; then kill -INT -- "-$block_time_run" 2>/dev/null || true; fi  # the main run was interrupted
block_time=0
wait "$block_time_run" || block_time=$?
trap - EXIT
echo "== the e2e stories with a block every second (test-artifacts/e2e-block-time.log) =="
cat test-artifacts/e2e-block-time.log
if [ "$main" -ne 0 ] || [ "$block_time" -ne 0 ]; then
  echo "failed: the suite (exit $main), the e2e stories with a block every second (exit $block_time)" >&2
  exit 1
fi
