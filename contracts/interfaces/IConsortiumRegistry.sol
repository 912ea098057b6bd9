// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title IConsortiumRegistry
/// @notice The members of the Waymark consortium, their accounts and their roles, governed by
///         m-of-n member votes. Nobody holds an owner or admin key: after construction every change
///         to membership, roles or the threshold goes through a proposal.
/// @dev Roles are held by organisations, never by accounts directly. An account holds a role at a
///      time T when, at T, it was linked to an organisation that was Active and held the role.
///      History is kept per block timestamp, and a change made at timestamp T applies from T on
///      (a role revoked at T is not held at T).
///
///      Each kind of proposal carries `data = abi.encode(<the kind's arguments>)`:
///      - AdmitOrganisation:     (string name, bytes2 country, bytes32 metadataHash, address firstAccount, bytes32[] roles)
///      - SuspendOrganisation:   (uint64 orgId)
///      - ReinstateOrganisation: (uint64 orgId)
///      - GrantRole:             (uint64 orgId, bytes32 role)
///      - RevokeRole:            (uint64 orgId, bytes32 role)
///      - ChangeThreshold:       (uint256 newThresholdBps)
///      - AssignCompanyPrefix:   (uint64 orgId, uint64 prefix, uint8 digits)
///      - ApproveContractSigner: (uint64 orgId, address wallet, address key)
///      - SetMaxReportingDelay:  (uint64 delaySeconds)
///      - SetVerifierBundle:     (bytes32 bundleHash)
///      The data is checked when the proposal is made (a bad proposal reverts at once) and again
///      when it executes, since state may have changed in between.
///
///      Votes. Each Active organisation has one vote per proposal. The threshold is a fraction of
///      the Active members in basis points, rounded up: `threshold() = ceil(activeMemberCount() *
///      thresholdBps() / 10000)`, computed when a vote is counted, so it grows with the membership.
///      `thresholdBps` is more than half (5001..10000), at deployment and in every ChangeThreshold:
///      at half or less, two coalitions sharing no member could each pass proposals against the
///      other, and a minority could vote the threshold down until one member alone passes anything.
///      At execution only the votes of organisations that are Active and have not been suspended
///      since they voted count (`countedVotes`); a suspended member's earlier votes are void (once
///      reinstated it may vote again). `Proposal.votes` counts the organisations that ever voted.
///
///      Accounts. Linking an account needs its consent: a member offers it (`addAccount`) and the
///      account itself accepts (`acceptAccount`). Nobody can link someone else's account, so an
///      account can never be captured to block its owner's admission.
///
///      GS1 company prefixes. Governance assigns GS1 Company Prefixes (4 to 12 digits, leading
///      zeros significant) to organisations; assigned prefixes never overlap (none is a prefix of
///      another). A GTIN lies inside prefix P when, written as 14 digits with leading zeros and
///      without its first digit (the GTIN-14 indicator digit), its remaining 13 digits start with
///      P. So a GTIN-13 is matched from its first digit, a GTIN-12 (U.P.C.) as "0" + its 12 digits
///      (the U.P.C. Company Prefix 614141 is the GS1 Company Prefix 0614141), a GTIN-14 ignores its
///      indicator digit (cases and pallets of an item share its prefix), and a GTIN-8, which GS1
///      licenses one by one, is covered by the 12-digit prefix "00000" followed by its first seven
///      digits.
///
///      Contract signers. A contract account (ERC-1271 wallet) linked to an organisation counts
///      for it only where governance approved it, with the single key whose ECDSA signatures it
///      must carry (`contractSignerKey`). The key must be an account of the same organisation;
///      since an account belongs to at most one organisation, one key never counts for two.
///
///      Node directory. Each organisation publishes, through any of its own accounts, the public
///      base URL of its member node and its document-encryption public key (`nodeRecord`). An
///      organisation without a node of its own is hosted by another member's node: it asks
///      (`requestHost`), the host accepts (`acceptHosting`), either side may end it; `hostOfAt`
///      answers for any past moment, as roles do. Nodes anchor from accounts holding ANCHORER, a
///      role that attests nothing.
///
///      Reporting delay. An event must be anchored within `maxReportingDelayAt(anchor time)`
///      seconds of its event time; later ones are accepted but marked late by verifiers. The delay
///      is set at deployment and changed by vote, and its history is kept.
///
///      Verifier bundle. The sha-256 of the one static scanner-page bundle the consortium approved
///      by vote, so that a page served by anyone can be checked against it.
interface IConsortiumRegistry {
    // ------------------------------------------------------------------------------------------
    // Types
    // ------------------------------------------------------------------------------------------

