// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IERC5267} from "@openzeppelin/contracts/interfaces/IERC5267.sol";

import {IConsortiumRegistry} from "./IConsortiumRegistry.sol";

/// @title IProvenanceRegistry
/// @notice Product classes (GTIN -> manufacturer organisation) and Merkle roots of batches of
///         signed provenance events. Per-event data never goes on chain: a batch is one root.
/// @dev Leaves follow OpenZeppelin's StandardMerkleTree for leaf types ["bytes32","address"]
///      (event hash, attesting account): leaf = keccak256(bytes.concat(keccak256(abi.encode(eventHash, attester)))),
///      with sorted-pair hashing, so OpenZeppelin MerkleProof and the npm merkle-tree package verify the proofs.
///      Attestations are EIP-712 signatures in the domain {name: "Waymark", version: "1", chainId,
///      verifyingContract: this contract} over `Attestation(bytes32 eventHash,bytes32 subject,uint64 eventTime)`.
interface IProvenanceRegistry is IERC5267 {
    /// @notice A registered product class.
    struct Product {
        uint64 orgId;
        uint48 registeredAt;
        bytes32 metadataHash;
    }

    /// @notice An anchored batch root; fits one storage slot.
    struct Anchor {
        uint64 orgId;
        uint64 blockNumber;
        uint48 timestamp;
        uint32 eventCount;
    }

    /// @notice `registry` is not a contract.
    error ProvenanceInvalidRegistry(address registry);
    /// @notice `account` is not an account of an Active organisation holding `role`.
    error ProvenanceMissingRole(address account, bytes32 role);
    /// @notice `account` is not an account of an Active organisation holding the ANCHORER role.
    error ProvenanceNotAnchorer(address account);
    /// @notice `gtin` is zero, longer than 14 digits, or its check digit is wrong.
    error ProvenanceInvalidGtin(uint256 gtin);
    /// @notice `gtin` is already registered, to organisation `orgId`.
    error ProvenanceProductExists(uint256 gtin, uint64 orgId);
    /// @notice The batch root is zero.
    error ProvenanceZeroRoot();
    /// @notice The batch with root `root` claims zero events.
    error ProvenanceEmptyBatch(bytes32 root);
    /// @notice Organisation `orgId` has already anchored `root`.
    error ProvenanceRootExists(bytes32 root, uint64 orgId);
    /// @notice `gtin` lies inside no GS1 Company Prefix assigned to the caller's organisation `orgId`.
    error ProvenanceOutsideCompanyPrefix(uint256 gtin, uint64 orgId);


    /// @notice Product class `gtin` was registered to organisation `orgId` by `registrant`.
    event ProductRegistered(
        uint256 indexed gtin,
        uint64 indexed orgId,
        address indexed registrant,
        bytes32 metadataHash
    );
    /// @notice `submitter` of organisation `orgId` anchored a batch of `eventCount` events under
    ///         `root`; `uri` says where the batch bundle can be fetched.
    event BatchAnchored(
        bytes32 indexed root,
        uint64 indexed orgId,
        address indexed submitter,
        uint32 eventCount,
        string uri
    );

    /// @notice The registry consulted for organisations and roles.
    function registry() external view returns (IConsortiumRegistry);

    /// @notice keccak256("Attestation(bytes32 eventHash,bytes32 subject,uint64 eventTime)").
    function ATTESTATION_TYPEHASH() external view returns (bytes32);

    /// @notice Registers product class `gtin` (a GTIN-14 read as a number) to the caller's organisation.
    ///         The GTIN must lie inside a GS1 Company Prefix that governance assigned to that
    ///         organisation (`IConsortiumRegistry.companyPrefixOrganisation`): write the GTIN as 14
    ///         digits with leading zeros, drop the first (indicator) digit, and the remaining 13
    ///         digits must start with the prefix. GTIN-13 and GTIN-12 (as "0" + its 12 digits) are
    ///         matched from their first digit; GTIN-14s of cases and pallets share their item's
    ///         prefix whatever the indicator digit; a GTIN-8 needs the 12-digit prefix "00000" +
    ///         its first seven digits.
    /// @dev Reverts with ProvenanceMissingRole (caller lacks MANUFACTURER), ProvenanceInvalidGtin
    ///      (zero, >= 10^14, or bad mod-10 check digit), ProvenanceOutsideCompanyPrefix or
    ///      ProvenanceProductExists.
    function registerProduct(uint256 gtin, bytes32 metadataHash) external;

    /// @notice Anchors, for the caller's organisation, the Merkle root of a batch of `eventCount`
    ///         attested events. The caller must be an account of an Active organisation holding
    ///         ANCHORER (its node's anchor account); the anchoring organisation is the caller's. Anchors are kept per (root, anchoring organisation): an organisation
    ///         that anchors another's root first gets an anchor of its own and takes nothing away,
    ///         since the rightful organisation can still anchor the root and verifiers count the
    ///         anchor by the organisation of the event's attester (`anchorOfOrganisation`).
    /// @dev One storage slot per (root, organisation) and no loops, so the cost per event falls with
    ///      the batch size. Reverts with ProvenanceNotAnchorer, ProvenanceZeroRoot,
    ///      ProvenanceEmptyBatch or ProvenanceRootExists (this organisation already anchored `root`).
    function anchorBatch(bytes32 root, uint32 eventCount, string calldata uri) external;

    /// @notice The product class `gtin`; orgId 0 when not registered.
    function productOf(uint256 gtin) external view returns (Product memory);

    /// @notice The first anchor of `root`, whichever organisation made it; orgId 0 when not anchored.
    ///         Verifiers of an event should ask `anchorOfOrganisation` for its attester's organisation.
    function anchorOf(bytes32 root) external view returns (Anchor memory);

    /// @notice The anchor of `root` by organisation `orgId`; orgId 0 when it has not anchored it.
    function anchorOfOrganisation(bytes32 root, uint64 orgId) external view returns (Anchor memory);

    /// @notice Whether `root` has been anchored (by any organisation).
    function isAnchored(bytes32 root) external view returns (bool);

    /// @notice The Merkle leaf of an event hash attested by `attester` (StandardMerkleTree layout).
    function leafHash(bytes32 eventHash, address attester) external pure returns (bytes32);

    /// @notice Whether `proof` shows that the leaf of (`eventHash`, `attester`) is in the tree with
    ///         root `root`, and `root` is anchored (by any organisation). Says nothing about roles,
    ///         signatures or which organisation's anchor counts (see `anchorOfOrganisation`).
    function verifyLeaf(
        bytes32 root,
        bytes32[] calldata proof,
        bytes32 eventHash,
        address attester
    ) external view returns (bool);

    /// @notice The EIP-712 digest an attester signs for an event.
    function hashAttestation(bytes32 eventHash, bytes32 subject, uint64 eventTime) external view returns (bytes32 digest);
}
