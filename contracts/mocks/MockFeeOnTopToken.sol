// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @title MockFeeOnTopToken
/// @notice Tests only. Charges the sender of every transfer between two accounts a fee on top:
///         the recipient gets the whole amount and `feeBps` of it more is burnt from the sender.
///         The fee can be switched on later (as an upgradeable token might), and the reported
///         decimals changed, to play a token that changes under a listing. Anyone may mint.
contract MockFeeOnTopToken is ERC20 {
    /// @notice Extra share of each transfer taken from the sender, in basis points.
    uint256 public feeBps;

    uint8 private _decimals = 6;

    constructor(uint256 feeBps_) ERC20("Fee On Top", "FOTOP") {
        feeBps = feeBps_;
    }

    /// @notice Creates `amount` tokens for `to`.
    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }

    /// @notice Changes the fee charged from now on.
    function setFeeBps(uint256 feeBps_) external {
        feeBps = feeBps_;
    }

    /// @notice Changes what `decimals()` reports.
    function setDecimals(uint8 decimals_) external {
        _decimals = decimals_;
    }

    function decimals() public view override returns (uint8) {
        return _decimals;
    }

    function _update(address from, address to, uint256 value) internal override {
        if (from != address(0) && to != address(0)) {
            super._update(from, address(0), (value * feeBps) / 10_000);
        }
        super._update(from, to, value);
    }
}