    /// @notice Life cycle of an organisation. `None` only describes ids that were never admitted.
    enum OrganisationStatus {
        None,
        Active,
        Suspended
    }

    /// @notice What a proposal does when it passes.
    enum ProposalKind {
        AdmitOrganisation,
        SuspendOrganisation,
        ReinstateOrganisation,
        GrantRole,
        RevokeRole,
        ChangeThreshold,
        AssignCompanyPrefix,
        ApproveContractSigner,
        SetMaxReportingDelay,
        SetVerifierBundle
    }

    /// @notice One founding member, admitted Active by the constructor. The founding file that
    ///         every member agreed to names its accounts, so they are linked without an offer.
    /// @dev `otherAccounts` are linked after `account` (e.g. its node's anchor account). `nodeUrl`
    ///      and `encryptionKey` become its node record when either is set. `host` is the id of the
    ///      founding member (numbered from 1 in the order given) whose node hosts it, 0 for none.
    struct FoundingMember {
        string name;
        bytes2 country;
        bytes32 metadataHash;
        address account;
        bytes32[] roles;
        CompanyPrefix[] companyPrefixes;
        address[] otherAccounts;
        string nodeUrl;
        bytes32 encryptionKey;
        uint64 host;
    }

    /// @notice An organisation's entry in the node directory.
    /// @dev `url`: the node's public base URL (http:// or https://, at most 256 bytes, no trailing
    ///      slash), empty when the organisation runs no node. `encryptionKey`: its X25519
    ///      document-encryption public key, 32 raw bytes, zero for none. `updatedAt`: block
    ///      timestamp of the last change, zero when never set.
    struct NodeRecord {
        string url;
        bytes32 encryptionKey;
        uint48 updatedAt;
    }

    /// @notice A GS1 Company Prefix: `digits` decimal digits (leading zeros significant) whose value is `value`.
    struct CompanyPrefix {
        uint64 value;
        uint8 digits;
    }

    /// @notice An organisation as seen from outside.
    struct Organisation {
        uint64 id;
        string name;
        bytes2 country;
        bytes32 metadataHash;
        OrganisationStatus status;
    }

    /// @notice A proposal as seen from outside.
    struct Proposal {
        ProposalKind kind;
        uint64 proposerOrg;
        uint32 votes;
        uint48 created;
        uint48 deadline;
        bool executed;
        bytes data;
    }

    // ------------------------------------------------------------------------------------------
    // Errors
    // ------------------------------------------------------------------------------------------

