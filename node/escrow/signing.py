"""EIP-712 messages of the escrow, built and signed the way a wallet does (eth_account typed data).

Domain: name "Waymark Escrow", version "1", the chain id, verifyingContract = the TradeEscrow.
Each digest here equals the contract's `typedDataDigest` of the message's struct hash, and the
contract accepts signatures made here; tests/node/test_escrow_client.py checks both against a
deployed escrow. The EIP-2612 permit is signed in the token's own domain,
read from the token (ERC-5267 `eip712Domain()`).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from eth_account import Account
from eth_account.messages import SignableMessage, encode_typed_data
from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from node.escrow.terms import Attestation, PermitSignature, currency_bytes
from node.errors import WaymarkError

DOMAIN_NAME = "Waymark Escrow"
DOMAIN_VERSION = "1"

_DOMAIN_FIELDS = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
]

TYPES: dict[str, list[dict[str, str]]] = {
    "MilestoneAttestation": [
        {"name": "orderId", "type": "uint256"},
        {"name": "milestone", "type": "uint8"},
        {"name": "duty", "type": "uint256"},
        {"name": "dutyPayee", "type": "address"},
        {"name": "deadline", "type": "uint256"},
    ],
    "CustomsReturn": [
        {"name": "orderId", "type": "uint256"},
        {"name": "milestone", "type": "uint8"},
        {"name": "deadline", "type": "uint256"},
    ],
    "DeliveryConfirmation": [
        {"name": "orderId", "type": "uint256"},
        {"name": "deadline", "type": "uint256"},
    ],
    "FxRate": [
        {"name": "orderId", "type": "uint256"},
        {"name": "base", "type": "bytes3"},
        {"name": "quote", "type": "bytes3"},
        {"name": "rate", "type": "uint256"},
        {"name": "issuedAt", "type": "uint64"},
        {"name": "expiresAt", "type": "uint64"},
        {"name": "deadline", "type": "uint256"},
    ],
}

PERMIT_TYPE = [
    {"name": "owner", "type": "address"},
    {"name": "spender", "type": "address"},
    {"name": "value", "type": "uint256"},
    {"name": "nonce", "type": "uint256"},
    {"name": "deadline", "type": "uint256"},
]


class BadSignature(WaymarkError):
    code = "bad_signature"

    def __init__(self, detail: str) -> None:
        super().__init__(f"signature: {detail}")


@dataclass(frozen=True)
class EscrowDomain:
    """The EIP-712 domain of one TradeEscrow deployment."""

    chain_id: int
    verifying_contract: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": DOMAIN_NAME,
            "version": DOMAIN_VERSION,
            "chainId": self.chain_id,
            "verifyingContract": to_checksum_address(self.verifying_contract),
        }


def typed_data(domain: EscrowDomain | dict[str, Any], primary: str, message: dict[str, Any],
               types: dict[str, list[dict[str, str]]] | None = None) -> dict[str, Any]:
    """The full EIP-712 document (what `eth_signTypedData_v4` takes)."""
    domain_dict = domain.as_dict() if isinstance(domain, EscrowDomain) else dict(domain)
    fields = [f for f in _DOMAIN_FIELDS if f["name"] in domain_dict]
    return {
        "types": {"EIP712Domain": fields, primary: (types or TYPES)[primary]},
        "primaryType": primary,
        "domain": domain_dict,
        "message": message,
    }


def _signable(document: dict[str, Any]) -> SignableMessage:
    # encode_typed_data normalises the document in place; keep the caller's copy intact.
    return encode_typed_data(full_message=copy.deepcopy(document))


def digest_of(document: dict[str, Any]) -> bytes:
    """The 32-byte EIP-712 digest (keccak256 of 0x1901 || domainSeparator || structHash)."""
    signable = _signable(document)
    return keccak(b"\x19" + signable.version + signable.header + signable.body)


def sign_document(account: LocalAccount, document: dict[str, Any]) -> bytes:
    return bytes(account.sign_message(_signable(document)).signature)


def recover_signer(document: dict[str, Any], signature: bytes) -> str:
    """The EOA whose key made `signature` over `document`; BadSignature if none can be recovered."""
    if len(signature) != 65:
        raise BadSignature(f"65 bytes expected, got {len(signature)}")
    try:
        return str(Account.recover_message(_signable(document), signature=signature))
    except Exception as exc:  # noqa: BLE001 - eth_keys raises several kinds for malformed (r, s, v)
        raise BadSignature(f"cannot be recovered ({type(exc).__name__})") from None


# ---- the escrow's messages ---------------------------------------------------------------


def milestone_message(order_id: int, milestone: int, duty: int, duty_payee: str, deadline: int) -> dict[str, Any]:
    return {
        "orderId": order_id,
        "milestone": milestone,
        "duty": duty,
        "dutyPayee": to_checksum_address(duty_payee),
        "deadline": deadline,
    }


def milestone_document(domain: EscrowDomain, order_id: int, milestone: int, duty: int, duty_payee: str,
                       deadline: int) -> dict[str, Any]:
    return typed_data(domain, "MilestoneAttestation", milestone_message(order_id, milestone, duty, duty_payee, deadline))


def milestone_digest(domain: EscrowDomain, order_id: int, milestone: int, duty: int, duty_payee: str,
                     deadline: int) -> bytes:
    return digest_of(milestone_document(domain, order_id, milestone, duty, duty_payee, deadline))


def sign_milestone(account: LocalAccount, domain: EscrowDomain, order_id: int, milestone: int, deadline: int,
                   duty: int = 0, duty_payee: str = "0x" + "00" * 20) -> Attestation:
    """An oracle's MilestoneAttestation, ready to go into a bundle."""
    document = milestone_document(domain, order_id, milestone, duty, duty_payee, deadline)
    return Attestation(account.address, deadline, sign_document(account, document))


