"""Read and govern the ConsortiumRegistry from Python (used by the CLI and the services)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from eth_abi.abi import encode as abi_encode
from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from web3.contract import Contract
from web3.logs import DISCARD

from node.chain.client import ChainClient
from node.chain.deploy import Deployment
from node.consortium import ROLES, is_company_prefix, prefix_value
from node.errors import WaymarkError

ROLE_IDS: dict[bytes, str] = {keccak(text=r): r for r in ROLES}


class UnknownRoleName(WaymarkError):
    code = "unknown_role"

    def __init__(self, name: str) -> None:
        super().__init__(f"unknown role {name!r}; known roles: {', '.join(ROLES)}")


class InvalidCompanyPrefix(WaymarkError):
    code = "invalid_company_prefix"

    def __init__(self, prefix: str) -> None:
        super().__init__(f"{prefix!r} is not a GS1 Company Prefix (4 to 12 digits, leading zeros kept)")


def role_id(name: str) -> bytes:
    if name.upper() not in ROLES:
        raise UnknownRoleName(name)
    return keccak(text=name.upper())


class ProposalKind(IntEnum):
    ADMIT = 0
    SUSPEND = 1
    REINSTATE = 2
    GRANT_ROLE = 3
    REVOKE_ROLE = 4
    CHANGE_THRESHOLD = 5
    ASSIGN_COMPANY_PREFIX = 6
    APPROVE_CONTRACT_SIGNER = 7


class OrgStatus(IntEnum):
    NONE = 0
    ACTIVE = 1
    SUSPENDED = 2


@dataclass(frozen=True)
class Organisation:
    id: int
    name: str
    country: str
    status: OrgStatus
    roles: tuple[str, ...]
    accounts: tuple[str, ...]
    #: GS1 Company Prefixes assigned to it, as digit strings.
    company_prefixes: tuple[str, ...] = ()


class RegistryClient:
    def __init__(self, client: ChainClient, deployment: Deployment) -> None:
        self.client = client
        self.contract: Contract = client.contract("ConsortiumRegistry", deployment.address("ConsortiumRegistry"))

    def organisations(self) -> list[Organisation]:
        fns = self.contract.functions
        result = []
        for org_id in range(1, self.client.call(fns.organisationCount()) + 1):
            _id, name, country, _meta, status = self.client.call(fns.organisation(org_id))
            roles = tuple(ROLE_IDS.get(bytes(r), "0x" + bytes(r).hex()) for r in self.client.call(fns.rolesOf(org_id)))
            accounts = tuple(self.client.call(fns.accountsOf(org_id)))
            prefixes = tuple(str(value).zfill(digits) for value, digits in self.client.call(fns.companyPrefixesOf(org_id)))
            result.append(Organisation(org_id, name, bytes(country).decode(), OrgStatus(status), roles, accounts, prefixes))
        return result

    def roles_at(self, account: str, timestamp: int | None = None) -> dict[str, bool]:
        account = to_checksum_address(account)
        fns = self.contract.functions
        if timestamp is None:
            return {r: self.client.call(fns.hasRole(account, role_id(r))) for r in ROLES}
        return {r: self.client.call(fns.hasRoleAt(account, role_id(r), timestamp)) for r in ROLES}

    def threshold(self) -> int:
        """Votes a proposal needs now (the share of the Active members, rounded up)."""
        return int(self.client.call(self.contract.functions.threshold()))

    def threshold_bps(self) -> int:
        """The share of the Active members whose votes pass a proposal, in basis points."""
        return int(self.client.call(self.contract.functions.thresholdBps()))

    def counted_votes(self, proposal_id: int) -> int:
        """Votes for the proposal that count now (voters Active and not suspended since they voted)."""
        return int(self.client.call(self.contract.functions.countedVotes(proposal_id)))

    def offer_account(self, account: str, sender: LocalAccount) -> None:
        """Offer to link `account` to the sender's organisation; it is linked when it accepts."""
        self.client.transact(self.contract.functions.addAccount(to_checksum_address(account)), sender=sender)

    def accept_account(self, org_id: int, sender: LocalAccount) -> None:
        """The sender accepts organisation `org_id`'s offer and is linked to it."""
        self.client.transact(self.contract.functions.acceptAccount(org_id), sender=sender)

    def company_prefix_organisation(self, gtin: str | int) -> int:
        """The organisation whose GS1 Company Prefix covers `gtin` (0 for none)."""
        return int(self.client.call(self.contract.functions.companyPrefixOrganisation(int(gtin))))

    def contract_signer_key(self, wallet: str) -> str | None:
        """The key an approved contract signer must carry, or None when `wallet` is not approved."""
        key = str(self.client.call(self.contract.functions.contractSignerKey(to_checksum_address(wallet))))
        return None if int(key, 16) == 0 else to_checksum_address(key)

    def propose(self, kind: ProposalKind, data: bytes, sender: LocalAccount) -> int:
        receipt = self.client.transact(self.contract.functions.propose(int(kind), data), sender=sender)
        (event,) = self.contract.events.ProposalCreated().process_receipt(receipt, errors=DISCARD)
        return int(event["args"]["proposalId"])

    def vote(self, proposal_id: int, sender: LocalAccount) -> bool:
        """Vote; returns True if this vote executed the proposal."""
        receipt = self.client.transact(self.contract.functions.vote(proposal_id), sender=sender)
        return bool(self.contract.events.ProposalExecuted().process_receipt(receipt, errors=DISCARD))


def admit_data(name: str, country: str, metadata_hash: bytes, account: str, roles: list[str]) -> bytes:
    return abi_encode(
        ["string", "bytes2", "bytes32", "address", "bytes32[]"],
        [name, country.encode(), metadata_hash, to_checksum_address(account), [role_id(r) for r in roles]],
    )


def org_data(org_id: int) -> bytes:
    return abi_encode(["uint64"], [org_id])


def role_data(org_id: int, role: str) -> bytes:
    return abi_encode(["uint64", "bytes32"], [org_id, role_id(role)])


def threshold_data(threshold_bps: int) -> bytes:
    """A ChangeThreshold proposal: the share of Active members, in basis points (1..10000)."""
    return abi_encode(["uint256"], [threshold_bps])


def company_prefix_data(org_id: int, prefix: str) -> bytes:
    """An AssignCompanyPrefix proposal; the prefix as its digits ("0614141": leading zeros count)."""
    if not is_company_prefix(prefix):
        raise InvalidCompanyPrefix(prefix)
    value, digits = prefix_value(prefix)
    return abi_encode(["uint64", "uint64", "uint8"], [org_id, value, digits])


def contract_signer_data(org_id: int, wallet: str, key: str) -> bytes:
    """An ApproveContractSigner proposal: `wallet` (a contract account of the organisation) counts
    for it with `key`'s signatures (an account of the same organisation)."""
    return abi_encode(["uint64", "address", "address"], [org_id, to_checksum_address(wallet), to_checksum_address(key)])
