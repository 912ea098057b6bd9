// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";

import {IConsortiumRegistry} from "./interfaces/IConsortiumRegistry.sol";
import {IProvenanceRegistry} from "./interfaces/IProvenanceRegistry.sol";
import {Roles} from "./libraries/Roles.sol";

/// @title ProvenanceRegistry
/// @notice Product classes and anchored batch roots of Waymark provenance events.
/// @dev Holds no funds and has no admin. Who may write is decided by the ConsortiumRegistry at
///      the time of the call.
contract ProvenanceRegistry is IProvenanceRegistry, EIP712 {
    /// @inheritdoc IProvenanceRegistry
    bytes32 public constant ATTESTATION_TYPEHASH =
        keccak256("Attestation(bytes32 eventHash,bytes32 subject,uint64 eventTime)");

    /// @dev GTIN-14 read as a number is below 10^14.
    uint256 private constant _GTIN_LIMIT = 1e14;

    IConsortiumRegistry private immutable _registry;

    mapping(uint256 gtin => Product) private _products;
    /// @dev `_anchors[root][0]` is the first anchor of a root (its orgId says by whom); anchors by
    ///      other organisations live under their own id. The usual case, one anchor per root, costs
    ///      one slot.
    mapping(bytes32 root => mapping(uint64 orgId => Anchor)) private _anchors;

    /// @param registry_ The consortium registry that says which accounts may register and anchor.
    constructor(IConsortiumRegistry registry_) EIP712("Waymark", "1") {
        if (address(registry_).code.length == 0) revert ProvenanceInvalidRegistry(address(registry_));
        _registry = registry_;
    }

    /// @inheritdoc IProvenanceRegistry
    function registerProduct(uint256 gtin, bytes32 metadataHash) external {
        bytes32[] memory roles = new bytes32[](1);
        roles[0] = Roles.MANUFACTURER;
        uint64 orgId = _registry.organisationWithAnyRole(msg.sender, roles);
        if (orgId == 0) revert ProvenanceMissingRole(msg.sender, Roles.MANUFACTURER);
        if (!_isValidGtin(gtin)) revert ProvenanceInvalidGtin(gtin);
        if (_registry.companyPrefixOrganisation(gtin) != orgId) revert ProvenanceOutsideCompanyPrefix(gtin, orgId);
        uint64 owner = _products[gtin].orgId;
        if (owner != 0) revert ProvenanceProductExists(gtin, owner);

        _products[gtin] = Product({orgId: orgId, registeredAt: uint48(block.timestamp), metadataHash: metadataHash});
        emit ProductRegistered(gtin, orgId, msg.sender, metadataHash);
    }

    /// @inheritdoc IProvenanceRegistry
    function anchorBatch(bytes32 root, uint32 eventCount, string calldata uri) external {
        bytes32[] memory roles = new bytes32[](1);
        roles[0] = Roles.ANCHORER;
        // The anchoring organisation is the caller's: a batch says which organisation stands behind it.
        uint64 orgId = _registry.organisationWithAnyRole(msg.sender, roles);
        if (orgId == 0) revert ProvenanceNotAnchorer(msg.sender);
        if (root == bytes32(0)) revert ProvenanceZeroRoot();
        if (eventCount == 0) revert ProvenanceEmptyBatch(root);
        uint64 firstBy = _anchors[root][0].orgId;
        // The first anchor of a root takes slot 0; another organisation's anchor its own slot.
        uint64 slot = firstBy == 0 ? 0 : orgId;
        if (firstBy == orgId || (slot != 0 && _anchors[root][slot].orgId != 0)) revert ProvenanceRootExists(root, orgId);

        _anchors[root][slot] = Anchor({
            orgId: orgId,
            blockNumber: uint64(block.number),
            timestamp: uint48(block.timestamp),
            eventCount: eventCount
        });
        emit BatchAnchored(root, orgId, msg.sender, eventCount, uri);
    }

    /// @inheritdoc IProvenanceRegistry
    function registry() external view returns (IConsortiumRegistry) {
        return _registry;
    }

    /// @inheritdoc IProvenanceRegistry
    function productOf(uint256 gtin) external view returns (Product memory) {
        return _products[gtin];
    }

    /// @inheritdoc IProvenanceRegistry
    function anchorOf(bytes32 root) external view returns (Anchor memory) {
        return _anchors[root][0];
    }

    /// @inheritdoc IProvenanceRegistry
    function anchorOfOrganisation(bytes32 root, uint64 orgId) external view returns (Anchor memory) {
        Anchor memory first = _anchors[root][0];
        if (orgId == 0 || first.orgId == orgId) return orgId == 0 ? Anchor(0, 0, 0, 0) : first;
        return _anchors[root][orgId];
    }

    /// @inheritdoc IProvenanceRegistry
    function isAnchored(bytes32 root) public view returns (bool) {
        return _anchors[root][0].orgId != 0;
    }

    /// @inheritdoc IProvenanceRegistry
    function leafHash(bytes32 eventHash, address attester) public pure returns (bytes32) {
        // Hashed twice, as StandardMerkleTree does, so that a leaf can never pass for an inner node.
        return keccak256(bytes.concat(keccak256(abi.encode(eventHash, attester))));
    }

    /// @inheritdoc IProvenanceRegistry
    function verifyLeaf(
        bytes32 root,
        bytes32[] calldata proof,
        bytes32 eventHash,
        address attester
    ) external view returns (bool) {
        return isAnchored(root) && MerkleProof.verifyCalldata(proof, root, leafHash(eventHash, attester));
    }

    /// @inheritdoc IProvenanceRegistry
    function hashAttestation(bytes32 eventHash, bytes32 subject, uint64 eventTime) external view returns (bytes32) {
        return _hashTypedDataV4(keccak256(abi.encode(ATTESTATION_TYPEHASH, eventHash, subject, eventTime)));
    }

    /// @dev GTIN mod-10 check: from the right, the digits left of the check digit weigh 3, 1, 3, ...
    ///      Shorter GTINs (8, 12, 13 digits) are the same number with leading zeros.
    function _isValidGtin(uint256 gtin) private pure returns (bool) {
        if (gtin == 0 || gtin >= _GTIN_LIMIT) return false;
        uint256 checkDigit = gtin % 10;
        uint256 rest = gtin / 10;
        uint256 sum;
        uint256 weight = 3;
        while (rest != 0) {
            sum += (rest % 10) * weight;
            rest /= 10;
            weight = 4 - weight;
        }
        return (10 - (sum % 10)) % 10 == checkDigit;
    }
}
