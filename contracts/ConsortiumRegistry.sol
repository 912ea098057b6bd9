// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";
import {Checkpoints} from "@openzeppelin/contracts/utils/structs/Checkpoints.sol";
import {EnumerableSet} from "@openzeppelin/contracts/utils/structs/EnumerableSet.sol";
import {Time} from "@openzeppelin/contracts/utils/types/Time.sol";

import {IConsortiumRegistry} from "./interfaces/IConsortiumRegistry.sol";
import {Roles} from "./libraries/Roles.sol";

/// @title ConsortiumRegistry
/// @notice Members, accounts and roles of the Waymark consortium, changed only by m-of-n votes.
/// @dev Current state lives in plain mappings for cheap reads by other contracts; the same changes
///      are also written as checkpoints keyed by block timestamp so that `hasRoleAt` can answer
///      for any past moment. The deployer has no privilege.
contract ConsortiumRegistry is IConsortiumRegistry {
    using Checkpoints for Checkpoints.Trace208;
    using EnumerableSet for EnumerableSet.AddressSet;

    /// @dev Storage form of an organisation; country, status, role mask and the number of times it
    ///      was suspended share one slot.
    struct OrgRecord {
        bytes2 country;
        OrganisationStatus status;
        uint16 roleMask;
        uint32 suspensions;
        bytes32 metadataHash;
        string name;
    }

    /// @dev A contract account approved by governance, with the key whose signatures it must carry.
    struct SignerRecord {
        uint64 orgId;
        address key;
    }

    /// @inheritdoc IConsortiumRegistry
    bytes32 public constant MANUFACTURER_ROLE = Roles.MANUFACTURER;
    /// @inheritdoc IConsortiumRegistry
    bytes32 public constant INSPECTOR_ROLE = Roles.INSPECTOR;
    /// @inheritdoc IConsortiumRegistry
    bytes32 public constant CARRIER_ROLE = Roles.CARRIER;
    /// @inheritdoc IConsortiumRegistry
    bytes32 public constant CUSTOMS_ROLE = Roles.CUSTOMS;
    /// @inheritdoc IConsortiumRegistry
    bytes32 public constant ORACLE_ROLE = Roles.ORACLE;
    /// @inheritdoc IConsortiumRegistry
    bytes32 public constant ARBITRATOR_ROLE = Roles.ARBITRATOR;
    /// @inheritdoc IConsortiumRegistry
    bytes32 public constant AUDITOR_ROLE = Roles.AUDITOR;
    /// @inheritdoc IConsortiumRegistry
    bytes32 public constant OPERATOR_ROLE = Roles.OPERATOR;
    /// @inheritdoc IConsortiumRegistry
    bytes32 public constant ANCHORER_ROLE = Roles.ANCHORER;

    /// @inheritdoc IConsortiumRegistry
    uint64 public constant MAX_REPORTING_DELAY_LIMIT = 366 days;

    /// @inheritdoc IConsortiumRegistry
    uint256 public constant VOTING_PERIOD = 7 days;

    /// @dev Longest organisation name accepted, in bytes.
    uint256 private constant _MAX_NAME_LENGTH = 128;

    /// @dev Basis points in one whole.
    uint256 private constant _BPS = 10_000;

    /// @dev GS1 Company Prefixes have 4 to 12 digits.
    uint8 private constant _MIN_PREFIX_DIGITS = 4;
    uint8 private constant _MAX_PREFIX_DIGITS = 12;

    /// @dev A GTIN-14 read as a number is below 10^14; without its indicator digit, below 10^13.
    uint256 private constant _GTIN_LIMIT = 1e14;
    uint256 private constant _GTIN_BODY = 1e13;

    /// @dev Longest node URL accepted, in bytes.
    uint256 private constant _MAX_URL_LENGTH = 256;

    /// @dev Checkpoint values for status and role history.
    uint208 private constant _YES = 1;
    uint208 private constant _NO = 0;

    uint64 private _orgCount;
    uint256 private _activeMembers;
    uint256 private _thresholdBps;
    uint256 private _proposalCount;
    /// @dev Bit d is set when some assigned prefix has d digits, so lookups skip unused lengths.
    uint16 private _prefixLengths;

    mapping(uint64 orgId => OrgRecord) private _orgs;
    mapping(uint64 orgId => EnumerableSet.AddressSet) private _accounts;
    mapping(address account => uint64 orgId) private _orgOf;

    mapping(address account => Checkpoints.Trace208 orgIds) private _orgOfHistory;
    mapping(uint64 orgId => Checkpoints.Trace208 isActive) private _statusHistory;
    mapping(uint64 orgId => mapping(bytes32 role => Checkpoints.Trace208 isHeld)) private _roleHistory;

    mapping(uint256 proposalId => Proposal) private _proposals;
    /// @dev 1 + the voter's suspension count when it voted; 0 if it did not vote. A vote counts
    ///      while the voter is Active and its suspension count is unchanged.
    mapping(uint256 proposalId => mapping(uint64 orgId => uint32 epoch)) private _voteEpoch;
    /// @dev Organisations that voted; at most one entry per organisation ever admitted.
    mapping(uint256 proposalId => uint64[] orgIds) private _voters;

    mapping(address account => mapping(uint64 orgId => address offeredBy)) private _offers;

    /// @dev Prefix key = digits << 64 | value (see `_prefixKey`).
    mapping(uint256 prefixKey => uint64 orgId) private _prefixOwner;
    /// @dev Number of assigned prefixes that extend the prefix with this key.
    mapping(uint256 prefixKey => uint256 count) private _prefixesBelow;
    mapping(uint64 orgId => CompanyPrefix[]) private _prefixesOf;

    mapping(address wallet => SignerRecord) private _contractSigners;

    mapping(uint64 orgId => NodeRecord) private _nodeRecords;
    /// @dev Host organisation over time; the latest value is the host now (0 = none).
    mapping(uint64 orgId => Checkpoints.Trace208 hostOrgId) private _hostHistory;
    mapping(uint64 hostedOrgId => uint64 hostOrgId) private _hostRequests;
    /// @dev Maximum reporting delay in seconds over time; the first entry is the deployment's.
    Checkpoints.Trace208 private _reportingDelayHistory;
    bytes32 private _verifierBundleHash;

    /// @param founders Organisations admitted Active at deployment, with their accounts, roles, GS1
    ///        Company Prefixes, node records and hosting.
    /// @param thresholdBps_ Share of Active members whose votes pass a proposal, in basis points
    ///        (5001..10000: more than half).
    /// @param maxReportingDelay_ Maximum reporting delay in seconds (1 .. MAX_REPORTING_DELAY_LIMIT).
    /// @param verifierBundleHash_ sha-256 of the approved scanner-page verifier bundle; zero for none yet.
    constructor(
        FoundingMember[] memory founders,
        uint256 thresholdBps_,
        uint64 maxReportingDelay_,
        bytes32 verifierBundleHash_
    ) {
        _checkThreshold(thresholdBps_);
        if (founders.length == 0) revert RegistryLastActiveMember(0);
        for (uint256 i = 0; i < founders.length; ++i) {
            _found(founders[i]);
        }
        // Hosts are named by founding id, so hosting is set once every founder exists.
        for (uint256 i = 0; i < founders.length; ++i) {
            uint64 host = founders[i].host;
            if (host == 0) continue;
            uint64 orgId = uint64(i + 1);
            if (host == orgId) revert RegistrySelfHosting(orgId);
            _existingOrg(host);
            _setHost(orgId, host);
        }
        _thresholdBps = thresholdBps_;
        emit ThresholdChanged(0, thresholdBps_);
        _checkReportingDelay(maxReportingDelay_);
        _setReportingDelay(maxReportingDelay_);
        if (verifierBundleHash_ != bytes32(0)) _approveBundle(verifierBundleHash_);
    }

    // ------------------------------------------------------------------------------------------
    // Governance
    // ------------------------------------------------------------------------------------------

    /// @inheritdoc IConsortiumRegistry
    function propose(ProposalKind kind, bytes calldata data) external returns (uint256 proposalId) {
        uint64 orgId = _requireActiveMember(msg.sender);
        _checkWellFormed(kind, data);
        _run(kind, data, false);

        proposalId = ++_proposalCount;
        uint48 now_ = Time.timestamp();
        uint48 deadline = now_ + uint48(VOTING_PERIOD);
        Proposal storage p = _proposals[proposalId];
        p.kind = kind;
        p.proposerOrg = orgId;
        p.created = now_;
        p.deadline = deadline;
        p.data = data;
        emit ProposalCreated(proposalId, orgId, msg.sender, kind, data, deadline);

        _castVote(proposalId, p, orgId, true);
    }

    /// @inheritdoc IConsortiumRegistry
    function vote(uint256 proposalId) external {
        uint64 orgId = _requireActiveMember(msg.sender);
        Proposal storage p = _openProposal(proposalId);
        uint32 epoch = _voteEpoch[proposalId][orgId];
        // A vote voided by a suspension since may be cast again once the organisation is reinstated.
        if (epoch == _orgs[orgId].suspensions + 1) revert RegistryAlreadyVoted(proposalId, orgId);
        _castVote(proposalId, p, orgId, epoch == 0);
    }

    /// @inheritdoc IConsortiumRegistry
    function execute(uint256 proposalId) external {
        _requireActiveMember(msg.sender);
        Proposal storage p = _openProposal(proposalId);
        uint256 counted = _countedVotes(proposalId);
        uint256 required = _requiredVotes();
        if (counted < required) revert RegistryBelowThreshold(proposalId, counted, required);
        _execute(proposalId, p);
    }

    /// @notice Decodes the data of an AdmitOrganisation proposal; reverts (without data) if malformed.
    /// @dev External so that `propose` can catch a malformed encoding and report it as
    ///      RegistryMalformedProposal; also handy for off-chain tools.
    function decodeAdmission(
        bytes calldata data
    )
        external
        pure
        returns (string memory name, bytes2 country, bytes32 metadataHash, address firstAccount, bytes32[] memory roles)
    {
        return abi.decode(data, (string, bytes2, bytes32, address, bytes32[]));
    }

    // ------------------------------------------------------------------------------------------
    // Accounts
    // ------------------------------------------------------------------------------------------

    /// @inheritdoc IConsortiumRegistry
    function addAccount(address account) external {
        uint64 orgId = _requireActiveMember(msg.sender);
        _checkFreeAccount(account);
        _offers[account][orgId] = msg.sender;
        emit AccountOffered(orgId, account, msg.sender);
    }

    /// @inheritdoc IConsortiumRegistry
    function acceptAccount(uint64 orgId) external {
        address offeredBy = _offers[msg.sender][orgId];
        if (offeredBy == address(0)) revert RegistryNoOffer(msg.sender, orgId);
        if (_orgs[orgId].status != OrganisationStatus.Active) revert RegistryOrganisationNotActive(orgId);
        _checkFreeAccount(msg.sender);
        delete _offers[msg.sender][orgId];
        _link(orgId, msg.sender, offeredBy);
    }

    /// @inheritdoc IConsortiumRegistry
    function removeAccount(address account) external {
        uint64 orgId = _requireActiveMember(msg.sender);
        if (_orgOf[account] != orgId) revert RegistryAccountNotInOrganisation(account, orgId);
        if (_accounts[orgId].length() == 1) revert RegistryLastAccount(orgId, account);

        delete _orgOf[account];
        delete _contractSigners[account];
        _orgOfHistory[account].push(Time.timestamp(), 0);
        _accounts[orgId].remove(account);
        emit AccountRemoved(orgId, account, msg.sender);
    }

    // ------------------------------------------------------------------------------------------
    // Node directory and hosting
    // ------------------------------------------------------------------------------------------

    /// @inheritdoc IConsortiumRegistry
    function setNodeRecord(string calldata url, bytes32 encryptionKey) external {
        uint64 orgId = _requireActiveMember(msg.sender);
        _checkNodeUrl(url);
        _setNodeRecord(orgId, url, encryptionKey);
    }

    /// @inheritdoc IConsortiumRegistry
    function requestHost(uint64 hostOrgId) external {
        uint64 orgId = _requireActiveMember(msg.sender);
        if (hostOrgId == orgId) revert RegistrySelfHosting(orgId);
        // 0 withdraws a request; any other host must be an Active organisation.
        if (hostOrgId != 0 && _existingOrg(hostOrgId).status != OrganisationStatus.Active) {
            revert RegistryOrganisationNotActive(hostOrgId);
        }
        _hostRequests[orgId] = hostOrgId;
        emit HostingRequested(orgId, hostOrgId);
    }

    /// @inheritdoc IConsortiumRegistry
    function acceptHosting(uint64 hostedOrgId) external {
        uint64 hostOrgId = _requireActiveMember(msg.sender);
        if (_hostRequests[hostedOrgId] != hostOrgId) revert RegistryNoHostingRequest(hostedOrgId, hostOrgId);
        // A request is only made by an Active organisation, but it may have been suspended since.
        if (_orgs[hostedOrgId].status != OrganisationStatus.Active) revert RegistryOrganisationNotActive(hostedOrgId);
        delete _hostRequests[hostedOrgId];
        _setHost(hostedOrgId, hostOrgId);
    }

    /// @inheritdoc IConsortiumRegistry
    function endHosting(uint64 hostedOrgId) external {
        uint64 callerOrg = _requireActiveMember(msg.sender);
        uint64 host = uint64(_hostHistory[hostedOrgId].latest());
        if (host == 0 || (callerOrg != host && callerOrg != hostedOrgId)) {
            revert RegistryNotHosting(hostedOrgId, callerOrg);
        }
        _setHost(hostedOrgId, 0);
    }

    // ------------------------------------------------------------------------------------------
    // Views
    // ------------------------------------------------------------------------------------------

    /// @inheritdoc IConsortiumRegistry
    function hasRole(address account, bytes32 role) external view returns (bool) {
        uint16 bit = _requireKnownRole(role);
        uint64 orgId = _orgOf[account];
        if (orgId == 0) return false;
        OrgRecord storage org = _orgs[orgId];
        return org.status == OrganisationStatus.Active && org.roleMask & bit != 0;
    }

    /// @inheritdoc IConsortiumRegistry
    function hasRoleAt(address account, bytes32 role, uint256 timestamp) external view returns (bool) {
        _requireKnownRole(role);
        uint48 key = _historyKey(timestamp);
        uint64 orgId = uint64(_orgOfHistory[account].upperLookupRecent(key));
        if (orgId == 0) return false;
        return
            _statusHistory[orgId].upperLookupRecent(key) == _YES &&
            _roleHistory[orgId][role].upperLookupRecent(key) == _YES;
    }

    /// @inheritdoc IConsortiumRegistry
    function organisationWithRole(address account, bytes32 role) external view returns (uint64) {
        return _organisationWithMask(account, _requireKnownRole(role));
    }

    /// @inheritdoc IConsortiumRegistry
    function organisationWithAnyRole(address account) external view returns (uint64) {
        return _organisationWithMask(account, type(uint16).max);
    }

    /// @inheritdoc IConsortiumRegistry
    function organisationOf(address account) external view returns (uint64) {
        return _orgOf[account];
    }

    /// @inheritdoc IConsortiumRegistry
    function organisationOfAt(address account, uint256 timestamp) external view returns (uint64) {
        return uint64(_orgOfHistory[account].upperLookupRecent(_historyKey(timestamp)));
    }

    /// @inheritdoc IConsortiumRegistry
    function organisation(uint64 orgId) external view returns (Organisation memory) {
        OrgRecord storage org = _existingOrg(orgId);
        return
            Organisation({
                id: orgId,
                name: org.name,
                country: org.country,
                metadataHash: org.metadataHash,
                status: org.status
            });
    }

    /// @inheritdoc IConsortiumRegistry
    function organisationCount() external view returns (uint256) {
        return _orgCount;
    }

    /// @inheritdoc IConsortiumRegistry
    function activeMemberCount() external view returns (uint256) {
        return _activeMembers;
    }

    /// @inheritdoc IConsortiumRegistry
    function accountsOf(uint64 orgId) external view returns (address[] memory) {
        _existingOrg(orgId);
        return _accounts[orgId].values();
    }

    /// @inheritdoc IConsortiumRegistry
    function rolesOf(uint64 orgId) external view returns (bytes32[] memory roles) {
        uint16 mask = _existingOrg(orgId).roleMask;
        roles = new bytes32[](Roles.COUNT);
        uint256 count;
        for (uint256 i = 0; i < Roles.COUNT; ++i) {
            if (mask & (1 << i) != 0) roles[count++] = Roles.byIndex(i);
        }
        // Shrink the array to the roles actually held.
        assembly ("memory-safe") {
            mstore(roles, count)
        }
    }

    /// @inheritdoc IConsortiumRegistry
    function orgHasRole(uint64 orgId, bytes32 role) external view returns (bool) {
        return _orgs[orgId].roleMask & _requireKnownRole(role) != 0;
    }

    /// @inheritdoc IConsortiumRegistry
    function threshold() external view returns (uint256) {
        return _requiredVotes();
    }

    /// @inheritdoc IConsortiumRegistry
    function thresholdBps() external view returns (uint256) {
        return _thresholdBps;
    }

    /// @inheritdoc IConsortiumRegistry
    function countedVotes(uint256 proposalId) external view returns (uint256) {
        return _countedVotes(proposalId);
    }

    /// @inheritdoc IConsortiumRegistry
    function isOffered(address account, uint64 orgId) external view returns (bool) {
        return _offers[account][orgId] != address(0);
    }

    /// @inheritdoc IConsortiumRegistry
    function companyPrefixOrganisation(uint256 gtin) external view returns (uint64 orgId) {
        if (gtin >= _GTIN_LIMIT) return 0;
        uint256 body = gtin % _GTIN_BODY; // drops the indicator digit
        uint16 lengths = _prefixLengths;
        // Bounded: at most 9 lengths; assigned prefixes never overlap, so the first match is the only one.
        for (uint8 digits = _MIN_PREFIX_DIGITS; digits <= _MAX_PREFIX_DIGITS; ++digits) {
            if (lengths & (uint16(1) << digits) == 0) continue;
            orgId = _prefixOwner[_prefixKey(uint64(body / 10 ** uint256(13 - digits)), digits)];
            if (orgId != 0) return orgId;
        }
    }

    /// @inheritdoc IConsortiumRegistry
    function companyPrefixesOf(uint64 orgId) external view returns (CompanyPrefix[] memory) {
        _existingOrg(orgId);
        return _prefixesOf[orgId];
    }

    /// @inheritdoc IConsortiumRegistry
    function contractSignerKey(address wallet) external view returns (address) {
        SignerRecord memory signer = _contractSigners[wallet];
        if (signer.orgId == 0 || _orgOf[wallet] != signer.orgId || _orgOf[signer.key] != signer.orgId) {
            return address(0);
        }
        return signer.key;
    }

    /// @inheritdoc IConsortiumRegistry
    function proposalCount() external view returns (uint256) {
        return _proposalCount;
    }

    /// @inheritdoc IConsortiumRegistry
    function proposal(uint256 proposalId) external view returns (Proposal memory) {
        if (proposalId == 0 || proposalId > _proposalCount) revert RegistryUnknownProposal(proposalId);
        return _proposals[proposalId];
    }

    /// @inheritdoc IConsortiumRegistry
    function hasVoted(uint256 proposalId, uint64 orgId) external view returns (bool) {
        return _voteEpoch[proposalId][orgId] != 0;
    }

    /// @inheritdoc IConsortiumRegistry
    function nodeRecord(uint64 orgId) external view returns (NodeRecord memory) {
        _existingOrg(orgId);
        return _nodeRecords[orgId];
    }

    /// @inheritdoc IConsortiumRegistry
    function hostOf(uint64 orgId) external view returns (uint64) {
        return uint64(_hostHistory[orgId].latest());
    }

    /// @inheritdoc IConsortiumRegistry
    function hostOfAt(uint64 orgId, uint256 timestamp) external view returns (uint64) {
        return uint64(_hostHistory[orgId].upperLookupRecent(_historyKey(timestamp)));
    }

    /// @inheritdoc IConsortiumRegistry
    function hostRequestOf(uint64 hostedOrgId) external view returns (uint64) {
        return _hostRequests[hostedOrgId];
    }

    /// @inheritdoc IConsortiumRegistry
    function maxReportingDelay() external view returns (uint64) {
        return uint64(_reportingDelayHistory.latest());
    }

    /// @inheritdoc IConsortiumRegistry
    function maxReportingDelayAt(uint256 timestamp) external view returns (uint64) {
        uint208 delay = _reportingDelayHistory.upperLookupRecent(_historyKey(timestamp));
        // Before the deployment the deployment's delay applies (events may predate the registry).
        return uint64(delay != 0 ? delay : _reportingDelayHistory.at(0)._value);
    }

    /// @inheritdoc IConsortiumRegistry
    function verifierBundleHash() external view returns (bytes32) {
        return _verifierBundleHash;
    }

    // ------------------------------------------------------------------------------------------
    // Proposal machinery
    // ------------------------------------------------------------------------------------------

    function _castVote(uint256 proposalId, Proposal storage p, uint64 orgId, bool firstVote) private {
        _voteEpoch[proposalId][orgId] = _orgs[orgId].suspensions + 1;
        uint32 votes = p.votes;
        if (firstVote) {
            _voters[proposalId].push(orgId);
            p.votes = ++votes;
        }
        emit Voted(proposalId, orgId, msg.sender, votes);
        if (_countedVotes(proposalId) >= _requiredVotes()) _execute(proposalId, p);
    }

    /// @dev Votes of organisations that are Active and were not suspended since they voted.
    ///      Bounded by the number of organisations: each votes at most once per proposal.
    function _countedVotes(uint256 proposalId) private view returns (uint256 counted) {
        uint64[] storage voters = _voters[proposalId];
        for (uint256 i = 0; i < voters.length; ++i) {
            uint64 orgId = voters[i];
            OrgRecord storage org = _orgs[orgId];
            if (org.status == OrganisationStatus.Active && _voteEpoch[proposalId][orgId] == org.suspensions + 1) {
                ++counted;
            }
        }
    }

    /// @dev More than half of the Active members, at most all of them. At half or less, two
    ///      coalitions that share no member could each pass proposals against the other, and a
    ///      minority could lower the threshold until one member alone passes anything.
    function _checkThreshold(uint256 thresholdBps_) private pure {
        if (thresholdBps_ <= _BPS / 2 || thresholdBps_ > _BPS) revert RegistryInvalidThreshold(thresholdBps_);
    }

    /// @dev ceil(Active members * threshold share); at least 1 while a member is Active.
    function _requiredVotes() private view returns (uint256) {
        return Math.ceilDiv(_activeMembers * _thresholdBps, _BPS);
    }

    function _execute(uint256 proposalId, Proposal storage p) private {
        p.executed = true;
        ProposalKind kind = p.kind;
        _run(kind, p.data, true);
        emit ProposalExecuted(proposalId, kind);
    }

    function _openProposal(uint256 proposalId) private view returns (Proposal storage p) {
        if (proposalId == 0 || proposalId > _proposalCount) revert RegistryUnknownProposal(proposalId);
        p = _proposals[proposalId];
        if (p.executed) revert RegistryProposalAlreadyExecuted(proposalId);
        if (block.timestamp > p.deadline) revert RegistryProposalExpired(proposalId, p.deadline);
    }

    /// @dev Rejects encodings that `abi.decode` would reject without a reason, so that a malformed
    ///      proposal fails with a named error. Fixed-size kinds are checked by length and range.
    function _checkWellFormed(ProposalKind kind, bytes calldata data) private view {
        if (kind == ProposalKind.AdmitOrganisation) {
            try this.decodeAdmission(data) {
                return;
            } catch {
                revert RegistryMalformedProposal(kind, data);
            }
        }
        bool withRole = kind == ProposalKind.GrantRole || kind == ProposalKind.RevokeRole;
        bool threeWords = kind == ProposalKind.AssignCompanyPrefix || kind == ProposalKind.ApproveContractSigner;
        if (data.length != (threeWords ? 96 : withRole ? 64 : 32)) revert RegistryMalformedProposal(kind, data);
        bool wholeWord = kind == ProposalKind.ChangeThreshold || kind == ProposalKind.SetVerifierBundle;
        if (!wholeWord && uint256(bytes32(data[:32])) > type(uint64).max) {
            revert RegistryMalformedProposal(kind, data);
        }
        if (threeWords) {
            uint256 second = uint256(bytes32(data[32:64]));
            uint256 third = uint256(bytes32(data[64:96]));
            bool fits = kind == ProposalKind.AssignCompanyPrefix
                ? second <= type(uint64).max && third <= type(uint8).max
                : second <= type(uint160).max && third <= type(uint160).max;
            if (!fits) revert RegistryMalformedProposal(kind, data);
        }
    }

    /// @dev Checks a proposal against the current state and, when `commit`, applies it. The same
    ///      code serves the check at proposal time and the check-and-apply at execution.
    function _run(ProposalKind kind, bytes memory data, bool commit) private {
        if (kind == ProposalKind.AdmitOrganisation) {
            _runAdmission(data, commit);
        } else if (kind == ProposalKind.SuspendOrganisation) {
            uint64 orgId = abi.decode(data, (uint64));
            OrgRecord storage org = _existingOrg(orgId);
            if (org.status != OrganisationStatus.Active) revert RegistryOrganisationNotActive(orgId);
            // Someone must remain to govern.
            if (_activeMembers == 1) revert RegistryLastActiveMember(orgId);
            if (commit) _setStatus(orgId, org, OrganisationStatus.Suspended);
        } else if (kind == ProposalKind.ReinstateOrganisation) {
            uint64 orgId = abi.decode(data, (uint64));
            OrgRecord storage org = _existingOrg(orgId);
            if (org.status != OrganisationStatus.Suspended) revert RegistryOrganisationNotSuspended(orgId);
            if (commit) _setStatus(orgId, org, OrganisationStatus.Active);
        } else if (kind == ProposalKind.GrantRole) {
            (uint64 orgId, bytes32 role) = abi.decode(data, (uint64, bytes32));
            OrgRecord storage org = _existingOrg(orgId);
            uint16 bit = _requireKnownRole(role);
            if (org.roleMask & bit != 0) revert RegistryRoleAlreadyHeld(orgId, role);
            if (commit) _setRole(orgId, org, role, bit, true);
        } else if (kind == ProposalKind.RevokeRole) {
            (uint64 orgId, bytes32 role) = abi.decode(data, (uint64, bytes32));
            OrgRecord storage org = _existingOrg(orgId);
            uint16 bit = _requireKnownRole(role);
            if (org.roleMask & bit == 0) revert RegistryRoleNotHeld(orgId, role);
            if (commit) _setRole(orgId, org, role, bit, false);
        } else if (kind == ProposalKind.ChangeThreshold) {
            uint256 newThresholdBps = abi.decode(data, (uint256));
            _checkThreshold(newThresholdBps);
            if (commit) {
                uint256 oldThresholdBps = _thresholdBps;
                _thresholdBps = newThresholdBps;
                emit ThresholdChanged(oldThresholdBps, newThresholdBps);
            }
        } else if (kind == ProposalKind.AssignCompanyPrefix) {
            (uint64 orgId, uint64 value, uint8 digits) = abi.decode(data, (uint64, uint64, uint8));
            _existingOrg(orgId);
            _checkCompanyPrefix(value, digits);
            if (commit) _assignCompanyPrefix(orgId, value, digits);
        } else if (kind == ProposalKind.SetMaxReportingDelay) {
            uint64 delay = abi.decode(data, (uint64));
            _checkReportingDelay(delay);
            if (commit) _setReportingDelay(delay);
        } else if (kind == ProposalKind.SetVerifierBundle) {
            bytes32 bundleHash = abi.decode(data, (bytes32));
            if (bundleHash == bytes32(0)) revert RegistryInvalidBundleHash(bundleHash);
            if (commit) _approveBundle(bundleHash);
        } else {
            (uint64 orgId, address wallet, address key) = abi.decode(data, (uint64, address, address));
            _existingOrg(orgId);
            if (wallet.code.length == 0) revert RegistryNotAContract(wallet);
            // Both linked with their own consent; an account belongs to one organisation only, so
            // the key can count for no other organisation.
            if (_orgOf[wallet] != orgId) revert RegistryAccountNotInOrganisation(wallet, orgId);
            if (_orgOf[key] != orgId) revert RegistryAccountNotInOrganisation(key, orgId);
            if (commit) {
                _contractSigners[wallet] = SignerRecord({orgId: orgId, key: key});
                emit ContractSignerApproved(orgId, wallet, key);
            }
        }
    }

    function _runAdmission(bytes memory data, bool commit) private {
        (string memory name, bytes2 country, bytes32 metadataHash, address firstAccount, bytes32[] memory roles) = abi
            .decode(data, (string, bytes2, bytes32, address, bytes32[]));
        uint16 mask = _checkAdmission(name, country, firstAccount, roles);
        if (commit) _admit(name, country, metadataHash, firstAccount, mask);
    }

    // ------------------------------------------------------------------------------------------
    // State changes
    // ------------------------------------------------------------------------------------------

    /// @dev Admits one founding member with its prefixes, further accounts and node record.
    function _found(FoundingMember memory founder) private {
        uint16 mask = _checkAdmission(founder.name, founder.country, founder.account, founder.roles);
        _admit(founder.name, founder.country, founder.metadataHash, founder.account, mask);
        uint64 orgId = _orgCount;
        for (uint256 j = 0; j < founder.companyPrefixes.length; ++j) {
            CompanyPrefix memory prefix = founder.companyPrefixes[j];
            _checkCompanyPrefix(prefix.value, prefix.digits);
            _assignCompanyPrefix(orgId, prefix.value, prefix.digits);
        }
        for (uint256 j = 0; j < founder.otherAccounts.length; ++j) {
            _checkFreeAccount(founder.otherAccounts[j]);
            _link(orgId, founder.otherAccounts[j], address(0));
        }
        if (bytes(founder.nodeUrl).length != 0 || founder.encryptionKey != bytes32(0)) {
            _checkNodeUrl(founder.nodeUrl);
            _setNodeRecord(orgId, founder.nodeUrl, founder.encryptionKey);
        }
    }

    function _setNodeRecord(uint64 orgId, string memory url, bytes32 encryptionKey) private {
        _nodeRecords[orgId] = NodeRecord({url: url, encryptionKey: encryptionKey, updatedAt: Time.timestamp()});
        emit NodeRecordSet(orgId, url, encryptionKey);
    }

    function _setHost(uint64 hostedOrgId, uint64 hostOrgId) private {
        _hostHistory[hostedOrgId].push(Time.timestamp(), hostOrgId);
        emit HostingChanged(hostedOrgId, hostOrgId);
    }

    function _setReportingDelay(uint64 delay) private {
        uint64 oldDelay = uint64(_reportingDelayHistory.latest());
        _reportingDelayHistory.push(Time.timestamp(), delay);
        emit MaxReportingDelayChanged(oldDelay, delay);
    }

    function _approveBundle(bytes32 bundleHash) private {
        _verifierBundleHash = bundleHash;
        emit VerifierBundleApproved(bundleHash);
    }

    function _admit(
        string memory name,
        bytes2 country,
        bytes32 metadataHash,
        address firstAccount,
        uint16 mask
    ) private {
        uint64 orgId = ++_orgCount;
        OrgRecord storage org = _orgs[orgId];
        org.name = name;
        org.country = country;
        org.metadataHash = metadataHash;
        org.status = OrganisationStatus.Active;
        ++_activeMembers;
        _statusHistory[orgId].push(Time.timestamp(), _YES);
        emit OrganisationAdmitted(orgId, name, country, metadataHash, firstAccount);

        for (uint256 i = 0; i < Roles.COUNT; ++i) {
            uint16 bit = uint16(1 << i);
            if (mask & bit != 0) _setRole(orgId, org, Roles.byIndex(i), bit, true);
        }
        _link(orgId, firstAccount, address(0));
    }

    function _setStatus(uint64 orgId, OrgRecord storage org, OrganisationStatus status) private {
        org.status = status;
        if (status == OrganisationStatus.Active) {
            ++_activeMembers;
            _statusHistory[orgId].push(Time.timestamp(), _YES);
        } else {
            ++org.suspensions; // voids the votes it cast before
            --_activeMembers;
            _statusHistory[orgId].push(Time.timestamp(), _NO);
        }
        emit OrganisationStatusChanged(orgId, status);
    }

    function _setRole(uint64 orgId, OrgRecord storage org, bytes32 role, uint16 bit, bool held) private {
        if (held) {
            org.roleMask |= bit;
            _roleHistory[orgId][role].push(Time.timestamp(), _YES);
            emit RoleGranted(orgId, role);
        } else {
            org.roleMask &= ~bit;
            _roleHistory[orgId][role].push(Time.timestamp(), _NO);
            emit RoleRevoked(orgId, role);
        }
    }

    function _assignCompanyPrefix(uint64 orgId, uint64 value, uint8 digits) private {
        _prefixOwner[_prefixKey(value, digits)] = orgId;
        for (uint8 shorter = _MIN_PREFIX_DIGITS; shorter < digits; ++shorter) {
            ++_prefixesBelow[_prefixKey(value / uint64(10 ** uint256(digits - shorter)), shorter)];
        }
        _prefixLengths |= uint16(1) << digits;
        _prefixesOf[orgId].push(CompanyPrefix({value: value, digits: digits}));
        emit CompanyPrefixAssigned(orgId, value, digits);
    }

    function _link(uint64 orgId, address account, address addedBy) private {
        _orgOf[account] = orgId;
        _orgOfHistory[account].push(Time.timestamp(), orgId);
        _accounts[orgId].add(account);
        emit AccountAdded(orgId, account, addedBy);
    }

    // ------------------------------------------------------------------------------------------
    // Checks
    // ------------------------------------------------------------------------------------------

    /// @dev Validates a new organisation and returns its role mask.
    function _checkAdmission(
        string memory name,
        bytes2 country,
        address firstAccount,
        bytes32[] memory roles
    ) private view returns (uint16 mask) {
        uint256 nameLength = bytes(name).length;
        if (nameLength == 0 || nameLength > _MAX_NAME_LENGTH) revert RegistryInvalidName(name);
        if (!_isCountryCode(country)) revert RegistryInvalidCountry(country);
        _checkFreeAccount(firstAccount);
        // Bounded: an unknown or repeated role reverts, so at most Roles.COUNT + 1 iterations run.
        for (uint256 i = 0; i < roles.length; ++i) {
            uint16 bit = _requireKnownRole(roles[i]);
            if (mask & bit != 0) revert RegistryDuplicateRole(roles[i]);
            mask |= bit;
        }
    }

    /// @dev A well-formed prefix that neither equals, contains nor lies inside an assigned one.
    function _checkCompanyPrefix(uint64 value, uint8 digits) private view {
        if (digits < _MIN_PREFIX_DIGITS || digits > _MAX_PREFIX_DIGITS || value >= 10 ** uint256(digits)) {
            revert RegistryInvalidCompanyPrefix(value, digits);
        }
        uint256 key = _prefixKey(value, digits);
        if (_prefixOwner[key] != 0 || _prefixesBelow[key] != 0) revert RegistryCompanyPrefixTaken(value, digits);
        for (uint8 shorter = _MIN_PREFIX_DIGITS; shorter < digits; ++shorter) {
            if (_prefixOwner[_prefixKey(value / uint64(10 ** uint256(digits - shorter)), shorter)] != 0) {
                revert RegistryCompanyPrefixTaken(value, digits);
            }
        }
    }

    function _prefixKey(uint64 value, uint8 digits) private pure returns (uint256) {
        return (uint256(digits) << 64) | value;
    }

    function _checkReportingDelay(uint64 delay) private pure {
        if (delay == 0 || delay > MAX_REPORTING_DELAY_LIMIT) revert RegistryInvalidReportingDelay(delay);
    }

    /// @dev Empty (no node), or http:// or https:// followed by at least one printable ASCII byte,
    ///      no spaces, at most _MAX_URL_LENGTH bytes, not ending in "/" (paths are appended to it).
    function _checkNodeUrl(string memory url) private pure {
        bytes memory b = bytes(url);
        uint256 length = b.length;
        if (length == 0) return;
        uint256 scheme = _hasPrefix(b, "https://") ? 8 : _hasPrefix(b, "http://") ? 7 : 0;
        if (scheme == 0 || length == scheme || length > _MAX_URL_LENGTH || b[length - 1] == "/") {
            revert RegistryInvalidNodeUrl(url);
        }
        // Bounded by _MAX_URL_LENGTH.
        for (uint256 i = scheme; i < length; ++i) {
            if (b[i] <= 0x20 || b[i] >= 0x7f) revert RegistryInvalidNodeUrl(url);
        }
    }

    function _hasPrefix(bytes memory b, bytes memory prefix) private pure returns (bool) {
        if (b.length < prefix.length) return false;
        for (uint256 i = 0; i < prefix.length; ++i) {
            if (b[i] != prefix[i]) return false;
        }
        return true;
    }

    function _checkFreeAccount(address account) private view {
        if (account == address(0)) revert RegistryInvalidAccount(account);
        uint64 current = _orgOf[account];
        if (current != 0) revert RegistryAccountTaken(account, current);
    }

    function _requireActiveMember(address account) private view returns (uint64 orgId) {
        orgId = _orgOf[account];
        if (orgId == 0 || _orgs[orgId].status != OrganisationStatus.Active) revert RegistryNotActiveMember(account);
    }

    /// @dev The Active organisation of `account` if it holds a role in `mask`, else 0.
    function _organisationWithMask(address account, uint16 mask) private view returns (uint64) {
        uint64 orgId = _orgOf[account];
        if (orgId == 0) return 0;
        OrgRecord storage org = _orgs[orgId];
        if (org.status != OrganisationStatus.Active || org.roleMask & mask == 0) return 0;
        return orgId;
    }

    function _existingOrg(uint64 orgId) private view returns (OrgRecord storage org) {
        org = _orgs[orgId];
        if (org.status == OrganisationStatus.None) revert RegistryUnknownOrganisation(orgId);
    }

    function _requireKnownRole(bytes32 role) private pure returns (uint16 bit) {
        bit = Roles.bit(role);
        if (bit == 0) revert RegistryUnknownRole(role);
    }

    function _isCountryCode(bytes2 country) private pure returns (bool) {
        return _isUpper(country[0]) && _isUpper(country[1]);
    }

    function _isUpper(bytes1 char) private pure returns (bool) {
        return char >= 0x41 && char <= 0x5A;
    }

    /// @dev Checkpoint keys are uint48 seconds; later timestamps mean "as of now".
    function _historyKey(uint256 timestamp) private pure returns (uint48) {
        return timestamp > type(uint48).max ? type(uint48).max : uint48(timestamp);
    }
}
