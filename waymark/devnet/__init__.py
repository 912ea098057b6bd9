"""Devnet tooling. Everything Anvil-specific (process control, evm_* / anvil_* calls) lives here
and nowhere else, so the rest of the code runs unchanged on a Besu consortium chain."""
