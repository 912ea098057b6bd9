// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @title MockReturnsFalseToken
/// @notice Tests only. While `failing` is set, `transfer` and `transferFrom` move nothing and
///         return false instead of reverting (as some old tokens do). Anyone may mint or switch.
contract MockReturnsFalseToken is ERC20 {
    /// @notice Whether transfers currently fail by returning false.
    bool public failing;

    constructor() ERC20("Returns False", "RFT") {}

    /// @notice Creates `amount` tokens for `to`.
    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }

    /// @notice Turns the failure mode on or off.
    function setFailing(bool failing_) external {
        failing = failing_;
    }

    function transfer(address to, uint256 value) public override returns (bool) {
        if (failing) return false;
        return super.transfer(to, value);
    }

    function transferFrom(address from, address to, uint256 value) public override returns (bool) {
        if (failing) return false;
        return super.transferFrom(from, to, value);
    }
}
