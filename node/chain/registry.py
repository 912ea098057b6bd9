"""Read and govern the ConsortiumRegistry from Python (used by the CLI and the services).

The node directory (each organisation's node URL and encryption key), hosting with its history,
the maximum reporting delay with its history and the approved verifier bundle are read here:
`RegistryClient.node_record`, `node_directory`, `host_of_at`, `max_reporting_delay_at`,
`verifier_bundle_hash`.
"""

from __future__ import annotations

from dataclasses import dataclass

from eth_abi.abi import encode as abi_encode
from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from web3.contract import Contract
from web3.logs import DISCARD

from node.chain.client import ChainClient
from node.chain.deploy import Deployment
from node.chain.contract_enums import OrgStatus as OrgStatus  # the contract's enums, under their usual names here
from node.chain.contract_enums import ProposalKind as ProposalKind
from node.chain.consortium import ROLES, is_company_prefix, node_url_problem, prefix_value, reporting_delay_problem
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


class InvalidNodeUrl(WaymarkError):
    code = "invalid_node_url"

    def __init__(self, url: str, problem: str) -> None:
        self.url = url
        super().__init__(f"node URL {url!r} {problem}")


class InvalidEncryptionKey(WaymarkError):
    code = "invalid_encryption_key"

    def __init__(self, key: bytes) -> None:
        super().__init__(f"an encryption key is 32 raw bytes (an X25519 public key), not {len(key)}")


class InvalidReportingDelay(WaymarkError):
    code = "invalid_reporting_delay"

    def __init__(self, seconds: int, problem: str) -> None:
        super().__init__(f"maximum reporting delay {problem}")


class InvalidBundleHash(WaymarkError):
    code = "invalid_bundle_hash"

    def __init__(self, value: bytes) -> None:
        super().__init__("a verifier bundle hash is the 32-byte sha-256 of the bundle, not zero"
                         if len(value) == 32 else f"a verifier bundle hash is 32 bytes (sha-256), not {len(value)}")


def role_id(name: str) -> bytes:
    if name.upper() not in ROLES:
        raise UnknownRoleName(name)
    return keccak(text=name.upper())


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


NO_KEY = b"\0" * 32


@dataclass(frozen=True)
class NodeRecord:
    """An organisation's entry in the registry's node directory."""

    org_id: int
    #: The node's public base URL (no trailing slash); "" when the organisation runs no node.
    url: str
    #: Its X25519 document-encryption public key (32 raw bytes), None when it published none.
    encryption_key: bytes | None
    #: Block timestamp of the last change; 0 when it never published a record.
    updated_at: int

    @property
    def has_node(self) -> bool:
        return self.url != ""


class RegistryClient:
    """The registry of a deployment, or the registry at an address (for callers holding no deployment record)."""

    def __init__(self, client: ChainClient, deployment: Deployment | str) -> None:
        self.client = client
        address = deployment if isinstance(deployment, str) else deployment.address("ConsortiumRegistry")
        self.contract: Contract = client.contract("ConsortiumRegistry", to_checksum_address(address))

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

    def proposal_executed(self, proposal_id: int) -> bool:
        return bool(self.client.call(self.contract.functions.proposal(proposal_id))[5])

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

    # ---- node directory, hosting, reporting delay, verifier bundle ---------------------------

    def node_record(self, org_id: int) -> NodeRecord:
        """Organisation `org_id`'s node record (empty when it never published one)."""
        url, key, updated_at = self.client.call(self.contract.functions.nodeRecord(org_id))
        return NodeRecord(org_id, str(url), None if bytes(key) == NO_KEY else bytes(key), int(updated_at))

    def node_directory(self) -> list[NodeRecord]:
        """The records of every Active organisation that published one, by organisation id. A record
        whose `url` is empty belongs to an organisation without a node (it may still publish a key)."""
        fns = self.contract.functions
        records = []
        for org_id in range(1, int(self.client.call(fns.organisationCount())) + 1):
            if OrgStatus(self.client.call(fns.organisation(org_id))[4]) is not OrgStatus.ACTIVE:
                continue
            record = self.node_record(org_id)
            if record.updated_at:
                records.append(record)
        return records

    def host_of(self, org_id: int) -> int:
        """The organisation whose node hosts `org_id` now; 0 for none."""
        return int(self.client.call(self.contract.functions.hostOf(org_id)))

    def host_of_at(self, org_id: int, timestamp: int) -> int:
        """The organisation whose node hosted `org_id` at `timestamp` (block time, seconds); 0 for none."""
        return int(self.client.call(self.contract.functions.hostOfAt(org_id, timestamp)))

    def host_request_of(self, org_id: int) -> int:
        """The organisation `org_id` asked to host it and that has not accepted yet; 0 for none."""
        return int(self.client.call(self.contract.functions.hostRequestOf(org_id)))

    def max_reporting_delay(self) -> int:
        """The maximum reporting delay now, in seconds."""
        return int(self.client.call(self.contract.functions.maxReportingDelay()))

    def max_reporting_delay_at(self, timestamp: int) -> int:
        """The maximum reporting delay in force at `timestamp` (block time, seconds), in seconds."""
        return int(self.client.call(self.contract.functions.maxReportingDelayAt(timestamp)))

    def verifier_bundle_hash(self) -> bytes | None:
        """sha-256 of the scanner-page verifier bundle the consortium approved; None when none is."""
        value = bytes(self.client.call(self.contract.functions.verifierBundleHash()))
        return None if value == NO_KEY else value

    def set_node_record(self, url: str, encryption_key: bytes | None, sender: LocalAccount) -> None:
        """Publish the sender's organisation's node URL ("" for no node) and encryption key (None for none)."""
        check_node_record(url, encryption_key)
        self.client.transact(self.contract.functions.setNodeRecord(url, encryption_key or NO_KEY), sender=sender)

    def request_host(self, host_org_id: int, sender: LocalAccount) -> None:
        """Ask organisation `host_org_id` to host the sender's organisation (0 withdraws a request)."""
        self.client.transact(self.contract.functions.requestHost(host_org_id), sender=sender)

    def accept_hosting(self, hosted_org_id: int, sender: LocalAccount) -> None:
        """The sender's organisation hosts `hosted_org_id`, which asked for it, from now on."""
        self.client.transact(self.contract.functions.acceptHosting(hosted_org_id), sender=sender)

    def end_hosting(self, hosted_org_id: int, sender: LocalAccount) -> None:
        """End the hosting of `hosted_org_id`, now (either side may)."""
        self.client.transact(self.contract.functions.endHosting(hosted_org_id), sender=sender)

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


def check_node_record(url: str, encryption_key: bytes | None) -> None:
    """Raise what the registry would refuse in a node record, before any transaction."""
    problem = node_url_problem(url)
    if problem:
        raise InvalidNodeUrl(url, problem)
    if encryption_key is not None and len(encryption_key) != 32:
        raise InvalidEncryptionKey(encryption_key)


def reporting_delay_data(seconds: int) -> bytes:
    """A SetMaxReportingDelay proposal: the new maximum reporting delay, in seconds."""
    problem = reporting_delay_problem(seconds)
    if problem:
        raise InvalidReportingDelay(seconds, problem)
    return abi_encode(["uint64"], [seconds])


def verifier_bundle_data(bundle_hash: bytes) -> bytes:
    """A SetVerifierBundle proposal: the sha-256 of the scanner-page verifier bundle to approve."""
    if len(bundle_hash) != 32 or bundle_hash == NO_KEY:
        raise InvalidBundleHash(bundle_hash)
    return abi_encode(["bytes32"], [bundle_hash])
