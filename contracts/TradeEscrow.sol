// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IERC20Metadata} from "@openzeppelin/contracts/token/ERC20/extensions/IERC20Metadata.sol";
import {IERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/IERC20Permit.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {SignatureChecker} from "@openzeppelin/contracts/utils/cryptography/SignatureChecker.sol";
import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";
import {Pausable} from "@openzeppelin/contracts/utils/Pausable.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";

import {IConsortiumRegistry} from "./interfaces/IConsortiumRegistry.sol";
import {ITradeEscrow} from "./interfaces/ITradeEscrow.sol";
import {Roles} from "./libraries/Roles.sol";

/// @title TradeEscrow
/// @notice Milestone escrow for cross-border trade; see ITradeEscrow for the specification and
///         contracts/ESCROW.md for the state machine.
/// @dev Storage per order is one slot (`Order`); the terms travel in calldata and are checked
///      against the order id, which is their hash. Every external function that changes state is
///      nonReentrant, and credits are pulled with `withdraw`.
contract TradeEscrow is ITradeEscrow, EIP712, Pausable, ReentrancyGuardTransient {
    using SafeERC20 for IERC20;

    /// @dev Allowlist entry; one slot.
    struct TokenConfig {
        bool allowed;
        uint8 decimals;
        bytes3 currency;
        bool refused; // an outgoing transfer moved more than it sent: never allowed again
    }

    /// @dev A seller-side amount split into its three credits.
    struct Payout {
        uint256 toSeller;
        uint256 platformFee;
        uint256 carrierFee;
    }

    /// @dev What a k-of-n bundle must satisfy. `encoded` is the ABI encoding of the typed struct
    ///      with a placeholder in its last member, the deadline, filled in per signature. Signers
    ///      may not belong to `gainerOrg` or `otherGainerOrg` (zero: nobody), the organisations
    ///      fixed in the terms of the parties that gain from what is attested. When `customs`,
    ///      every signer must belong to one of the order's customs authorities.
    struct Bundle {
        bytes encoded;
        uint256 quorum;
        bytes32 role;
        uint256 orderId;
        uint64 gainerOrg;
        uint64 otherGainerOrg;
        bool customs;
    }

    /// @dev The FX rate an order was funded at; one slot.
    struct LockedRate {
        uint192 rate;
        uint64 timestamp;
    }

    bytes32 private constant _MILESTONE_TYPEHASH = keccak256(
        "MilestoneAttestation(uint256 orderId,uint8 milestone,uint256 duty,address dutyPayee,uint256 deadline)"
    );
    bytes32 private constant _CUSTOMS_RETURN_TYPEHASH =
        keccak256("CustomsReturn(uint256 orderId,uint8 milestone,uint256 deadline)");
    bytes32 private constant _CONFIRMATION_TYPEHASH = keccak256("DeliveryConfirmation(uint256 orderId,uint256 deadline)");
    bytes32 private constant _FX_RATE_TYPEHASH = keccak256(
        "FxRate(uint256 orderId,bytes3 base,bytes3 quote,uint256 rate,uint64 issuedAt,uint64 expiresAt,uint256 deadline)"
    );

    /// @dev The longest an FX quote may be valid (expiresAt - issuedAt), in seconds.
    uint256 private constant _FX_MAX_VALIDITY = 1 hours;

    uint256 private constant _BPS = 10_000;
    uint256 private constant _MIN_MILESTONES = 2;
    uint256 private constant _MAX_MILESTONES = 5;

    IConsortiumRegistry private immutable _registry;
    uint256 private immutable _disputeTimeout;
    uint256 private immutable _fxQuorum;

    mapping(uint256 orderId => Order) private _orders;
    mapping(uint256 orderId => LockedRate) private _rates;
    mapping(address token => TokenConfig) private _tokens;
    mapping(address token => mapping(address account => uint256 amount)) private _credits;
    /// @dev Customs duty paid out of each order so far: `maxDutyBps` caps the whole order's duty,
    ///      not each customs step's.
    mapping(uint256 orderId => uint256 duty) private _dutyPaid;

    /// @param registry_ The ConsortiumRegistry that answers role questions.
    /// @param disputeTimeout_ Seconds an arbitrator has to rule on a dispute.
    /// @param fxQuorum_ ORACLE organisations that must sign an FX quote.
    constructor(IConsortiumRegistry registry_, uint256 disputeTimeout_, uint256 fxQuorum_)
        EIP712("Waymark Escrow", "1")
    {
        if (address(registry_) == address(0)) revert EscrowInvalidAccount(address(0));
        if (disputeTimeout_ == 0 || fxQuorum_ == 0) revert EscrowInvalidConfiguration(disputeTimeout_, fxQuorum_);
        _registry = registry_;
        _disputeTimeout = disputeTimeout_;
        _fxQuorum = fxQuorum_;
    }

    // ------------------------------------------------------------------------------------------
    // Administration
    // ------------------------------------------------------------------------------------------

    /// @inheritdoc ITradeEscrow
    function allowToken(address token, bytes3 currency) external {
        _requireOperator();
        if (_tokens[token].refused) revert EscrowTokenRefused(token);
        uint8 decimals = IERC20Metadata(token).decimals();
        if (decimals > 18 || currency == bytes3(0)) revert EscrowUnsupportedToken(token, decimals, currency);
        _tokens[token] = TokenConfig({allowed: true, decimals: decimals, currency: currency, refused: false});
        emit TokenAllowed(token, currency, decimals);
    }

    /// @inheritdoc ITradeEscrow
    function disallowToken(address token) external {
        _requireOperator();
        if (!_tokens[token].allowed) revert EscrowTokenNotAllowed(token);
        _tokens[token].allowed = false;
        emit TokenDisallowed(token);
    }

    /// @inheritdoc ITradeEscrow
    function pause() external {
        _requireOperator();
        _pause();
    }

    /// @inheritdoc ITradeEscrow
    function unpause() external {
        _requireOperator();
        _unpause();
    }

    // ------------------------------------------------------------------------------------------
    // Orders
    // ------------------------------------------------------------------------------------------

    /// @inheritdoc ITradeEscrow
    function createOrder(OrderTerms calldata terms) external whenNotPaused nonReentrant returns (uint256 orderId) {
        orderId = _idOf(terms);
        if (msg.sender != terms.seller) revert EscrowNotSeller(orderId, msg.sender);
        _checkTerms(terms);
        if (_orders[orderId].state != State.None) revert EscrowOrderExists(orderId);

        _orders[orderId].state = State.Created;
        _emitOrderCreated(terms, orderId);
    }

    /// @inheritdoc ITradeEscrow
    function placeOrder(OrderTerms calldata terms, FxQuote calldata fx)
        external
        whenNotPaused
        nonReentrant
        returns (uint256 orderId)
    {
        orderId = _place(terms, fx);
    }

    /// @inheritdoc ITradeEscrow
    function placeOrderWithPermit(OrderTerms calldata terms, FxQuote calldata fx, PermitSignature calldata permit)
        external
        whenNotPaused
        nonReentrant
        returns (uint256 orderId)
    {
        _tryPermit(terms.token, permit);
        orderId = _place(terms, fx);
    }

    /// @inheritdoc ITradeEscrow
    function cancelOrder(OrderTerms calldata terms) external nonReentrant {
        (uint256 orderId, Order memory order) = _load(terms);
        if (msg.sender != terms.seller) revert EscrowNotSeller(orderId, msg.sender);
        if (order.state != State.Created && order.state != State.Funded) {
            revert EscrowInvalidState(orderId, order.state, State.Funded);
        }
        if (order.milestonesReached != 0) revert EscrowAlreadyShipped(orderId);

        uint256 refunded = order.remaining;
        order.state = State.Cancelled;
        order.remaining = 0;
        _orders[orderId] = order;
        _credit(terms.token, terms.buyer, refunded);
        emit OrderCancelled(orderId, terms.seller, terms.buyer, refunded);
    }

    /// @inheritdoc ITradeEscrow
    function fund(OrderTerms calldata terms, FxQuote calldata fx) external whenNotPaused nonReentrant {
        _fund(terms, fx);
    }

    /// @inheritdoc ITradeEscrow
    function fundWithPermit(OrderTerms calldata terms, FxQuote calldata fx, PermitSignature calldata permit)
        external
        whenNotPaused
        nonReentrant
    {
        _tryPermit(terms.token, permit);
        _fund(terms, fx);
    }

    /// @inheritdoc ITradeEscrow
    function attestMilestone(
        OrderTerms calldata terms,
        uint8 milestone,
        uint256 duty,
        address dutyPayee,
        Attestation[] calldata signatures
    ) external nonReentrant {
        (uint256 orderId, Order memory order) = _load(terms);
        // A dispute does not stop the goods: carriers and customs go on attesting what happens,
        // with the payouts the terms tie to it (the attested facts the timeout rule reads).
        if (order.state != State.Disputed) _requireState(orderId, order.state, State.Funded);
        _requireNext(orderId, order, milestone, terms.milestones.length);
        _verifyMilestone(terms, orderId, order.deposited, milestone, duty, dutyPayee, signatures);
        _reachMilestone(terms, orderId, order, milestone, duty, dutyPayee);
    }

    /// @inheritdoc ITradeEscrow
    function attestCustomsReturn(OrderTerms calldata terms, uint8 milestone, Attestation[] calldata signatures)
        external
        nonReentrant
    {
        (uint256 orderId, Order memory order) = _load(terms);
        // Goods customs sent back are refunded, disputed or not (a dispute before delivery).
        if (order.state != State.Disputed) _requireState(orderId, order.state, State.Funded);
        _requireNext(orderId, order, milestone, terms.milestones.length);
        Milestone calldata step = terms.milestones[milestone];
        if (step.kind != MilestoneKind.CustomsCleared) revert EscrowNotCustomsMilestone(orderId, milestone);
        Bundle memory bundle = Bundle({
            encoded: abi.encode(_CUSTOMS_RETURN_TYPEHASH, orderId, milestone, 0),
            quorum: step.quorum,
            role: Roles.CUSTOMS,
            orderId: orderId,
            gainerOrg: terms.buyerOrg,
            otherGainerOrg: terms.sellerOrg,
            customs: true
        });
        _checkBundle(bundle, signatures, signatures.length, terms.customsAuthorities);
        _refund(terms, orderId, order, RefundReason.CustomsReturned);
    }

    /// @inheritdoc ITradeEscrow
    function confirmDelivery(OrderTerms calldata terms) external nonReentrant {
        (uint256 orderId, Order memory order) = _load(terms);
        if (msg.sender != terms.buyer) revert EscrowNotBuyer(orderId, msg.sender);
        _release(terms, orderId, order, true);
    }

    /// @inheritdoc ITradeEscrow
    function confirmDeliveryBySig(OrderTerms calldata terms, uint256 deadline, bytes calldata signature)
        external
        nonReentrant
    {
        (uint256 orderId, Order memory order) = _load(terms);
        if (block.timestamp > deadline) revert EscrowSignatureExpired(terms.buyer, deadline);
        bytes32 digest = _hashTypedDataV4(keccak256(abi.encode(_CONFIRMATION_TYPEHASH, orderId, deadline)));
        if (!_isValidSignature(terms.buyer, digest, signature)) revert EscrowInvalidSignature(terms.buyer);
        _release(terms, orderId, order, true);
    }

    /// @inheritdoc ITradeEscrow
    function release(OrderTerms calldata terms) external nonReentrant {
        (uint256 orderId, Order memory order) = _load(terms);
        if (order.state == State.Delivered) {
            uint256 endsAt = uint256(order.since) + Math.max(terms.reviewWindow, terms.disputeWindow);
            if (block.timestamp <= endsAt) revert EscrowReviewWindowOpen(orderId, endsAt);
        }
        _release(terms, orderId, order, false);
    }

    /// @inheritdoc ITradeEscrow
    function refund(OrderTerms calldata terms) external nonReentrant {
        (uint256 orderId, Order memory order) = _load(terms);
        _requireState(orderId, order.state, State.Funded);
        bool shipped = order.milestonesReached != 0;
        uint256 deadline = shipped ? terms.deliverBy : terms.shipBy;
        if (block.timestamp <= deadline) revert EscrowDeadlineNotPassed(orderId, deadline);
        _refund(terms, orderId, order, shipped ? RefundReason.DeliverByPassed : RefundReason.ShipByPassed);
    }

    /// @inheritdoc ITradeEscrow
    function openDispute(OrderTerms calldata terms, bytes32 evidenceHash) external nonReentrant {
        (uint256 orderId, Order memory order) = _load(terms);
        if (msg.sender != terms.buyer && msg.sender != terms.seller) revert EscrowNotParty(orderId, msg.sender);
        if (order.state == State.Delivered) {
            uint256 closedAt = uint256(order.since) + terms.disputeWindow;
            if (block.timestamp > closedAt) revert EscrowDisputeWindowClosed(orderId, closedAt);
        } else {
            _requireState(orderId, order.state, State.Funded);
        }
        order.state = State.Disputed;
        order.since = uint40(block.timestamp);
        _orders[orderId] = order;
        emit DisputeOpened(orderId, msg.sender, evidenceHash);
    }

    /// @inheritdoc ITradeEscrow
    function resolveDispute(OrderTerms calldata terms, uint16 buyerShareBps, bytes32 rulingHash)
        external
        nonReentrant
    {
        (uint256 orderId, Order memory order) = _load(terms);
        uint64 orgId = _registry.organisationWithRole(msg.sender, Roles.ARBITRATOR);
        if (orgId == 0) revert EscrowMissingRole(msg.sender, Roles.ARBITRATOR);
        // Only the arbitration houses both parties agreed to (none a party's organisation, checked
        // at creation); not a party's own account that one of them linked since.
        if (!_isNamed(terms.arbitrators, orgId)) revert EscrowNotOrderArbitrator(orderId, msg.sender, orgId);
        if (msg.sender == terms.buyer || msg.sender == terms.seller) revert EscrowConflictOfInterest(orderId, msg.sender);
        _requireState(orderId, order.state, State.Disputed);
        uint256 expiresAt = uint256(order.since) + _disputeTimeout;
        if (block.timestamp > expiresAt) revert EscrowDisputeExpired(orderId, expiresAt);
        if (buyerShareBps > _BPS) revert EscrowInvalidSplit(buyerShareBps);
        _resolve(terms, orderId, order, buyerShareBps, msg.sender, rulingHash);
    }

    /// @inheritdoc ITradeEscrow
    function resolveExpiredDispute(OrderTerms calldata terms) external nonReentrant {
        (uint256 orderId, Order memory order) = _load(terms);
        _requireState(orderId, order.state, State.Disputed);
        uint256 expiresAt = uint256(order.since) + _disputeTimeout;
        if (block.timestamp <= expiresAt) revert EscrowDisputeNotExpired(orderId, expiresAt);
        // The attested facts decide, as they would have without the dispute: delivered goods are
        // paid for, goods overdue (not shipped by shipBy, not delivered by deliverBy) refunded,
        // and an order still within its deadlines goes on, Funded again (the dispute lapses).
        bool delivered = order.milestonesReached == terms.milestones.length;
        if (!delivered && block.timestamp <= (order.milestonesReached == 0 ? terms.shipBy : terms.deliverBy)) {
            order.state = State.Funded;
            order.since = 0;
            _orders[orderId] = order;
            emit DisputeLapsed(orderId);
            return;
        }
        _resolve(terms, orderId, order, delivered ? 0 : uint16(_BPS), address(0), bytes32(0));
    }

    /// @inheritdoc ITradeEscrow
    function withdraw(address token, address to) external nonReentrant returns (uint256 amount) {
        amount = _credits[token][msg.sender];
        _withdraw(token, to, amount);
    }

    /// @inheritdoc ITradeEscrow
    function withdrawAmount(address token, address to, uint256 amount)
        external
        nonReentrant
        returns (uint256 debited)
    {
        debited = _withdraw(token, to, amount);
    }

    // ------------------------------------------------------------------------------------------
    // Views
    // ------------------------------------------------------------------------------------------

    /// @inheritdoc ITradeEscrow
    function orderIdOf(OrderTerms calldata terms) external pure returns (uint256) {
        return _idOf(terms);
    }

    /// @inheritdoc ITradeEscrow
    function getOrder(uint256 orderId) external view returns (Order memory) {
        return _orders[orderId];
    }

    /// @inheritdoc ITradeEscrow
    function lockedRate(uint256 orderId) external view returns (uint256 rate, uint64 timestamp) {
        LockedRate memory locked = _rates[orderId];
        return (locked.rate, locked.timestamp);
    }

    /// @inheritdoc ITradeEscrow
    function dutyPaid(uint256 orderId) external view returns (uint256) {
        return _dutyPaid[orderId];
    }

    /// @inheritdoc ITradeEscrow
    function creditOf(address token, address account) external view returns (uint256) {
        return _credits[token][account];
    }

    /// @inheritdoc ITradeEscrow
    function tokenInfo(address token) external view returns (bool allowed, bytes3 currency, uint8 decimals) {
        TokenConfig memory config = _tokens[token];
        return (config.allowed, config.currency, config.decimals);
    }

    /// @inheritdoc ITradeEscrow
    function registry() external view returns (address) {
        return address(_registry);
    }

    /// @inheritdoc ITradeEscrow
    function disputeTimeout() external view returns (uint256) {
        return _disputeTimeout;
    }

    /// @inheritdoc ITradeEscrow
    function fxQuorum() external view returns (uint256) {
        return _fxQuorum;
    }

    /// @inheritdoc ITradeEscrow
    function typedDataDigest(bytes32 structHash) external view returns (bytes32) {
        return _hashTypedDataV4(structHash);
    }

    // ------------------------------------------------------------------------------------------
    // Internals: funding and settlement
    // ------------------------------------------------------------------------------------------

    function _fund(OrderTerms calldata terms, FxQuote calldata fx) private {
        (uint256 orderId, Order memory order) = _load(terms);
        _requireState(orderId, order.state, State.Created);
        if (msg.sender != terms.buyer) revert EscrowNotBuyer(orderId, msg.sender);
        if (block.timestamp > terms.shipBy) revert EscrowDeadlinePassed(orderId, terms.shipBy);
        TokenConfig memory config = _tokens[terms.token];
        if (!config.allowed) revert EscrowTokenNotAllowed(terms.token);
        _deposit(terms, orderId, order, config, fx);
    }

    /// @dev The buyer's order at the seller's terms, created and funded at once: the checks of
    ///      `createOrder` with the buyer as caller, then the deposit. No Created state is ever
    ///      written, which saves a transaction, a second pass over the terms and a slot rewrite.
    function _place(OrderTerms calldata terms, FxQuote calldata fx) private returns (uint256 orderId) {
        orderId = _idOf(terms);
        if (msg.sender != terms.buyer) revert EscrowNotBuyer(orderId, msg.sender);
        TokenConfig memory config = _checkTerms(terms);
        Order memory order = _orders[orderId];
        if (order.state != State.None) revert EscrowOrderExists(orderId);
        _emitOrderCreated(terms, orderId);
        _deposit(terms, orderId, order, config, fx);
    }

    /// @dev Takes the buyer's payment for an order that may be funded (checked by the caller):
    ///      locks the FX rate if the order is priced in another currency, marks it Funded, pulls
    ///      the tokens and records what arrived.
    function _deposit(
        OrderTerms calldata terms,
        uint256 orderId,
        Order memory order,
        TokenConfig memory config,
        FxQuote calldata fx
    ) private {
        uint256 due = terms.priceCurrency == bytes3(0) ? terms.amount : _lockRate(terms, orderId, config, fx);

        order.state = State.Funded;
        _orders[orderId] = order;
        // Balance delta: a token that takes a fee on transfer delivers less than `due`, and the
        // order holds what arrived. The reentrancy guard covers the token's callbacks.
        IERC20 token = IERC20(terms.token);
        uint256 before = token.balanceOf(address(this));
        token.safeTransferFrom(msg.sender, address(this), due);
        uint256 received = token.balanceOf(address(this)) - before;
        if (received == 0) revert EscrowNothingReceived(orderId);
        // More than was asked for is not a fee: a token that mints on transfer is refused.
        if (received > due) revert EscrowTransferMismatch(terms.token, due, received);
        order.deposited = uint96(received);
        order.remaining = uint96(received);
        _orders[orderId] = order;
        emit OrderFunded(orderId, terms.buyer, terms.seller, due, received);
    }

    /// @dev A permit someone else already used (front-running) reverts here; the allowance it set
    ///      is in place all the same, so funding goes on and fails only if the allowance is short.
    function _tryPermit(address token, PermitSignature calldata permit) private {
        try IERC20Permit(token).permit(
            msg.sender, address(this), permit.value, permit.deadline, permit.v, permit.r, permit.s
        ) {} catch {}
    }

    /// @dev Verifies the FX quote (currencies, validity window, signatures over this order id),
    ///      records it and returns the token amount due (rounded up), at the token decimals fixed
    ///      in the terms. The quote names the order, and an order is funded once, so a quote
    ///      cannot be replayed.
    function _lockRate(OrderTerms calldata terms, uint256 orderId, TokenConfig memory config, FxQuote calldata fx)
        private
        returns (uint256 due)
    {
        if (fx.base != terms.priceCurrency || fx.quote != config.currency) revert EscrowRateMismatch(fx.base, fx.quote);
        if (fx.rate == 0 || fx.rate > type(uint192).max) revert EscrowInvalidAmount(fx.rate);
        // Short-circuit order: expiresAt >= issuedAt before the subtraction.
        if (
            block.timestamp < fx.issuedAt || block.timestamp > fx.expiresAt
                || fx.expiresAt - fx.issuedAt > _FX_MAX_VALIDITY
        ) revert EscrowFxQuoteNotValid(fx.issuedAt, fx.expiresAt);
        Bundle memory bundle = Bundle({
            encoded: abi.encode(_FX_RATE_TYPEHASH, orderId, fx.base, fx.quote, fx.rate, fx.issuedAt, fx.expiresAt, 0),
            quorum: _fxQuorum,
            role: Roles.ORACLE,
            orderId: orderId,
            gainerOrg: terms.buyerOrg,
            otherGainerOrg: terms.sellerOrg,
            customs: false
        });
        _checkBundle(bundle, fx.signatures, fx.signatures.length, terms.customsAuthorities);
        // amount (18 decimals) * rate (18 decimals) -> token units with the order's decimals.
        due = Math.mulDiv(terms.amount, fx.rate, 10 ** (36 - uint256(terms.tokenDecimals)), Math.Rounding.Ceil);
        if (due == 0 || due > type(uint96).max) revert EscrowInvalidAmount(due);
        _rates[orderId] = LockedRate({rate: uint192(fx.rate), timestamp: fx.issuedAt});
        emit RateLocked(orderId, fx.base, fx.quote, fx.rate, fx.issuedAt);
    }

    /// @dev Checks of a milestone attestation: its deadline, where a duty may appear and to whom it
    ///      is paid, the duty cap, the bundle. A duty above the cap needs the buyer's own
    ///      MilestoneAttestation signature over the same message, as the last entry of `signatures`.
    function _verifyMilestone(
        OrderTerms calldata terms,
        uint256 orderId,
        uint256 deposited,
        uint8 milestone,
        uint256 duty,
        address dutyPayee,
        Attestation[] calldata signatures
    ) private view {
        Bundle memory bundle;
        {
            Milestone calldata step = terms.milestones[milestone];
            uint256 deadline = step.kind == MilestoneKind.Shipped ? terms.shipBy : terms.deliverBy;
            if (block.timestamp > deadline) revert EscrowDeadlinePassed(orderId, deadline);
            bool customs = step.kind == MilestoneKind.CustomsCleared;
            if (duty != 0 && !customs) revert EscrowNotCustomsMilestone(orderId, milestone);
            // The seller gains from every milestone; the buyer's organisation could gain from a duty.
            bundle = Bundle({
                encoded: abi.encode(_MILESTONE_TYPEHASH, orderId, milestone, duty, dutyPayee, 0),
                quorum: step.quorum,
                role: customs ? Roles.CUSTOMS : Roles.CARRIER,
                orderId: orderId,
                gainerOrg: terms.sellerOrg,
                otherGainerOrg: duty == 0 ? 0 : terms.buyerOrg,
                customs: customs
            });
        }
        uint256 count = signatures.length;
        if (duty != 0) {
            count = _checkDuty(terms, orderId, deposited, duty, dutyPayee, bundle.encoded, signatures);
        }
        _checkBundle(bundle, signatures, count, terms.customsAuthorities);
    }

    /// @dev The duty's payee, and the buyer's consent to a duty above what the cap leaves (the cap
    ///      less the duty paid at the order's earlier customs steps): the buyer's own signature over
    ///      the same message, last in `signatures`. Returns how many signatures before it form the
    ///      customs bundle.
    function _checkDuty(
        OrderTerms calldata terms,
        uint256 orderId,
        uint256 deposited,
        uint256 duty,
        address dutyPayee,
        bytes memory encoded,
        Attestation[] calldata signatures
    ) private view returns (uint256 count) {
        _checkDutyPayee(terms, dutyPayee);
        count = signatures.length;
        uint256 allowed;
        // Unchecked: deposited < 2^96 and maxDutyBps < 2^16; the subtraction only when cap > paid.
        unchecked {
            uint256 cap = (deposited * terms.maxDutyBps) / _BPS;
            uint256 paid = _dutyPaid[orderId];
            allowed = cap > paid ? cap - paid : 0;
        }
        if (duty <= allowed) return count;
        if (count == 0 || signatures[count - 1].signer != terms.buyer) revert EscrowDutyAboveCap(orderId, duty, allowed);
        unchecked {
            --count;
        }
        _checkSigned(encoded, signatures[count]);
    }

    /// @dev A duty is paid to an account of one of the order's customs authorities: never to the
    ///      escrow, a party, or an account of another organisation.
    function _checkDutyPayee(OrderTerms calldata terms, address payee) private view {
        if (payee == address(0) || payee == address(this) || payee == terms.buyer || payee == terms.seller) {
            revert EscrowInvalidDutyPayee(payee);
        }
        uint64 orgId = _registry.organisationOf(payee);
        if (!_isNamed(terms.customsAuthorities, orgId)) revert EscrowInvalidDutyPayee(payee);
    }

    /// @dev Whether `orgId` is one of the organisations a list of the terms names.
    function _isNamed(uint64[3] calldata named, uint64 orgId) private pure returns (bool) {
        return orgId != 0 && (orgId == named[0] || orgId == named[1] || orgId == named[2]);
    }

    /// @dev Effects of reaching `milestone`: duty first (capped at what remains), then the
    ///      milestone's share of what is left; the Delivered share waits for release. While
    ///      Disputed the same, but the Delivered milestone leaves the order Disputed and restarts
    ///      the dispute's timeout: the arbitrator gets a full timeout to judge the delivered goods,
    ///      as the buyer's review and dispute windows would have run from the delivery.
    function _reachMilestone(
        OrderTerms calldata terms,
        uint256 orderId,
        Order memory order,
        uint8 milestone,
        uint256 duty,
        address dutyPayee
    ) private {
        Milestone calldata step = terms.milestones[milestone];
        uint256 remaining = order.remaining;
        uint256 paidDuty = Math.min(duty, remaining);
        uint256 released = 0; // the Delivered share, and a zero share, release nothing now
        // Unchecked: paidDuty <= remaining; milestone < 5; remaining < 2^96 and shareBps < 2^16;
        // shareBps <= _sharesFrom(.., milestone) (it is one of its terms, and not zero here), so
        // released <= remaining.
        unchecked {
            remaining -= paidDuty;
            order.milestonesReached = milestone + 1;
            if (milestone + 1 == terms.milestones.length) {
                if (order.state != State.Disputed) order.state = State.Delivered;
                order.since = uint40(block.timestamp);
            } else if (step.shareBps != 0) {
                released = (remaining * step.shareBps) / _sharesFrom(terms.milestones, milestone);
                remaining -= released;
            }
        }
        order.remaining = uint96(remaining);
        _orders[orderId] = order;
        if (paidDuty != 0) _dutyPaid[orderId] += paidDuty;
        _credit(terms.token, dutyPayee, paidDuty);
        Payout memory payout = _creditSellerSide(terms, released);
        emit MilestoneReached(
            orderId,
            terms.seller,
            terms.buyer,
            milestone,
            step.kind,
            paidDuty,
            dutyPayee,
            payout.toSeller,
            payout.platformFee,
            payout.carrierFee
        );
    }

    function _release(OrderTerms calldata terms, uint256 orderId, Order memory order, bool confirmedByBuyer)
        private
    {
        _requireState(orderId, order.state, State.Delivered);
        uint256 amount = order.remaining;
        order.state = State.Released;
        order.remaining = 0;
        _orders[orderId] = order;
        Payout memory payout = _creditSellerSide(terms, amount);
        emit OrderReleased(
            orderId, terms.seller, terms.buyer, confirmedByBuyer, payout.toSeller, payout.platformFee, payout.carrierFee
        );
    }

    function _refund(OrderTerms calldata terms, uint256 orderId, Order memory order, RefundReason reason) private {
        uint256 amount = order.remaining;
        order.state = State.Refunded;
        order.remaining = 0;
        _orders[orderId] = order;
        _credit(terms.token, terms.buyer, amount);
        emit OrderRefunded(orderId, terms.buyer, terms.seller, reason, amount);
    }

    function _resolve(
        OrderTerms calldata terms,
        uint256 orderId,
        Order memory order,
        uint16 buyerShareBps,
        address arbitrator,
        bytes32 rulingHash
    ) private {
        uint256 toBuyer;
        uint256 sellerSide;
        // Unchecked: remaining < 2^96, buyerShareBps <= _BPS (checked by both callers), so toBuyer <= remaining.
        unchecked {
            toBuyer = (uint256(order.remaining) * buyerShareBps) / _BPS;
            sellerSide = order.remaining - toBuyer;
        }
        order.state = State.Resolved;
        order.remaining = 0;
        _orders[orderId] = order;
        _credit(terms.token, terms.buyer, toBuyer);
        Payout memory payout = _creditSellerSide(terms, sellerSide);
        emit DisputeResolved(
            orderId,
            arbitrator,
            buyerShareBps,
            rulingHash,
            toBuyer,
            payout.toSeller,
            payout.platformFee,
            payout.carrierFee
        );
    }

    /// @dev Splits a seller-side amount into the two fees and the seller's part, and credits them.
    function _creditSellerSide(OrderTerms calldata terms, uint256 amount) private returns (Payout memory payout) {
        if (amount == 0) return payout;
        // Unchecked: amount < 2^96 (an order's remaining), fees < 2^16 each and together at most
        // _BPS (checked at creation), so the two fees never exceed amount.
        unchecked {
            payout.platformFee = (amount * terms.platformFeeBps) / _BPS;
            payout.carrierFee = (amount * terms.carrierFeeBps) / _BPS;
            payout.toSeller = amount - payout.platformFee - payout.carrierFee;
        }
        _credit(terms.token, terms.seller, payout.toSeller);
        _credit(terms.token, terms.platform, payout.platformFee);
        _credit(terms.token, terms.carrier, payout.carrierFee);
    }

    /// @dev Sends `amount` of the caller's credit to `to` and debits what actually left the
    ///      escrow. A token whose transfer takes more than `amount` from the sender (a fee on top)
    ///      has the excess charged to the rest of the caller's credit, so every other credit stays
    ///      covered, and is refused from then on; one that takes less (or more than the caller
    ///      can cover) reverts.
    function _withdraw(address token, address to, uint256 amount) private returns (uint256 debited) {
        if (to == address(0)) revert EscrowInvalidAccount(address(0));
        uint256 credit = _credits[token][msg.sender];
        if (amount == 0 || credit == 0) revert EscrowNothingToWithdraw(msg.sender, token);
        if (amount > credit) revert EscrowInvalidAmount(amount);
        _credits[token][msg.sender] = credit - amount;
        emit Withdrawn(msg.sender, token, to, amount);
        IERC20 erc20 = IERC20(token);
        uint256 before = erc20.balanceOf(address(this));
        erc20.safeTransfer(to, amount);
        uint256 afterwards = erc20.balanceOf(address(this));
        debited = before > afterwards ? before - afterwards : 0;
        if (debited == amount) return debited;
        // Unchecked: amount <= credit; debited > amount here, so the excess is positive.
        if (debited < amount || debited > credit) revert EscrowTransferMismatch(token, amount, debited);
        unchecked {
            _credits[token][msg.sender] = credit - debited;
        }
        _tokens[token].allowed = false;
        _tokens[token].refused = true;
        emit TokenRefused(token, amount, debited);
    }

    function _credit(address token, address account, uint256 amount) private {
        if (amount != 0) _credits[token][account] += amount;
    }

    // ------------------------------------------------------------------------------------------
    // Internals: signatures and roles
    // ------------------------------------------------------------------------------------------

    /// @dev Checks the first `count` signatures, a k-of-n bundle, against `bundle` (and, for a
    ///      customs bundle, against the order's customs `authorities`).
    function _checkBundle(
        Bundle memory bundle,
        Attestation[] calldata signatures,
        uint256 count,
        uint64[3] calldata authorities
    ) private view {
        if (count < bundle.quorum) revert EscrowQuorumNotMet(count, bundle.quorum);
        // The parties' organisations come from the terms (fixed at creation; 0 for a party that
        // is not a member, or is not asked about); signers' organisations are never 0.
        uint64 gainerOrg = bundle.gainerOrg;
        uint64 otherGainerOrg = bundle.otherGainerOrg;
        // The registry's role query takes a list; one list serves every signer of the bundle.
        uint64 previousOrg = 0; // organisation ids start at 1
        for (uint256 i = 0; i < count; ++i) {
            Attestation calldata attestation = signatures[i];
            uint64 orgId = _checkSigner(bundle, attestation);
            if (orgId == gainerOrg || orgId == otherGainerOrg) {
                revert EscrowConflictOfInterest(bundle.orderId, attestation.signer);
            }
            if (bundle.customs && !_isNamed(authorities, orgId)) {
                revert EscrowNotCustomsAuthority(bundle.orderId, attestation.signer, orgId);
            }
            if (orgId <= previousOrg) revert EscrowSignersUnsorted(attestation.signer, orgId, previousOrg);
            previousOrg = orgId;
        }
    }

    /// @dev One signature of a bundle: not expired, valid for its signer, signer holding `role`.
    ///      Returns the signer's organisation.
    function _checkSigner(Bundle memory bundle, Attestation calldata attestation)
        private
        view
        returns (uint64 orgId)
    {
        address signer = attestation.signer;
        _checkSigned(bundle.encoded, attestation);
        // One registry call answers both questions: the signer's organisation, if it is Active
        // and holds the role.
        orgId = _registry.organisationWithRole(signer, bundle.role);
        if (orgId == 0) revert EscrowMissingRole(signer, bundle.role);
    }

    /// @dev One signature over `encoded` (its deadline filled in): not expired, valid for its signer.
    function _checkSigned(bytes memory encoded, Attestation calldata attestation) private view {
        address signer = attestation.signer;
        uint256 deadline = attestation.deadline;
        if (block.timestamp > deadline) revert EscrowSignatureExpired(signer, deadline);
        bytes32 digest = _hashTypedDataV4(_withDeadline(encoded, deadline));
        if (!_isValidSignature(signer, digest, attestation.signature)) revert EscrowInvalidSignature(signer);
    }

    /// @dev keccak256 of `encoded` with its last word set to `deadline`.
    function _withDeadline(bytes memory encoded, uint256 deadline) private pure returns (bytes32 structHash) {
        assembly ("memory-safe") {
            let length := mload(encoded)
            mstore(add(encoded, length), deadline)
            structHash := keccak256(add(encoded, 0x20), length)
        }
    }

    /// @dev ECDSA first (no code lookup for the common EOA case), then ERC-1271. A contract linked
    ///      to an organisation counts only where governance approved it (registry
    ///      `contractSignerKey`), and only with that key's own ECDSA signature, which the wallet must
    ///      also accept: one key never counts for two organisations, and a permissive wallet lets
    ///      nobody else sign. A contract linked to no organisation (a buyer's own wallet) counts for
    ///      no organisation and is asked through plain ERC-1271.
    function _isValidSignature(address signer, bytes32 digest, bytes calldata signature)
        private
        view
        returns (bool)
    {
        (address recovered, ECDSA.RecoverError error, ) = ECDSA.tryRecoverCalldata(digest, signature);
        if (error == ECDSA.RecoverError.NoError && recovered == signer) return true;
        if (_registry.organisationOf(signer) != 0) {
            address key = _registry.contractSignerKey(signer);
            if (key == address(0) || error != ECDSA.RecoverError.NoError || recovered != key) return false;
        }
        return SignatureChecker.isValidERC1271SignatureNowCalldata(signer, digest, signature);
    }

    function _requireOperator() private view {
        if (!_registry.hasRole(msg.sender, Roles.OPERATOR)) revert EscrowMissingRole(msg.sender, Roles.OPERATOR);
    }

    // ------------------------------------------------------------------------------------------
    // Internals: orders and terms
    // ------------------------------------------------------------------------------------------

    /// @dev keccak256(abi.encode(terms)), computed over the calldata bytes of `terms` as they
    ///      lie in the canonical layout (a 0x20 offset word, 26 head words whose last is the offset
    ///      0x340 of `milestones`, its length, three words per milestone) instead of re-encoding
    ///      field by field, which costs about 3,000 gas more per call. Every ABI library encodes
    ///      canonically; any other offset is refused, because the bytes hashed would then not be
    ///      the bytes the contract reads (a tail of the milestones could change under one id).
    function _idOf(OrderTerms calldata terms) private pure returns (uint256 id) {
        uint256 milestonesOffset;
        assembly ("memory-safe") {
            milestonesOffset := calldataload(add(terms, 0x320))
        }
        if (milestonesOffset != 0x340) revert EscrowNonCanonicalTerms(milestonesOffset);
        uint256 size = 0x360 + terms.milestones.length * 0x60;
        assembly ("memory-safe") {
            let ptr := mload(0x40)
            mstore(ptr, 0x20)
            calldatacopy(add(ptr, 0x20), terms, size)
            id := keccak256(ptr, add(size, 0x20))
        }
    }

    /// @dev Emits `OrderCreated` with the terms' calldata bytes as its data: they are
    ///      abi.encode(terms) already (`_idOf` refused any other layout), so the event carries
    ///      exactly the bytes the id was hashed from, without re-encoding them.
    function _emitOrderCreated(OrderTerms calldata terms, uint256 orderId) private {
        uint256 size = 0x360 + terms.milestones.length * 0x60;
        bytes32 topic = OrderCreated.selector;
        address seller = terms.seller;
        address buyer = terms.buyer;
        assembly ("memory-safe") {
            let ptr := mload(0x40)
            mstore(ptr, 0x20)
            calldatacopy(add(ptr, 0x20), terms, size)
            log4(ptr, add(size, 0x20), topic, orderId, seller, buyer)
        }
    }

    function _load(OrderTerms calldata terms) private view returns (uint256 orderId, Order memory order) {
        orderId = _idOf(terms);
        order = _orders[orderId];
        if (order.state == State.None) revert EscrowUnknownOrder(orderId);
    }

    function _requireState(uint256 orderId, State current, State expected) private pure {
        if (current != expected) revert EscrowInvalidState(orderId, current, expected);
    }

    function _requireNext(uint256 orderId, Order memory order, uint8 milestone, uint256 count) private pure {
        uint8 next = order.milestonesReached;
        if (milestone < next) revert EscrowMilestoneAlreadyReached(orderId, milestone);
        if (milestone != next || milestone >= count) revert EscrowMilestoneNotNext(orderId, milestone, next);
    }

    /// @dev Sum of the shares of milestone `from` and all after it.
    function _sharesFrom(Milestone[] calldata milestones, uint256 from) private pure returns (uint256 total) {
        for (uint256 i = from; i < milestones.length; ++i) {
            total += milestones[i].shareBps;
        }
    }

    /// @dev Everything `createOrder` and `placeOrder` check about the terms themselves (not the
    ///      caller, not whether the order exists). Returns the token's allowlist entry.
    function _checkTerms(OrderTerms calldata terms) private view returns (TokenConfig memory config) {
        // createOrder's caller is the seller, so only a placed order can name a zero seller.
        if (terms.seller == address(0)) revert EscrowInvalidAccount(address(0));
        if (terms.buyer == address(0) || terms.buyer == terms.seller) revert EscrowInvalidAccount(terms.buyer);
        config = _tokens[terms.token];
        if (!config.allowed) revert EscrowTokenNotAllowed(terms.token);
        if (terms.tokenDecimals != config.decimals) {
            revert EscrowTokenDecimalsMismatch(terms.token, terms.tokenDecimals, config.decimals);
        }
        if (terms.amount == 0) revert EscrowInvalidAmount(0);
        if (terms.priceCurrency != bytes3(0) && terms.priceCurrency == config.currency) {
            revert EscrowInvalidPriceCurrency(terms.priceCurrency);
        }
        _checkFees(terms);
        if (terms.shipBy <= block.timestamp || terms.deliverBy <= terms.shipBy) {
            revert EscrowInvalidDeadlines(terms.shipBy, terms.deliverBy);
        }
        _checkCleanWords(terms);
        uint256 authorities = _checkAuthorities(terms);
        _checkSchedule(terms.milestones, authorities);
        _checkParties(terms);
    }

    /// @dev The terms' words that no other check reads (`reviewWindow`, `disputeWindow`, `salt`)
    ///      hold nothing beyond their types, as every ABI encoder writes them. The order id and
    ///      `OrderCreated` carry the words as sent, and `release` and `openDispute`, whose reads
    ///      validate them, would revert on such a word only after delivery, leaving the order to
    ///      the buyer's confirmation alone.
    function _checkCleanWords(OrderTerms calldata terms) private pure {
        uint256 review;
        uint256 dispute;
        uint256 salt;
        assembly ("memory-safe") {
            review := calldataload(add(terms, 0x1e0)) // head word 15
            dispute := calldataload(add(terms, 0x200)) // 16
            salt := calldataload(add(terms, 0x220)) // 17
        }
        if (review > type(uint32).max) revert EscrowNonCanonicalWord(15, review);
        if (dispute > type(uint32).max) revert EscrowNonCanonicalWord(16, dispute);
        if (salt > type(uint64).max) revert EscrowNonCanonicalWord(17, salt);
    }

    /// @dev The parties' organisations named in the terms are their organisations now: the
    ///      seller's an Active member holding a consortium role, the buyer's 0 unless it is linked.
    ///      Every later conflict-of-interest check uses these, whatever happens to links afterwards.
    function _checkParties(OrderTerms calldata terms) private view {
        // One registry call: the seller's organisation if it is Active and holds any role.
        uint64 actual = _registry.organisationWithAnyRole(terms.seller);
        if (actual == 0 || actual != terms.sellerOrg) {
            revert EscrowPartyOrganisationMismatch(terms.seller, terms.sellerOrg, actual);
        }
        uint64 buyerOrg = _registry.organisationOf(terms.buyer);
        if (buyerOrg != terms.buyerOrg) revert EscrowPartyOrganisationMismatch(terms.buyer, terms.buyerOrg, buyerOrg);
    }

    /// @dev The customs authorities and the arbitrators, each list as `_namedCount` wants it.
    ///      Returns how many customs authorities there are. The duty cap is a share.
    function _checkAuthorities(OrderTerms calldata terms) private pure returns (uint256 count) {
        if (terms.maxDutyBps > _BPS) revert EscrowInvalidDutyCap(terms.maxDutyBps);
        uint256 bad;
        (count, bad) = _namedCount(terms.customsAuthorities, terms);
        if (bad < 3) revert EscrowInvalidCustomsAuthority(bad, terms.customsAuthorities[bad]);
        (, bad) = _namedCount(terms.arbitrators, terms);
        if (bad < 3) revert EscrowInvalidArbitrator(bad, terms.arbitrators[bad]);
    }

    /// @dev A list of organisations in the terms: non-zero ids first, strictly increasing, then
    ///      zeros; none of them a party's organisation. Returns how many it names, and the index
    ///      of the first that breaks the rule (3 if none does).
    function _namedCount(uint64[3] calldata named, OrderTerms calldata terms) private pure returns (uint256 count, uint256 bad) {
        uint64 previous = 0;
        for (uint256 i = 0; i < 3; ++i) {
            uint64 orgId = named[i];
            if (orgId == 0) {
                previous = type(uint64).max; // only zeros may follow
                continue;
            }
            if (orgId <= previous || orgId == terms.sellerOrg || orgId == terms.buyerOrg) return (count, i);
            previous = orgId;
            ++count;
        }
        return (count, 3);
    }

    function _checkFees(OrderTerms calldata terms) private pure {
        if (uint256(terms.platformFeeBps) + terms.carrierFeeBps > _BPS) {
            revert EscrowInvalidFees(terms.platformFeeBps, terms.carrierFeeBps);
        }
        if (terms.platformFeeBps != 0 && terms.platform == address(0)) revert EscrowInvalidAccount(address(0));
        if (terms.carrierFeeBps != 0 && terms.carrier == address(0)) revert EscrowInvalidAccount(address(0));
    }

    /// @dev Shipped, then 0 to 3 CustomsCleared, then Delivered; quorums of at least 1 (and, for
    ///      customs steps, at most the number of customs authorities); shares summing to 10,000.
    ///      The schedule is at most five steps, so the loop is bounded.
    function _checkSchedule(Milestone[] calldata milestones, uint256 authorities) private pure {
        uint256 count = milestones.length;
        if (count < _MIN_MILESTONES || count > _MAX_MILESTONES) revert EscrowInvalidMilestoneCount(count);
        uint256 total = 0;
        for (uint256 i = 0; i < count; ++i) {
            Milestone calldata step = milestones[i];
            MilestoneKind expected = i == 0
                ? MilestoneKind.Shipped
                : (i == count - 1 ? MilestoneKind.Delivered : MilestoneKind.CustomsCleared);
            if (step.kind != expected) revert EscrowInvalidMilestoneKind(i, step.kind);
            if (step.quorum == 0 || (expected == MilestoneKind.CustomsCleared && step.quorum > authorities)) {
                revert EscrowInvalidQuorum(i);
            }
            total += step.shareBps;
        }
        if (total != _BPS) revert EscrowInvalidShares(total);
    }
}
