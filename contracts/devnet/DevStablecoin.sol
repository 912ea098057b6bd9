// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {ERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Permit.sol";

/// @title DevStablecoin
/// @notice A stablecoin stand-in for the devnet and tests only (never deployed elsewhere): an
///         ERC-20 with EIP-2612 permit and configurable decimals, minted only by the minter
///         fixed at construction. The devnet deploys two: 6 decimals (like USDC) and 18.
contract DevStablecoin is ERC20, ERC20Permit {
    /// @notice `caller` is not the minter.
    error DevStablecoinNotMinter(address caller);

    /// @notice The only account that may mint.
    address public immutable minter;

    uint8 private immutable _decimals;

    /// @param name_ Token name; also the EIP-712 domain name of its permits (version "1").
    /// @param symbol_ Token symbol.
    /// @param decimals_ Decimals (6 and 18 on the devnet).
    /// @param minter_ The account allowed to mint.
    constructor(string memory name_, string memory symbol_, uint8 decimals_, address minter_)
        ERC20(name_, symbol_)
        ERC20Permit(name_)
    {
        _decimals = decimals_;
        minter = minter_;
    }

    /// @notice Creates `amount` tokens for `to`. Reverts with DevStablecoinNotMinter.
    function mint(address to, uint256 amount) external {
        if (msg.sender != minter) revert DevStablecoinNotMinter(msg.sender);
        _mint(to, amount);
    }

    /// @inheritdoc ERC20
    function decimals() public view override returns (uint8) {
        return _decimals;
    }
}