def customs_return_document(domain: EscrowDomain, order_id: int, milestone: int, deadline: int) -> dict[str, Any]:
    return typed_data(domain, "CustomsReturn", {"orderId": order_id, "milestone": milestone, "deadline": deadline})


def customs_return_digest(domain: EscrowDomain, order_id: int, milestone: int, deadline: int) -> bytes:
    return digest_of(customs_return_document(domain, order_id, milestone, deadline))


def sign_customs_return(account: LocalAccount, domain: EscrowDomain, order_id: int, milestone: int,
                        deadline: int) -> Attestation:
    document = customs_return_document(domain, order_id, milestone, deadline)
    return Attestation(account.address, deadline, sign_document(account, document))


def confirmation_document(domain: EscrowDomain, order_id: int, deadline: int) -> dict[str, Any]:
    return typed_data(domain, "DeliveryConfirmation", {"orderId": order_id, "deadline": deadline})


def confirmation_digest(domain: EscrowDomain, order_id: int, deadline: int) -> bytes:
    return digest_of(confirmation_document(domain, order_id, deadline))


def sign_confirmation(buyer: LocalAccount, domain: EscrowDomain, order_id: int, deadline: int) -> bytes:
    """The buyer's DeliveryConfirmation: anyone may relay it with `confirmDeliveryBySig`."""
    return sign_document(buyer, confirmation_document(domain, order_id, deadline))


def fx_rate_document(domain: EscrowDomain, order_id: int, base: str | bytes, quote: str | bytes, rate: int,
                     issued_at: int, expires_at: int, deadline: int) -> dict[str, Any]:
    """An FX quote for order `order_id`, valid from `issued_at` to `expires_at`."""
    message = {
        "orderId": order_id,
        "base": currency_bytes(base),
        "quote": currency_bytes(quote),
        "rate": rate,
        "issuedAt": issued_at,
        "expiresAt": expires_at,
        "deadline": deadline,
    }
    return typed_data(domain, "FxRate", message)


def fx_rate_digest(domain: EscrowDomain, order_id: int, base: str | bytes, quote: str | bytes, rate: int,
                   issued_at: int, expires_at: int, deadline: int) -> bytes:
    return digest_of(fx_rate_document(domain, order_id, base, quote, rate, issued_at, expires_at, deadline))


def sign_fx_rate(account: LocalAccount, domain: EscrowDomain, order_id: int, base: str | bytes, quote: str | bytes,
                 rate: int, issued_at: int, expires_at: int) -> Attestation:
    """An ORACLE's FxRate for one order; its signature deadline is the quote's expiry."""
    document = fx_rate_document(domain, order_id, base, quote, rate, issued_at, expires_at, expires_at)
    return Attestation(account.address, expires_at, sign_document(account, document))


def struct_hash(document: dict[str, Any]) -> bytes:
    """The EIP-712 struct hash of `document`'s message (what the contract's `typedDataDigest` takes)."""
    return bytes(_signable(document).body)


# ---- EIP-2612 ----------------------------------------------------------------------------


def permit_document(token_domain: dict[str, Any], owner: str, spender: str, value: int, nonce: int,
                    deadline: int) -> dict[str, Any]:
    message = {
        "owner": to_checksum_address(owner),
        "spender": to_checksum_address(spender),
        "value": value,
        "nonce": nonce,
        "deadline": deadline,
    }
    return typed_data(token_domain, "Permit", message, {"Permit": PERMIT_TYPE})


def sign_permit(owner: LocalAccount, token_domain: dict[str, Any], spender: str, value: int, nonce: int,
                deadline: int) -> PermitSignature:
    """An EIP-2612 permit letting `spender` (the escrow) take `value` of the owner's tokens."""
    signed = owner.sign_message(_signable(permit_document(token_domain, owner.address, spender, value, nonce, deadline)))
    return PermitSignature(
        value=value, deadline=deadline, v=int(signed.v), r=int(signed.r).to_bytes(32, "big"),
        s=int(signed.s).to_bytes(32, "big"),
    )
