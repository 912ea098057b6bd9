"""escrow: orders paid into TradeEscrow, for sellers, buyers, oracles and arbitrators; the relayer.

An order is named by its id (0x + 64 hex digits, as `create` prints it, or decimal). Its terms
are found by id: in the local terms file (next to the deployment record, `<chainId>.terms.json`)
or else in the chain's OrderCreated log. Actions sign with --keystore/--password-file, or on the
devnet with --as <demo member | buyer>.

    seller:      create, cancel, withdraw
    buyer:       fund (approve or --permit), confirm (or --sign-only, for someone else to relay), dispute, withdraw
    anyone:      show, release (after the review window), refund (after a missed deadline), resolve (a timed-out dispute),
                 confirm --signature (relay a buyer's signed confirmation)
    oracles:     attest (sign a milestone and post it to the relayer)
    arbitrator:  rule
    operator:    relayer run (collects oracle signatures, submits each milestone once)
"""

from __future__ import annotations

import typer

from waymark.cmd_escrow import oracles, orders

app = typer.Typer(help="Escrow orders: create, fund, milestones, confirm, disputes, payouts; the relayer.",
                  no_args_is_help=True)
relayer_app = typer.Typer(help="The relayer: collects oracles' milestone signatures and submits each quorum once.",
                          no_args_is_help=True)
app.add_typer(relayer_app, name="relayer")
for name, command in (
    ("create", orders.create), ("cancel", orders.cancel), ("fund", orders.fund), ("confirm", orders.confirm),
    ("dispute", orders.dispute), ("rule", orders.rule), ("resolve", orders.resolve), ("release", orders.release),
    ("refund", orders.refund), ("withdraw", orders.withdraw), ("attest", oracles.attest), ("show", orders.show),
):
    app.command(name)(command)
relayer_app.command("run")(oracles.relayer_run)
