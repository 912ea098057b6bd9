"""Hyperledger Besu QBFT network configuration for a Waymark consortium.

From a consortium file (the same file `waymark deploy --consortium` reads) this generates a
genesis with QBFT, zero base fee and every fork through Cancun at genesis; one secp256k1 node
key, `config.toml` and enode URL per validator (one validator per member); and the
`permissions_config.toml` whose account allowlist holds the accounts of the consortium's
active organisations, read from a deployed ConsortiumRegistry or, before deployment, from the
file. Besu cannot be installed where Waymark is developed, so every file follows Besu's
documented formats and is checked by tests/devnet/test_besu_config.py rather than by a node.

Key ceremony: each member runs `waymark devnet besu-key` on its own machine, which makes its
node key there and writes an identity file holding only public material (public key, address,
enode URL). The coordinator runs `besu-config --public-keys DIR` on those files: the network
is built from public material alone, and no secret key leaves its member.

Modules: `spec` (the network a consortium file describes: validators, the browsers' RPC node,
QBFT options), `node_keys` (node keys and enode URLs), `genesis` (QBFT extraData and the
genesis), `configs` (each node's config.toml and the permissioning allowlists), `ceremony`
(identity files: the key ceremony from public material), `generate` (every file, written).
"""
