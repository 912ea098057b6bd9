"""What the CLI makes of its inputs before any chain is involved: the escrow's shipment key, the
demo's public URL, and contract errors decoded with names."""

from __future__ import annotations

import pytest
from eth_abi.abi import encode
from eth_utils.abi import function_signature_to_4byte_selector
from eth_utils.crypto import keccak

from node.chain.build import load_artifact
from node.chain.errors import ErrorDecoder
from node.escrow.terms import State
from node.protocol.gs1 import make_sscc
from waymark.cmd_demo import DemoSetupError, resolve_public_url
from waymark.cmd_escrow.inputs import CliInputError, parse_shipment

SSCC = make_sscc("9521234", 434710526)


def test_a_bare_sscc_its_digital_link_and_its_epc_urn_give_the_key_the_events_use() -> None:
    canonical = f"https://id.gs1.org/00/{SSCC}"
    key = keccak(text=canonical)
    assert parse_shipment(SSCC) == (key, canonical)
    assert parse_shipment(f"http://127.0.0.1:8700/00/{SSCC}") == (key, canonical)
    assert parse_shipment(canonical)[0] == key
    urn = f"urn:epc:id:sscc:9521234.{SSCC[0]}{SSCC[8:17]}"
    assert parse_shipment(urn) == (key, canonical)


def test_a_lot_link_gives_the_lot_key_of_the_passport() -> None:
    key, uri = parse_shipment("http://192.168.1.20:8700/01/09521234543213/10/L20261205")
    assert uri == "https://id.gs1.org/01/09521234543213/10/L20261205"
    assert key == keccak(text=uri)


def test_a_wrong_check_digit_is_refused_not_hashed() -> None:
    wrong = SSCC[:-1] + str((int(SSCC[-1]) + 1) % 10)
    with pytest.raises(CliInputError, match="check digit"):
        parse_shipment(wrong)


def test_a_raw_key_and_a_free_reference_stay_what_they_were() -> None:
    raw = "0x" + "ab" * 32
    assert parse_shipment(raw) == (bytes.fromhex("ab" * 32), None)
    assert parse_shipment("PO-2026-0017") == (keccak(text="PO-2026-0017"), None)


def test_the_demo_stays_on_loopback_unless_given_a_public_url() -> None:
    assert resolve_public_url(None, 8700) is None
    assert resolve_public_url("http://192.168.1.20:8700/", 8700) == "http://192.168.1.20:8700"
    with pytest.raises(DemoSetupError, match="not an http"):
        resolve_public_url("phone", 8700)


def test_contract_errors_name_states_roles_and_order_ids() -> None:
    decoder = ErrorDecoder([load_artifact("TradeEscrow").abi])
    order_id = 0x1234
    selector = function_signature_to_4byte_selector("EscrowInvalidState(uint256,uint8,uint8)")
    revert = decoder.decode(selector + encode(["uint256", "uint8", "uint8"], [order_id, State.RELEASED, State.FUNDED]))
    assert revert.error_args == {"orderId": order_id, "current": State.RELEASED, "expected": State.FUNDED}
    assert str(revert) == f"EscrowInvalidState(orderId=0x{order_id:064x}, current=RELEASED, expected=FUNDED)"

    account = "0x90F79bf6EB2c4f870365E785982E1f101E93b906"
    selector = function_signature_to_4byte_selector("EscrowMissingRole(address,bytes32)")
    revert = decoder.decode(selector + encode(["address", "bytes32"], [account, keccak(text="ARBITRATOR")]))
    assert str(revert) == f"EscrowMissingRole(account={account}, role=ARBITRATOR)"
    named = revert.describe(lambda kind, value: "Bluewater Ocean Freight" if kind == "account" else None)
    assert named == f"EscrowMissingRole(account={account} (Bluewater Ocean Freight), role=ARBITRATOR)"