    /// @notice `account` is not linked to an organisation, or its organisation is not Active.
    error RegistryNotActiveMember(address account);
    /// @notice `role` is not one of the consortium's role ids.
    error RegistryUnknownRole(bytes32 role);
    /// @notice `role` appears twice in a list of roles.
    error RegistryDuplicateRole(bytes32 role);
    /// @notice `thresholdBps` is not more than half of the Active members (5000 or less) or is above
    ///         10000 (basis points of the Active members).
    error RegistryInvalidThreshold(uint256 thresholdBps);
    /// @notice Suspending organisation `orgId` would leave no Active member to govern.
    error RegistryLastActiveMember(uint64 orgId);
    /// @notice `account` has no offer to join organisation `orgId`.
    error RegistryNoOffer(address account, uint64 orgId);
    /// @notice `digits` is not 4..12 or `value` has more than `digits` digits.
    error RegistryInvalidCompanyPrefix(uint64 value, uint8 digits);
    /// @notice The prefix (`value`, `digits`) equals, contains or lies inside a prefix already assigned.
    error RegistryCompanyPrefixTaken(uint64 value, uint8 digits);
    /// @notice `wallet` has no code, so it cannot be approved as a contract signer.
    error RegistryNotAContract(address wallet);
    /// @notice `account` already belongs to organisation `orgId`.
    error RegistryAccountTaken(address account, uint64 orgId);
    /// @notice `account` is the zero address.
    error RegistryInvalidAccount(address account);
    /// @notice `country` is not two upper-case ASCII letters (ISO 3166-1 alpha-2).
    error RegistryInvalidCountry(bytes2 country);
    /// @notice `name` is empty or longer than 128 bytes.
    error RegistryInvalidName(string name);
    /// @notice No organisation has id `orgId`.
    error RegistryUnknownOrganisation(uint64 orgId);
    /// @notice Organisation `orgId` must be Active for this and is not.
    error RegistryOrganisationNotActive(uint64 orgId);
    /// @notice Organisation `orgId` must be Suspended for this and is not.
    error RegistryOrganisationNotSuspended(uint64 orgId);
    /// @notice Organisation `orgId` already holds `role`.
    error RegistryRoleAlreadyHeld(uint64 orgId, bytes32 role);
    /// @notice Organisation `orgId` does not hold `role`.
    error RegistryRoleNotHeld(uint64 orgId, bytes32 role);
    /// @notice `account` does not belong to organisation `orgId`.
    error RegistryAccountNotInOrganisation(address account, uint64 orgId);
    /// @notice `account` is the last account of organisation `orgId` and cannot be removed.
    error RegistryLastAccount(uint64 orgId, address account);
    /// @notice No proposal has id `proposalId`.
    error RegistryUnknownProposal(uint256 proposalId);
    /// @notice Voting on `proposalId` closed at `deadline`.
    error RegistryProposalExpired(uint256 proposalId, uint256 deadline);
    /// @notice Proposal `proposalId` has already been executed.
    error RegistryProposalAlreadyExecuted(uint256 proposalId);
    /// @notice Organisation `orgId` has already voted for `proposalId`.
    error RegistryAlreadyVoted(uint256 proposalId, uint64 orgId);
    /// @notice `data` is not a valid encoding of the arguments of a `kind` proposal.
    error RegistryMalformedProposal(ProposalKind kind, bytes data);
    /// @notice Proposal `proposalId` has `votes` counted votes, fewer than the `threshold` needed to execute.
    error RegistryBelowThreshold(uint256 proposalId, uint256 votes, uint256 threshold);
    /// @notice `url` is neither empty nor an http:// or https:// URL of at most 256 printable ASCII
    ///         bytes without spaces and without a trailing slash.
    error RegistryInvalidNodeUrl(string url);
    /// @notice Organisation `orgId` cannot host itself.
    error RegistrySelfHosting(uint64 orgId);
    /// @notice Organisation `hostedOrgId` has not asked organisation `hostOrgId` to host it.
    error RegistryNoHostingRequest(uint64 hostedOrgId, uint64 hostOrgId);
    /// @notice Organisation `hostedOrgId` is not hosted now, or not by the caller's organisation `callerOrgId`
    ///         (for `endHosting`, the caller must be on either side of the hosting).
    error RegistryNotHosting(uint64 hostedOrgId, uint64 callerOrgId);
    /// @notice `delaySeconds` is zero or longer than the longest reporting delay allowed (366 days).
    error RegistryInvalidReportingDelay(uint64 delaySeconds);
    /// @notice The verifier bundle hash is zero.
    error RegistryInvalidBundleHash(bytes32 bundleHash);

