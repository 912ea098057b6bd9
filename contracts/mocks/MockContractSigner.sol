// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {IERC1271} from "@openzeppelin/contracts/interfaces/IERC1271.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";

/// @title MockContractSigner
/// @notice Tests only. A contract account (e.g. an organisation's wallet) that accepts, through
///         ERC-1271, what its owner key signs, and makes calls for its owner (so that it can, like
///         any smart wallet, accept an offer to join an organisation). Its owner may make it
///         permissive: it then accepts any signature, as a badly written wallet would.
contract MockContractSigner is IERC1271 {
    /// @notice The key whose ECDSA signatures this account accepts.
    address public immutable owner;

    /// @notice Whether it accepts every signature.
    bool public permissive;

    /// @notice The caller is not the owner.
    error MockContractSignerNotOwner(address caller);

    constructor(address owner_) {
        owner = owner_;
    }

    /// @notice Makes the wallet accept every signature (or not).
    function setPermissive(bool permissive_) external {
        if (msg.sender != owner) revert MockContractSignerNotOwner(msg.sender);
        permissive = permissive_;
    }

    /// @notice Calls `target` with `data` as this wallet, bubbling up a revert.
    function execute(address target, bytes calldata data) external returns (bytes memory result) {
        if (msg.sender != owner) revert MockContractSignerNotOwner(msg.sender);
        bool ok;
        (ok, result) = target.call(data);
        if (!ok) {
            assembly ("memory-safe") {
                revert(add(result, 0x20), mload(result))
            }
        }
    }

    /// @inheritdoc IERC1271
    function isValidSignature(bytes32 hash, bytes calldata signature) external view returns (bytes4) {
        if (permissive) return this.isValidSignature.selector;
        (address recovered, ECDSA.RecoverError error, ) = ECDSA.tryRecoverCalldata(hash, signature);
        return error == ECDSA.RecoverError.NoError && recovered == owner ? this.isValidSignature.selector : bytes4(0);
    }
}
