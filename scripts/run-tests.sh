#!/usr/bin/env bash
# The test suite, as `make test` and CI run it: real Anvil, SQLite, and PostgreSQL where reachable.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p test-artifacts
# Types first (mypy --strict, [tool.mypy] in pyproject.toml): an error fails the run in seconds.
.venv/bin/mypy node api oracle waymark scripts/bench tests
# Two workers on a 2-core machine; each worker starts its own Anvil.
.venv/bin/python -m pytest -n 2 --dist loadfile -p no:cacheprovider "$@"
# The whole suite ran (no arguments): the e2e stories once more on a chain that mines a block
# every second, as a Besu/QBFT network does, instead of a block per transaction.
if [ "$#" -eq 0 ]; then
  WAYMARK_TEST_BLOCK_TIME=1 .venv/bin/python -m pytest -n 2 --dist loadfile -p no:cacheprovider \
    tests/e2e/test_1_trade.py tests/e2e/test_2_dispute.py tests/e2e/test_3_counterfeit.py tests/e2e/test_4_audit.py \
    tests/e2e/test_5_every_node.py
fi
