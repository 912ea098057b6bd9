// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title Roles
/// @notice The consortium's role ids and their bit positions in an organisation's role mask.
/// @dev A role id is keccak256 of its upper-case name. Bit positions are internal to the registry
///      and never leave the chain (events and views speak in role ids).
library Roles {
    bytes32 internal constant MANUFACTURER = keccak256("MANUFACTURER");
    bytes32 internal constant INSPECTOR = keccak256("INSPECTOR");
    bytes32 internal constant CARRIER = keccak256("CARRIER");
    bytes32 internal constant CUSTOMS = keccak256("CUSTOMS");
    bytes32 internal constant ORACLE = keccak256("ORACLE");
    bytes32 internal constant ARBITRATOR = keccak256("ARBITRATOR");
    bytes32 internal constant AUDITOR = keccak256("AUDITOR");
    bytes32 internal constant OPERATOR = keccak256("OPERATOR");
    /// @dev Anchors batch roots for its organisation's node; attests nothing.
    bytes32 internal constant ANCHORER = keccak256("ANCHORER");

    /// @dev Number of known roles; bit i of a mask stands for `byIndex(i)`.
    uint256 internal constant COUNT = 9;

    /// @dev The single-bit mask of `role`, or 0 when the role is unknown.
    function bit(bytes32 role) internal pure returns (uint16) {
        if (role == MANUFACTURER) return 1 << 0;
        if (role == INSPECTOR) return 1 << 1;
        if (role == CARRIER) return 1 << 2;
        if (role == CUSTOMS) return 1 << 3;
        if (role == ORACLE) return 1 << 4;
        if (role == ARBITRATOR) return 1 << 5;
        if (role == AUDITOR) return 1 << 6;
        if (role == OPERATOR) return 1 << 7;
        if (role == ANCHORER) return 1 << 8;
        return 0;
    }

    /// @dev The role id at bit position `index` (0 <= index < COUNT).
    function byIndex(uint256 index) internal pure returns (bytes32) {
        if (index == 0) return MANUFACTURER;
        if (index == 1) return INSPECTOR;
        if (index == 2) return CARRIER;
        if (index == 3) return CUSTOMS;
        if (index == 4) return ORACLE;
        if (index == 5) return ARBITRATOR;
        if (index == 6) return AUDITOR;
        if (index == 7) return OPERATOR;
        return ANCHORER;
    }
}
