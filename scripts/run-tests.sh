#!/usr/bin/env bash
# The test suite, as `make test` and CI run it: real Anvil, SQLite, and PostgreSQL where reachable.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p test-artifacts
# Types first (mypy --strict, [tool.mypy] in pyproject.toml): an error fails the run in seconds.
.venv/bin/mypy node api oracle waymark scripts/bench tests
# Two workers on a 2-core machine; each worker starts its own Anvil.
exec .venv/bin/python -m pytest -n 2 --dist loadfile -p no:cacheprovider "$@"