    // ------------------------------------------------------------------------------------------
    // Events
    // ------------------------------------------------------------------------------------------

    /// @notice Organisation `orgId` was admitted (Active) with `firstAccount` as its first account.
    event OrganisationAdmitted(
        uint64 indexed orgId,
        string name,
        bytes2 country,
        bytes32 metadataHash,
        address indexed firstAccount
    );
    /// @notice Organisation `orgId` became `status` (Active or Suspended).
    event OrganisationStatusChanged(uint64 indexed orgId, OrganisationStatus status);
    /// @notice Organisation `orgId` was granted `role`.
    event RoleGranted(uint64 indexed orgId, bytes32 indexed role);
    /// @notice Organisation `orgId` lost `role`.
    event RoleRevoked(uint64 indexed orgId, bytes32 indexed role);
    /// @notice `account` was linked to organisation `orgId`, offered by `addedBy` (zero for admissions).
    event AccountAdded(uint64 indexed orgId, address indexed account, address indexed addedBy);
    /// @notice Organisation `orgId`, through `offeredBy`, offered to link `account`; it is linked when `account` accepts.
    event AccountOffered(uint64 indexed orgId, address indexed account, address indexed offeredBy);
    /// @notice `account` was unlinked from organisation `orgId` by `removedBy`.
    event AccountRemoved(uint64 indexed orgId, address indexed account, address indexed removedBy);
    /// @notice `proposer` of organisation `proposerOrg` made proposal `proposalId`; voting closes at `deadline`.
    event ProposalCreated(
        uint256 indexed proposalId,
        uint64 indexed proposerOrg,
        address indexed proposer,
        ProposalKind kind,
        bytes data,
        uint256 deadline
    );
    /// @notice Organisation `orgId` voted for `proposalId` through `voter`; the proposal now has `votes` votes.
    event Voted(uint256 indexed proposalId, uint64 indexed orgId, address indexed voter, uint256 votes);
    /// @notice Proposal `proposalId` passed and its change was applied.
    event ProposalExecuted(uint256 indexed proposalId, ProposalKind kind);
    /// @notice The share of Active members whose votes pass a proposal changed, in basis points.
    event ThresholdChanged(uint256 oldThresholdBps, uint256 newThresholdBps);
    /// @notice GS1 Company Prefix (`value`, `digits`) was assigned to organisation `orgId`.
    event CompanyPrefixAssigned(uint64 indexed orgId, uint64 value, uint8 digits);
    /// @notice Contract account `wallet` of organisation `orgId` was approved as a signer carrying `key`'s signatures.
    event ContractSignerApproved(uint64 indexed orgId, address indexed wallet, address indexed key);
    /// @notice Organisation `orgId` published its node's base URL (empty: no node) and encryption key (zero: none).
    event NodeRecordSet(uint64 indexed orgId, string url, bytes32 encryptionKey);
    /// @notice Organisation `hostedOrgId` asked organisation `hostOrgId` to host it (0: it withdrew its
    ///         request); nothing changes until the host accepts.
    event HostingRequested(uint64 indexed hostedOrgId, uint64 indexed hostOrgId);
    /// @notice Organisation `hostedOrgId` is hosted by `hostOrgId` from now on; `hostOrgId` 0 means the hosting ended.
    event HostingChanged(uint64 indexed hostedOrgId, uint64 indexed hostOrgId);
    /// @notice The maximum reporting delay changed from `oldDelay` to `newDelay` seconds (`oldDelay` 0 at deployment).
    event MaxReportingDelayChanged(uint64 oldDelay, uint64 newDelay);
    /// @notice The consortium approved the scanner-page verifier bundle whose sha-256 is `bundleHash`.
    event VerifierBundleApproved(bytes32 bundleHash);

