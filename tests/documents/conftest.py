"""Fixtures of the document tests: the oracle tests' chain, deployment, organisation keystores and node."""

from tests.oracle.conftest import chain_now, deployment, deployment_file, make_oracle, node, org_keys  # noqa: F401 - fixtures
