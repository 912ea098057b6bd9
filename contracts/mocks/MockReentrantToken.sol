// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @title MockReentrantToken
/// @notice Tests only. Once armed, the next transfer calls `target` with `data` before moving
///         the tokens (as a token with transfer hooks could), and records how that call ended
///         instead of bubbling its failure. Anyone may mint or arm.
contract MockReentrantToken is ERC20 {
    address private _target;
    bytes private _data;

    /// @notice Whether the last callback made was accepted by its target.
    bool public lastCallSucceeded;
    /// @notice What the last callback returned or reverted with.
    bytes public lastCallResult;
    /// @notice Number of callbacks made.
    uint256 public callbacks;

    constructor() ERC20("Reentrant", "REE") {}

    /// @notice Creates `amount` tokens for `to`.
    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }

    /// @notice The next transfer calls `target` with `data` once.
    function arm(address target, bytes calldata data) external {
        _target = target;
        _data = data;
    }

    function _update(address from, address to, uint256 value) internal override {
        address target = _target;
        if (target != address(0) && from != address(0) && to != address(0)) {
            _target = address(0);
            (lastCallSucceeded, lastCallResult) = target.call(_data);
            callbacks += 1;
        }
        super._update(from, to, value);
    }
}