    // ------------------------------------------------------------------------------------------
    // Role ids
    // ------------------------------------------------------------------------------------------

    /// @notice keccak256("MANUFACTURER"): registers products, commissions units, posts production events.
    function MANUFACTURER_ROLE() external view returns (bytes32);
    /// @notice keccak256("INSPECTOR"): posts inspection results.
    function INSPECTOR_ROLE() external view returns (bytes32);
    /// @notice keccak256("CARRIER"): posts logistics and sensor events.
    function CARRIER_ROLE() external view returns (bytes32);
    /// @notice keccak256("CUSTOMS"): posts declarations, clearances and duties.
    function CUSTOMS_ROLE() external view returns (bytes32);
    /// @notice keccak256("ORACLE"): posts events from external data sources.
    function ORACLE_ROLE() external view returns (bytes32);
    /// @notice keccak256("ARBITRATOR"): rules on escrow disputes.
    function ARBITRATOR_ROLE() external view returns (bytes32);
    /// @notice keccak256("AUDITOR"): verifies history; no write rights.
    function AUDITOR_ROLE() external view returns (bytes32);
    /// @notice keccak256("OPERATOR"): runs the marketplace (escrow administration).
    function OPERATOR_ROLE() external view returns (bytes32);
    /// @notice keccak256("ANCHORER"): anchors batch roots for its organisation's node. Attests nothing:
    ///         holding it does not let an account sign provenance events.
    function ANCHORER_ROLE() external view returns (bytes32);

    /// @notice The longest maximum reporting delay governance may set, in seconds (366 days).
    function MAX_REPORTING_DELAY_LIMIT() external view returns (uint64);

    /// @notice How long a proposal stays open for votes, in seconds.
    function VOTING_PERIOD() external view returns (uint256);

    // ------------------------------------------------------------------------------------------
    // Governance
    // ------------------------------------------------------------------------------------------

    /// @notice Makes a proposal; the caller's organisation votes for it at once, so with a
    ///         threshold of one it executes inside this call.
    /// @dev Reverts with RegistryNotActiveMember if the caller's organisation is not Active,
    ///      RegistryMalformedProposal if `data` does not decode, and with the kind's own errors
    ///      if the change could not be applied now (see `vote`).
    /// @return proposalId Sequential id, starting at 1.
    function propose(ProposalKind kind, bytes calldata data) external returns (uint256 proposalId);

    /// @notice Votes for `proposalId` on behalf of the caller's organisation. The vote that brings
    ///         the proposal to `threshold()` counted votes executes it inside this call.
    /// @dev Reverts with RegistryNotActiveMember, RegistryUnknownProposal, RegistryProposalAlreadyExecuted,
    ///      RegistryProposalExpired (after `deadline`), RegistryAlreadyVoted, and, when executing,
    ///      with the errors of the change: RegistryAccountTaken, RegistryUnknownOrganisation,
    ///      RegistryOrganisationNotActive, RegistryOrganisationNotSuspended, RegistryRoleAlreadyHeld,
    ///      RegistryRoleNotHeld, RegistryInvalidThreshold, RegistryLastActiveMember,
    ///      RegistryInvalidCompanyPrefix, RegistryCompanyPrefixTaken, RegistryNotAContract,
    ///      RegistryAccountNotInOrganisation, RegistryInvalidReportingDelay, RegistryInvalidBundleHash.
    function vote(uint256 proposalId) external;

    /// @notice Executes a proposal that has `threshold()` counted votes but did not execute (possible
    ///         after the threshold was lowered or members were suspended). Any account of an Active
    ///         member may call it.
    /// @dev Reverts with RegistryBelowThreshold if it lacks counted votes, plus the errors listed for `vote`.
    function execute(uint256 proposalId) external;

    // ------------------------------------------------------------------------------------------
    // Accounts (self-service within one's own organisation)
    // ------------------------------------------------------------------------------------------

    /// @notice Offers to link `account` to the caller's organisation (key rotation, more staff). The
    ///         account is linked only when it accepts with `acceptAccount`; an offer binds nobody.
    /// @dev Reverts with RegistryNotActiveMember, RegistryInvalidAccount (zero address) or
    ///      RegistryAccountTaken (already linked to any organisation).
    function addAccount(address account) external;

    /// @notice The caller accepts organisation `orgId`'s offer and is linked to it.
    /// @dev Reverts with RegistryNoOffer, RegistryOrganisationNotActive or RegistryAccountTaken.
    function acceptAccount(uint64 orgId) external;

    /// @notice Unlinks `account` from the caller's organisation; the caller may remove itself.
    /// @dev Reverts with RegistryNotActiveMember, RegistryAccountNotInOrganisation or RegistryLastAccount.
    function removeAccount(address account) external;

    // ------------------------------------------------------------------------------------------
    // Node directory and hosting (self-service; the caller's organisation must be Active)
    // ------------------------------------------------------------------------------------------

    /// @notice Publishes the caller's organisation's node record: its node's public base URL
    ///         (empty when it runs no node) and its document-encryption public key (zero for none).
    ///         Replaces the previous record.
    /// @dev Reverts with RegistryNotActiveMember (caller not an account of an Active organisation)
    ///      or RegistryInvalidNodeUrl.
    function setNodeRecord(string calldata url, bytes32 encryptionKey) external;

    /// @notice Asks organisation `hostOrgId` to host the caller's organisation on its node. Replaces
    ///         any earlier request (0 withdraws it); the current hosting, if any, stays until the
    ///         host accepts.
    /// @dev Reverts with RegistryNotActiveMember, RegistrySelfHosting, RegistryUnknownOrganisation or
    ///      RegistryOrganisationNotActive (the host is not Active).
    function requestHost(uint64 hostOrgId) external;

    /// @notice The caller's organisation accepts to host `hostedOrgId`, which asked for it; it takes
    ///         effect now and replaces any hosting `hostedOrgId` had.
    /// @dev Reverts with RegistryNotActiveMember, RegistryNoHostingRequest or
    ///      RegistryOrganisationNotActive (the hosted organisation is not Active).
    function acceptHosting(uint64 hostedOrgId) external;

    /// @notice Ends the hosting of `hostedOrgId`, now. Either side may end it.
    /// @dev Reverts with RegistryNotActiveMember or RegistryNotHosting.
    function endHosting(uint64 hostedOrgId) external;

    // ------------------------------------------------------------------------------------------
    // Views
    // ------------------------------------------------------------------------------------------

    /// @notice Whether `account` holds `role` now. Reverts with RegistryUnknownRole for unknown roles.
    function hasRole(address account, bytes32 role) external view returns (bool);

    /// @notice Whether `account` held `role` at `timestamp` (a block timestamp, in seconds).
    /// @dev A change made at timestamp T applies from T on. Timestamps after the latest change
    ///      answer with the current state. Reverts with RegistryUnknownRole for unknown roles.
    function hasRoleAt(address account, bytes32 role, uint256 timestamp) external view returns (bool);

    /// @notice The Active organisation of `account` if it holds `role` now, else 0.
    /// @dev One call answers both questions contracts ask of a signer. Reverts with RegistryUnknownRole.
    function organisationWithRole(address account, bytes32 role) external view returns (uint64 orgId);

    /// @notice The Active organisation of `account` if it holds any role now, else 0.
    function organisationWithAnyRole(address account) external view returns (uint64 orgId);

    /// @notice The organisation `account` is linked to now (0 for none), whatever its status.
    function organisationOf(address account) external view returns (uint64 orgId);

    /// @notice The organisation `account` was linked to at `timestamp` (0 for none).
    function organisationOfAt(address account, uint256 timestamp) external view returns (uint64 orgId);

    /// @notice Organisation `orgId`. Reverts with RegistryUnknownOrganisation.
    function organisation(uint64 orgId) external view returns (Organisation memory);

    /// @notice Number of organisations ever admitted (ids run from 1 to this).
    function organisationCount() external view returns (uint256);

    /// @notice Number of Active organisations, i.e. of members that may vote.
    function activeMemberCount() external view returns (uint256);

    /// @notice Accounts linked to `orgId` now, in no particular order. Reverts with RegistryUnknownOrganisation.
    function accountsOf(uint64 orgId) external view returns (address[] memory);

    /// @notice Roles held by `orgId` now. Reverts with RegistryUnknownOrganisation.
    function rolesOf(uint64 orgId) external view returns (bytes32[] memory);

    /// @notice Whether `orgId` holds `role` now, whatever its status. Reverts with RegistryUnknownRole.
    function orgHasRole(uint64 orgId, bytes32 role) external view returns (bool);

    /// @notice Votes a proposal needs to execute now: ceil(activeMemberCount() * thresholdBps() / 10000).
    function threshold() external view returns (uint256);

    /// @notice The share of Active members whose votes pass a proposal, in basis points (1..10000).
    function thresholdBps() external view returns (uint256);

    /// @notice Votes for `proposalId` that count now: those of organisations Active and not suspended since they voted.
    function countedVotes(uint256 proposalId) external view returns (uint256);

    /// @notice Whether organisation `orgId` has an open offer to link `account`.
    function isOffered(address account, uint64 orgId) external view returns (bool);

    /// @notice The organisation whose GS1 Company Prefix covers `gtin` (see the contract notes), or 0.
    function companyPrefixOrganisation(uint256 gtin) external view returns (uint64 orgId);

    /// @notice GS1 Company Prefixes assigned to `orgId`. Reverts with RegistryUnknownOrganisation.
    function companyPrefixesOf(uint64 orgId) external view returns (CompanyPrefix[] memory);

    /// @notice The key whose ECDSA signature contract account `wallet` must carry to count for its
    ///         organisation, or zero when `wallet` is not an approved contract signer now (never
    ///         approved, or it or its key no longer linked to the organisation that approved it).
    function contractSignerKey(address wallet) external view returns (address key);

    /// @notice Number of proposals ever made (ids run from 1 to this).
    function proposalCount() external view returns (uint256);

    /// @notice Proposal `proposalId`. Reverts with RegistryUnknownProposal.
    function proposal(uint256 proposalId) external view returns (Proposal memory);

    /// @notice Whether organisation `orgId` has voted for `proposalId`.
    function hasVoted(uint256 proposalId, uint64 orgId) external view returns (bool);

    /// @notice Organisation `orgId`'s node record (all zero when it never published one), whatever
    ///         its status. Reverts with RegistryUnknownOrganisation.
    function nodeRecord(uint64 orgId) external view returns (NodeRecord memory);

    /// @notice The organisation whose node hosts `orgId` now, 0 for none.
    function hostOf(uint64 orgId) external view returns (uint64);

    /// @notice The organisation whose node hosted `orgId` at `timestamp`, 0 for none.
    /// @dev A change made at timestamp T applies from T on, as for roles.
    function hostOfAt(uint64 orgId, uint256 timestamp) external view returns (uint64);

    /// @notice The organisation that `hostedOrgId` has asked to host it and that has not accepted yet, 0 for none.
    function hostRequestOf(uint64 hostedOrgId) external view returns (uint64);

    /// @notice The maximum reporting delay now, in seconds.
    function maxReportingDelay() external view returns (uint64);

    /// @notice The maximum reporting delay in force at `timestamp` (for timestamps before the
    ///         deployment, the delay set at deployment).
    function maxReportingDelayAt(uint256 timestamp) external view returns (uint64);

    /// @notice sha-256 of the scanner-page verifier bundle the consortium approved, zero for none.
    function verifierBundleHash() external view returns (bytes32);
}
