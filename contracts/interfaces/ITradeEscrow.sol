// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title ITradeEscrow
/// @notice Escrow for one cross-border trade per order: the buyer's stablecoins are locked and
///         released by attested facts (shipped, cleared by customs, delivered, accepted), with
///         refunds, customs duty and disputes handled by the same contract.
///
/// @dev ## Orders are identified by their terms
///      An order's terms (`OrderTerms`) are not kept in storage: the order id is
///      `uint256(keccak256(abi.encode(terms)))` and every call about an order passes the terms
///      again (ABI-encoded canonically, as every ABI library does), which the contract checks
///      against the id it hashes them to. Storage holds one
///      32-byte slot per order (`Order`). The terms are published in full in `OrderCreated`, so a
///      client or relayer always has them. `salt` lets a seller offer the same terms twice.
///
///      ## Who does what
///      - An order comes into being in one of two ways. The seller offers it (`createOrder`, an
///        offer naming its buyer) and the buyer accepts by funding it before `shipBy`; or the
///        buyer places it at the seller's listed terms and funds it in the same transaction
///        (`placeOrder`), and the seller accepts by shipping. Either way the seller may cancel
///        the order, refunding any deposit, until the goods ship.
///      - Milestones are attested off chain by k distinct consortium organisations holding the
///        milestone's role (CARRIER for Shipped and Delivered, CUSTOMS for CustomsCleared), each
///        signing EIP-712 typed data; anyone (a relayer) submits the bundle.
///      - The buyer confirms receipt (directly, or by a signature someone else relays); otherwise
///        anyone releases the funds once the review and dispute windows after delivery have passed.
///      - The buyer or the seller may open a dispute; an ARBITRATOR rules a split; if nobody rules
///        within `disputeTimeout()` seconds, the timeout rule decides (see `resolveExpiredDispute`).
///      - OPERATOR accounts allowlist tokens and may pause new orders and funding. Nobody can
///        move funds that belong to an order or a party.
///
///      ## Money
///      - `deposited` is what actually arrived (balance-delta accounting), `remaining` what is
///        still held for the order. Every payout is credited to an account and withdrawn with
///        `withdraw` (pull payments).
///      - An intermediate milestone i releases `remaining * share_i / (share_i + ... + share_last)`
///        to the seller side; the final (Delivered) share is held until release, which pays all
///        that remains. Customs duty is taken from `remaining` before the customs share, so a duty
///        reduces the later shares in proportion (the buyer's deposit is the all-in price).
///      - Every amount released to the seller side pays the platform fee and the carrier fee
///        (rounded down, in basis points of that amount) and the rest to the seller. Refunds to
///        the buyer carry no fee.
///      - Conservation: deposited = seller + platform + carrier + customs + buyer credits of the
///        order, exactly; each transition credits each party at most once.
///
///      ## Signatures
///      Domain: name "Waymark Escrow", version "1", the chain id, verifyingContract = this.
///      Types (each signer chooses its own `deadline`):
///        MilestoneAttestation(uint256 orderId,uint8 milestone,uint256 duty,address dutyPayee,uint256 deadline)
///        CustomsReturn(uint256 orderId,uint8 milestone,uint256 deadline)
///        DeliveryConfirmation(uint256 orderId,uint256 deadline)
///        FxRate(uint256 orderId,bytes3 base,bytes3 quote,uint256 rate,uint64 issuedAt,uint64 expiresAt,uint256 deadline)
///      A bundle lists each signature with its signer; EOAs sign with ECDSA, contract accounts
///      answer ERC-1271. Signers must hold the role now (in an Active organisation), must have
///      no conflict of interest, and must come sorted by strictly increasing organisation id
///      (so each organisation counts once). A milestone is reached once and signatures name the
///      order and the milestone, so a signature cannot be replayed.
///
///      Conflicts of interest: a signer may not belong to the organisation of a party that gains
///      from what it attests: the seller's, for milestones; also the buyer's, when a milestone
///      carries a duty (paid to an account the signers name); the buyer's and the seller's, for
///      customs returns and FX quotes. Parties that are not members have no organisation. The
///      parties' organisations are those named in the terms (`sellerOrg`, `buyerOrg`), checked
///      against the registry when the order is created and never looked up again: unlinking an
///      account afterwards neither hides nor creates a conflict. Customs milestones and returns
///      are attested only by the order's `customsAuthorities`, and its disputes ruled only by
///      its `arbitrators`.
interface ITradeEscrow {
    // ------------------------------------------------------------------------------------------
    // Types
    // ------------------------------------------------------------------------------------------

    /// @notice Life cycle of an order. Terminal states: Released, Refunded, Cancelled, Resolved.
    /// @dev Created -> Funded -> Delivered -> Released is the happy path; an order the buyer
    ///      places (`placeOrder`) starts at Funded. While Funded, `Order.milestonesReached`
    ///      tells how far the goods got (0: not shipped yet).
    enum State {
        None, //      no such order
        Created, //   offered by the seller, not funded
        Funded, //    buyer's money held; milestones before Delivered being reached
        Delivered, // every milestone reached; review window running
        Disputed, //  frozen until an arbitrator rules or the dispute times out
        Released, //  all that remained went to the seller side
        Refunded, //  all that remained went back to the buyer (deadline missed, customs return)
        Cancelled, // withdrawn by the seller before shipping (deposit, if any, refunded)
        Resolved //   dispute decided by an arbitrator or by the timeout rule
    }

    /// @notice What a milestone attests. A schedule is Shipped, then 0 to 3 CustomsCleared
    ///         (export, transit, import clearances), then Delivered.
    enum MilestoneKind {
        Shipped,
        CustomsCleared,
        Delivered
    }

    /// @notice Why remaining funds went back to the buyer.
    enum RefundReason {
        ShipByPassed,
        DeliverByPassed,
        CustomsReturned
    }

    /// @notice One step of the schedule.
    /// @param kind Shipped and Delivered are attested by CARRIER organisations, CustomsCleared by CUSTOMS ones.
    /// @param shareBps Share of the order released when reached, in basis points (all shares sum to 10,000).
    /// @param quorum Number of distinct organisations that must attest (at least 1).
    struct Milestone {
        MilestoneKind kind;
        uint16 shareBps;
        uint8 quorum;
    }

    /// @notice Everything agreed for one trade; hashed into the order id.
    /// @param seller Creates the order and receives the proceeds; a linked account of an Active
    ///        organisation holding at least one consortium role when the order is created.
    /// @param sellerOrg The seller's organisation when the order is created (checked then). Every
    ///        later conflict-of-interest check uses it, whatever happens to account links afterwards.
    /// @param buyer Funds the order and receives refunds.
    /// @param buyerOrg The buyer's organisation when the order is created, 0 if the buyer is not
    ///        a member (checked then); used like `sellerOrg`.
    /// @param token Allowlisted ERC-20 the order is paid in.
    /// @param tokenDecimals The token's decimals as listed when the order is created (checked
    ///        then); an FX conversion uses these, so relisting the token cannot change what the order owes.
    /// @param amount In token units when `priceCurrency` is zero; otherwise the price in
    ///        `priceCurrency` as a fixed-point number with 18 decimals, converted at funding with an
    ///        attested FX rate.
    /// @param priceCurrency ISO 4217 code of the price (e.g. "EUR"), or zero when priced in the token.
    /// @param platform Receives `platformFeeBps` of every seller-side release.
    /// @param carrier Receives `carrierFeeBps` of every seller-side release.
    /// @param shipmentRef The lot or shipment the order covers (e.g. hash of an SSCC or lot URI).
    /// @param shipBy Unix time by which Shipped must be attested (and funding must happen).
    /// @param deliverBy Unix time by which the remaining milestones must be attested.
    /// @param reviewWindow Seconds after delivery before anyone may release without the buyer.
    /// @param disputeWindow Seconds after delivery during which a dispute may still be opened.
    /// @param salt Distinguishes otherwise identical orders.
    /// @param maxDutyBps The most customs duty buyer and seller accept without further consent, in
    ///        basis points of the amount deposited; a larger duty needs the buyer's signature.
    /// @param customsAuthorities The CUSTOMS organisations that may clear (or return) the order at
    ///        its CustomsCleared milestones and receive its duty: non-zero ids first, strictly
    ///        increasing, then zeros; none a party's organisation. A customs milestone's quorum is
    ///        at most their number.
    /// @param arbitrators The ARBITRATOR organisations whose accounts may rule on the order's
    ///        disputes, agreed by buyer and seller: non-zero ids first, strictly increasing, then
    ///        zeros; none a party's organisation. All zero: no arbitrator; a dispute is then
    ///        decided at its timeout by the attested facts (`resolveExpiredDispute`).
    /// @param milestones The schedule, 2 to 5 steps.
    struct OrderTerms {
        address seller;
        uint64 sellerOrg;
        address buyer;
        uint64 buyerOrg;
        address token;
        uint8 tokenDecimals;
        uint96 amount;
        bytes3 priceCurrency;
        address platform;
        uint16 platformFeeBps;
        address carrier;
        uint16 carrierFeeBps;
        bytes32 shipmentRef;
        uint40 shipBy;
        uint40 deliverBy;
        uint32 reviewWindow;
        uint32 disputeWindow;
        uint64 salt;
        uint16 maxDutyBps;
        uint64[3] customsAuthorities;
        uint64[3] arbitrators;
        Milestone[] milestones;
    }

    /// @notice The mutable part of an order (one storage slot).
    /// @param state Where the order is in its life cycle.
    /// @param milestonesReached Number of milestones reached so far (they are reached in order).
    /// @param since Delivery time while Delivered; dispute opening time while Disputed (and after).
    /// @param deposited Token units that actually arrived at funding.
    /// @param remaining Token units still held for the order.
    struct Order {
        State state;
        uint8 milestonesReached;
        uint40 since;
        uint96 deposited;
        uint96 remaining;
    }

    /// @notice One signature of a k-of-n bundle.
    /// @param signer The account that signed (an EOA, or a contract answering ERC-1271).
    /// @param deadline Last unix time the signature may be used; part of the signed message.
    /// @param signature 65-byte ECDSA signature, or whatever the signer contract accepts.
    struct Attestation {
        address signer;
        uint256 deadline;
        bytes signature;
    }

    /// @notice An attested FX rate for one order: `rate` units of `quote` per unit of `base`,
    ///         with 18 decimals. The oracles sign it for the order id, so it cannot serve another
    ///         order, and an order is funded once, so it cannot be replayed.
    /// @param issuedAt When the rate was observed (recorded with the order); not in the future.
    /// @param expiresAt Last unix time the quote may be used; at most one hour (3,600 s) after `issuedAt`.
    /// @param signatures ORACLE signatures, at least `fxQuorum()` of them.
    struct FxQuote {
        bytes3 base;
        bytes3 quote;
        uint256 rate;
        uint64 issuedAt;
        uint64 expiresAt;
        Attestation[] signatures;
    }

    /// @notice An EIP-2612 permit from the buyer to this contract.
    struct PermitSignature {
        uint256 value;
        uint256 deadline;
        uint8 v;
        bytes32 r;
        bytes32 s;
    }

    // ------------------------------------------------------------------------------------------
    // Errors
    // ------------------------------------------------------------------------------------------

    /// @notice The constructor got a zero dispute timeout or a zero FX quorum.
    error EscrowInvalidConfiguration(uint256 disputeTimeout, uint256 fxQuorum);
    /// @notice No order has id `orderId` (the terms passed do not hash to a created order).
    error EscrowUnknownOrder(uint256 orderId);
    /// @notice An order with these terms already exists.
    error EscrowOrderExists(uint256 orderId);
    /// @notice The terms are ABI-encoded with the milestones array at `milestonesOffset`
    ///         instead of the canonical 0x340; order ids are hashed over the canonical layout only.
    error EscrowNonCanonicalTerms(uint256 milestonesOffset);
    /// @notice Head word `index` of the terms, `word`, has bits set beyond its field's type.
    error EscrowNonCanonicalWord(uint256 index, uint256 word);
    /// @notice Order `orderId` is in state `current`; the call needs `expected`.
    error EscrowInvalidState(uint256 orderId, State current, State expected);
    /// @notice Only the order's seller may do this.
    error EscrowNotSeller(uint256 orderId, address caller);
    /// @notice Only the order's buyer may do this.
    error EscrowNotBuyer(uint256 orderId, address caller);
    /// @notice Only the order's buyer or seller may do this.
    error EscrowNotParty(uint256 orderId, address caller);
    /// @notice `account` does not hold `role` in an Active organisation.
    error EscrowMissingRole(address account, bytes32 role);
    /// @notice `account` belongs to the organisation of a party that gains from what it does
    ///         (see "Conflicts of interest"; for arbitrators: the buyer's or the seller's).
    error EscrowConflictOfInterest(uint256 orderId, address account);
    /// @notice `account` cannot be used here: zero, or the buyer equal to the seller.
    error EscrowInvalidAccount(address account);
    /// @notice `token` is not on the allowlist.
    error EscrowTokenNotAllowed(address token);
    /// @notice `token` has more than 18 decimals, or `currency` is empty.
    error EscrowUnsupportedToken(address token, uint8 decimals, bytes3 currency);
    /// @notice `amount` is zero or does not fit in 96 bits.
    error EscrowInvalidAmount(uint256 amount);
    /// @notice The two fees together exceed 10,000 basis points.
    error EscrowInvalidFees(uint16 platformFeeBps, uint16 carrierFeeBps);
    /// @notice `shipBy` is not in the future, or `deliverBy` is not after it.
    error EscrowInvalidDeadlines(uint40 shipBy, uint40 deliverBy);
    /// @notice The schedule has `count` milestones; 2 to 5 are allowed.
    error EscrowInvalidMilestoneCount(uint256 count);
    /// @notice Milestone `index` has a kind that cannot stand at that place in the schedule.
    error EscrowInvalidMilestoneKind(uint256 index, MilestoneKind kind);
    /// @notice Milestone `index` has a zero quorum.
    error EscrowInvalidQuorum(uint256 index);
    /// @notice The milestone shares sum to `totalBps` instead of 10,000.
    error EscrowInvalidShares(uint256 totalBps);
    /// @notice The price currency equals the token's own currency (price it in the token instead).
    error EscrowInvalidPriceCurrency(bytes3 currency);
    /// @notice Too late: `deadline` passed (funding or a milestone after its deadline).
    error EscrowDeadlinePassed(uint256 orderId, uint256 deadline);
    /// @notice Too early: nothing is overdue until `deadline` has passed.
    error EscrowDeadlineNotPassed(uint256 orderId, uint256 deadline);
    /// @notice The seller can no longer cancel: the goods have shipped.
    error EscrowAlreadyShipped(uint256 orderId);
    /// @notice Funding moved no tokens to the escrow.
    error EscrowNothingReceived(uint256 orderId);
    /// @notice The FX quote is for `base`/`quote`, not for the order's currencies.
    error EscrowRateMismatch(bytes3 base, bytes3 quote);
    /// @notice Milestone `milestone` was already reached.
    error EscrowMilestoneAlreadyReached(uint256 orderId, uint8 milestone);
    /// @notice Milestone `milestone` is not the next one (`next`), or does not exist.
    error EscrowMilestoneNotNext(uint256 orderId, uint8 milestone, uint8 next);
    /// @notice A duty or a customs return was attested for a milestone that is not CustomsCleared.
    error EscrowNotCustomsMilestone(uint256 orderId, uint8 milestone);
    /// @notice `provided` signatures were given; `required` are needed.
    error EscrowQuorumNotMet(uint256 provided, uint256 required);
    /// @notice The signature of `signer` expired at `deadline`.
    error EscrowSignatureExpired(address signer, uint256 deadline);
    /// @notice The signature does not verify for `signer` (wrong key, message or domain).
    error EscrowInvalidSignature(address signer);
    /// @notice Signers must come in strictly increasing organisation order; `signer` of
    ///         organisation `orgId` follows organisation `previousOrgId`.
    error EscrowSignersUnsorted(address signer, uint64 orgId, uint64 previousOrgId);
    /// @notice The review or dispute window after delivery is still open until `endsAt`.
    error EscrowReviewWindowOpen(uint256 orderId, uint256 endsAt);
    /// @notice The dispute window closed at `closedAt`.
    error EscrowDisputeWindowClosed(uint256 orderId, uint256 closedAt);
    /// @notice A buyer share above 10,000 basis points.
    error EscrowInvalidSplit(uint256 buyerShareBps);
    /// @notice The dispute can be decided by the timeout rule only after `expiresAt`.
    error EscrowDisputeNotExpired(uint256 orderId, uint256 expiresAt);
    /// @notice The dispute timed out at `expiredAt`; only the timeout rule can decide it now.
    error EscrowDisputeExpired(uint256 orderId, uint256 expiredAt);
    /// @notice `account` has no credit in `token` (or asked to withdraw nothing).
    error EscrowNothingToWithdraw(address account, address token);
    /// @notice `party` (seller or buyer) is named with organisation `named` but belongs to
    ///         `actual` (0: none; for the seller also: not Active, or holding no role).
    error EscrowPartyOrganisationMismatch(address party, uint64 named, uint64 actual);
    /// @notice The terms name `named` decimals for `token`; it is listed with `listed`.
    error EscrowTokenDecimalsMismatch(address token, uint8 named, uint8 listed);
    /// @notice The duty cap exceeds 10,000 basis points.
    error EscrowInvalidDutyCap(uint16 maxDutyBps);
    /// @notice Customs authority `index` of the terms (`orgId`) is out of order, repeated, after a
    ///         zero, or a party's organisation.
    error EscrowInvalidCustomsAuthority(uint256 index, uint64 orgId);
    /// @notice Arbitrator `index` of the terms (`orgId`) is out of order, repeated, after a zero,
    ///         or a party's organisation.
    error EscrowInvalidArbitrator(uint256 index, uint64 orgId);
    /// @notice `account` (an arbitrator of organisation `orgId`) is not of an organisation the
    ///         order's terms name as its arbitrators.
    error EscrowNotOrderArbitrator(uint256 orderId, address account, uint64 orgId);
    /// @notice `signer` (of organisation `orgId`) is not one of the order's customs authorities.
    error EscrowNotCustomsAuthority(uint256 orderId, address signer, uint64 orgId);
    /// @notice A duty must be paid to an account of one of the order's customs authorities,
    ///         never to the escrow, a party, or anyone else.
    error EscrowInvalidDutyPayee(address payee);
    /// @notice `duty` exceeds what the order's cap leaves, `allowed` (`maxDutyBps` of the deposit
    ///         less the duty paid at its earlier customs steps), and the buyer's signature is not
    ///         the last of the bundle.
    error EscrowDutyAboveCap(uint256 orderId, uint256 duty, uint256 allowed);
    /// @notice The FX quote is not valid now: issued in the future, expired, or valid for longer
    ///         than one hour.
    error EscrowFxQuoteNotValid(uint64 issuedAt, uint64 expiresAt);
    /// @notice A transfer of `token` moved `actual` instead of `expected` out of (or into) the escrow.
    error EscrowTransferMismatch(address token, uint256 expected, uint256 actual);
    /// @notice `token` charged the escrow more than it sent once; it can never be listed again.
    error EscrowTokenRefused(address token);

    // ------------------------------------------------------------------------------------------
    // Events
    // ------------------------------------------------------------------------------------------

    /// @notice `token` may be used by new orders; it stands for `currency` and has `decimals`.
    event TokenAllowed(address indexed token, bytes3 currency, uint8 decimals);
    /// @notice `token` may no longer be used by new orders (existing ones are unaffected).
    event TokenDisallowed(address indexed token);
    /// @notice Sending `sent` of `token` took `debited` from the escrow (a fee charged on top):
    ///         the token is refused for good, and the excess was charged to the withdrawer's credit.
    event TokenRefused(address indexed token, uint256 sent, uint256 debited);
    /// @notice An order was created: offered by the seller (`createOrder`), or placed by the buyer
    ///         (`placeOrder`, in which case `OrderFunded` follows in the same transaction).
    ///         `terms` are what every later call must pass.
    event OrderCreated(uint256 indexed orderId, address indexed seller, address indexed buyer, OrderTerms terms);
    /// @notice The seller withdrew the order before shipping; `refunded` went to the buyer.
    event OrderCancelled(uint256 indexed orderId, address indexed seller, address indexed buyer, uint256 refunded);
    /// @notice The buyer funded the order: `due` was asked for, `deposited` arrived.
    event OrderFunded(
        uint256 indexed orderId,
        address indexed buyer,
        address indexed seller,
        uint256 due,
        uint256 deposited
    );
    /// @notice The order's price was converted at `rate` (18 decimals, `quote` per `base`) observed at `timestamp`.
    event RateLocked(uint256 indexed orderId, bytes3 base, bytes3 quote, uint256 rate, uint64 timestamp);
    /// @notice Milestone `milestone` was reached: `duty` was paid to `dutyPayee`, then `toSeller`,
    ///         `platformFee` and `carrierFee` were released from the order.
    event MilestoneReached(
        uint256 indexed orderId,
        address indexed seller,
        address indexed buyer,
        uint8 milestone,
        MilestoneKind kind,
        uint256 duty,
        address dutyPayee,
        uint256 toSeller,
        uint256 platformFee,
        uint256 carrierFee
    );
    /// @notice Everything that remained went to the seller side; `confirmedByBuyer` is false
    ///         for a release after the review window.
    event OrderReleased(
        uint256 indexed orderId,
        address indexed seller,
        address indexed buyer,
        bool confirmedByBuyer,
        uint256 toSeller,
        uint256 platformFee,
        uint256 carrierFee
    );
    /// @notice Everything that remained (`amount`) went back to the buyer.
    event OrderRefunded(
        uint256 indexed orderId,
        address indexed buyer,
        address indexed seller,
        RefundReason reason,
        uint256 amount
    );
    /// @notice `openedBy` (buyer or seller) held what remains of the order for a ruling; the evidence
    ///         hashes to `evidenceHash`.
    event DisputeOpened(uint256 indexed orderId, address indexed openedBy, bytes32 evidenceHash);
    /// @notice Nobody ruled in time and the order was within its deadlines, undelivered: it is
    ///         Funded again and goes on (resolveExpiredDispute).
    event DisputeLapsed(uint256 indexed orderId);
    /// @notice The dispute was decided: by `arbitrator`, or by the timeout rule when it is zero.
    event DisputeResolved(
        uint256 indexed orderId,
        address indexed arbitrator,
        uint16 buyerShareBps,
        bytes32 rulingHash,
        uint256 toBuyer,
        uint256 toSeller,
        uint256 platformFee,
        uint256 carrierFee
    );
    /// @notice `account` withdrew its `amount` credit in `token`, sent to `to`.
    event Withdrawn(address indexed account, address indexed token, address indexed to, uint256 amount);

    // ------------------------------------------------------------------------------------------
    // Administration (OPERATOR role)
    // ------------------------------------------------------------------------------------------

    /// @notice Allows `token` for new orders, standing for ISO 4217 `currency` (its decimals are
    ///         read from the token). Calling it again updates the currency and decimals for new
    ///         orders; existing orders keep the decimals in their terms.
    /// @dev Reverts with EscrowMissingRole (caller not OPERATOR), EscrowTokenRefused (the token
    ///      once charged the escrow a fee on top), EscrowUnsupportedToken (more than 18 decimals,
    ///      or zero currency).
    function allowToken(address token, bytes3 currency) external;

    /// @notice Stops new orders and funding in `token`; orders already funded continue.
    /// @dev Reverts with EscrowMissingRole, EscrowTokenNotAllowed.
    function disallowToken(address token) external;

    /// @notice Stops order creation and funding. Milestones, releases, refunds, disputes and
    ///         withdrawals keep working. Reverts with EscrowMissingRole, or EnforcedPause.
    function pause() external;

    /// @notice Lifts `pause`. Reverts with EscrowMissingRole, or ExpectedPause.
    function unpause() external;

    // ------------------------------------------------------------------------------------------
    // Orders
    // ------------------------------------------------------------------------------------------

    /// @notice The seller offers an order to its buyer. Returns its id.
    /// @dev Reverts with EnforcedPause; EscrowNotSeller (caller is not `terms.seller`);
    ///      EscrowInvalidAccount (zero buyer, buyer = seller, zero fee account with a fee);
    ///      EscrowTokenNotAllowed; EscrowTokenDecimalsMismatch; EscrowInvalidAmount;
    ///      EscrowInvalidPriceCurrency; EscrowInvalidFees; EscrowInvalidDeadlines;
    ///      EscrowInvalidDutyCap; EscrowInvalidCustomsAuthority; EscrowInvalidArbitrator;
    ///      EscrowInvalidMilestoneCount;
    ///      EscrowInvalidMilestoneKind; EscrowInvalidQuorum (zero, or a customs quorum above the
    ///      number of customs authorities); EscrowInvalidShares; EscrowPartyOrganisationMismatch
    ///      (the seller is not a linked account of the Active organisation `sellerOrg`, or the
    ///      buyer's organisation is not `buyerOrg`); EscrowNonCanonicalTerms and
    ///      EscrowNonCanonicalWord (terms not as ABI encoders write them); EscrowOrderExists.
    function createOrder(OrderTerms calldata terms) external returns (uint256 orderId);

    /// @notice The buyer places an order at the seller's listed terms and funds it, in one
    ///         transaction: the order goes from nothing to Funded. Funding works as in `fund`
    ///         (approve first; an FX quote for orders priced in another currency, ignored
    ///         otherwise; balance-delta accounting). Returns the order id.
    /// @dev The seller accepts a placed order by shipping it: Shipped is attested, as for any
    ///      order, by carriers who took over the goods for this order id. Until then the seller
    ///      may `cancelOrder` (the deposit is credited back to the buyer), and after `shipBy`
    ///      anyone may `refund` it. Emits `OrderCreated` then `OrderFunded` (and `RateLocked` for
    ///      an FX order), exactly as `createOrder` followed by `fund` would.
    ///      Reverts with EnforcedPause; EscrowNotBuyer (caller is not `terms.buyer`); the term
    ///      checks of `createOrder` (EscrowInvalidAccount, EscrowTokenNotAllowed,
    ///      EscrowTokenDecimalsMismatch, EscrowInvalidAmount, EscrowInvalidPriceCurrency,
    ///      EscrowInvalidFees, EscrowInvalidDeadlines, EscrowInvalidDutyCap,
    ///      EscrowInvalidCustomsAuthority, EscrowInvalidArbitrator, EscrowInvalidMilestoneCount,
    ///      EscrowInvalidMilestoneKind,
    ///      EscrowInvalidQuorum, EscrowInvalidShares, EscrowPartyOrganisationMismatch,
    ///      EscrowNonCanonicalTerms, EscrowNonCanonicalWord, EscrowOrderExists); the FX errors of `fund`; EscrowNothingReceived;
    ///      EscrowTransferMismatch (more arrived than was due); and SafeERC20FailedOperation when
    ///      the token reports failure.
    function placeOrder(OrderTerms calldata terms, FxQuote calldata fx) external returns (uint256 orderId);

    /// @notice As `placeOrder`, after applying an EIP-2612 permit from the buyer (in try/catch,
    ///         as in `fundWithPermit`).
    function placeOrderWithPermit(OrderTerms calldata terms, FxQuote calldata fx, PermitSignature calldata permit)
        external
        returns (uint256 orderId);

    /// @notice The seller withdraws the order before shipping; a deposit is credited back to the buyer.
    /// @dev Reverts with EscrowUnknownOrder, EscrowNotSeller, EscrowInvalidState (not Created or
    ///      Funded), EscrowAlreadyShipped.
    function cancelOrder(OrderTerms calldata terms) external;

    /// @notice The buyer funds the order by transferFrom (approve first). Orders priced in
    ///         another currency need an FX quote for this order id, valid now, signed by
    ///         `fxQuorum()` ORACLE organisations (none of the parties'); for orders priced in the
    ///         token `fx` is ignored (pass an empty quote).
    /// @dev The order records what actually arrived (less than asked: a fee on transfer). Reverts
    ///      with EnforcedPause, EscrowUnknownOrder, EscrowInvalidState (not Created),
    ///      EscrowNotBuyer, EscrowDeadlinePassed (after shipBy), EscrowTokenNotAllowed (also once
    ///      refused), the FX errors (EscrowRateMismatch, EscrowInvalidAmount, EscrowFxQuoteNotValid
    ///      and those of signature bundles), EscrowNothingReceived, EscrowTransferMismatch (more
    ///      arrived than asked), and SafeERC20FailedOperation when the token reports failure.
    function fund(OrderTerms calldata terms, FxQuote calldata fx) external;

    /// @notice As `fund`, after applying an EIP-2612 permit from the buyer. A permit that fails
    ///         (for example because someone already submitted it) is ignored; funding then
    ///         needs the allowance to be in place, whoever set it.
    function fundWithPermit(OrderTerms calldata terms, FxQuote calldata fx, PermitSignature calldata permit) external;

    /// @notice Reaches the next milestone with a k-of-n bundle of MilestoneAttestation signatures.
    ///         A CustomsCleared milestone is attested only by the order's customs authorities and
    ///         may carry a `duty`, paid to `dutyPayee` (an account of one of those authorities)
    ///         out of the order (capped at what remains); every signer signs the same duty and
    ///         payee. `maxDutyBps` of the deposit caps the duty of the whole order: a duty above
    ///         what the cap leaves after the order's earlier duties needs the buyer's consent: the
    ///         buyer's own MilestoneAttestation signature over the same message, appended as the
    ///         last entry of `signatures` (it does not count towards the quorum); without it the
    ///         call reverts and the order stays Funded (open for a dispute, or a refund after
    ///         `deliverBy`). Intermediate milestones release their share; the Delivered share
    ///         waits for release. While Disputed (a dispute opened before delivery) milestones
    ///         are still attested, under the same deadlines and with the same payouts; the
    ///         Delivered milestone leaves the order Disputed and restarts the dispute's timeout,
    ///         and the ruling or the timeout rule decides what remains.
    /// @dev Reverts with EscrowUnknownOrder, EscrowInvalidState (not Funded or Disputed),
    ///      EscrowMilestoneAlreadyReached, EscrowMilestoneNotNext, EscrowDeadlinePassed (Shipped
    ///      after shipBy, later milestones after deliverBy), EscrowNotCustomsMilestone (a duty on
    ///      another kind), EscrowInvalidDutyPayee, EscrowDutyAboveCap, and the bundle errors:
    ///      EscrowQuorumNotMet, EscrowSignatureExpired, EscrowInvalidSignature, EscrowMissingRole,
    ///      EscrowConflictOfInterest, EscrowNotCustomsAuthority, EscrowSignersUnsorted.
    function attestMilestone(
        OrderTerms calldata terms,
        uint8 milestone,
        uint256 duty,
        address dutyPayee,
        Attestation[] calldata signatures
    ) external;

    /// @notice Customs detained the goods at milestone `milestone` (the next, a CustomsCleared one)
    ///         and returned them: what remains is refunded to the buyer. Needs that milestone's
    ///         quorum of CustomsReturn signatures from the order's customs authorities. No deadline
    ///         applies. Also while Disputed (a dispute opened before delivery), which it ends.
    /// @dev Reverts with EscrowUnknownOrder, EscrowInvalidState (not Funded or Disputed), EscrowMilestoneAlreadyReached,
    ///      EscrowMilestoneNotNext, EscrowNotCustomsMilestone, and the bundle errors.
    function attestCustomsReturn(OrderTerms calldata terms, uint8 milestone, Attestation[] calldata signatures)
        external;

    /// @notice The buyer accepts the delivered goods: everything remaining goes to the seller side.
    /// @dev Reverts with EscrowUnknownOrder, EscrowNotBuyer, EscrowInvalidState (not Delivered).
    function confirmDelivery(OrderTerms calldata terms) external;

    /// @notice As `confirmDelivery`, on a DeliveryConfirmation signature of the buyer relayed by anyone.
    /// @dev Reverts with EscrowUnknownOrder, EscrowInvalidState, EscrowSignatureExpired, EscrowInvalidSignature.
    function confirmDeliveryBySig(OrderTerms calldata terms, uint256 deadline, bytes calldata signature) external;

    /// @notice Anyone releases a delivered order once both the review window and the dispute
    ///         window after delivery have passed without a dispute.
    /// @dev Reverts with EscrowUnknownOrder, EscrowInvalidState (not Delivered), EscrowReviewWindowOpen.
    function release(OrderTerms calldata terms) external;

    /// @notice Anyone refunds what remains of an overdue order to the buyer: not shipped by
    ///         `shipBy`, or not delivered by `deliverBy`. Shares already released stay released.
    /// @dev Reverts with EscrowUnknownOrder, EscrowInvalidState (not Funded), EscrowDeadlineNotPassed.
    function refund(OrderTerms calldata terms) external;

    /// @notice The buyer or the seller holds what remains of the order for an arbitrator's ruling
    ///         (no refund, cancellation, confirmation or release), while it is Funded or within the
    ///         dispute window after delivery, citing evidence by its hash. Milestones and customs
    ///         returns are still attested.
    /// @dev Reverts with EscrowUnknownOrder, EscrowNotParty, EscrowInvalidState (not Funded or
    ///      Delivered), EscrowDisputeWindowClosed.
    function openDispute(OrderTerms calldata terms, bytes32 evidenceHash) external;

    /// @notice An ARBITRATOR of one of the organisations the terms name (`arbitrators`), and
    ///         neither party's own account, decides the dispute
    ///         before it times out: `buyerShareBps` of what remains is refunded to the buyer,
    ///         the rest goes to the seller side. `rulingHash` identifies the written ruling.
    /// @dev Reverts with EscrowUnknownOrder, EscrowMissingRole, EscrowNotOrderArbitrator,
    ///      EscrowConflictOfInterest, EscrowInvalidState (not Disputed), EscrowInvalidSplit,
    ///      EscrowDisputeExpired.
    function resolveDispute(OrderTerms calldata terms, uint16 buyerShareBps, bytes32 rulingHash) external;

    /// @notice Anyone decides a dispute nobody ruled on within `disputeTimeout()` seconds, by the
    ///         attested facts, as `release` and `refund` would: if every milestone was reached
    ///         (before or during the dispute; one reached during it restarted the timeout), what
    ///         remains goes to the seller side; if the order is overdue (nothing shipped by
    ///         `shipBy`, or not delivered by `deliverBy`), what remains is refunded to the buyer;
    ///         otherwise the dispute lapses and the order is Funded again (DisputeLapsed).
    /// @dev Reverts with EscrowUnknownOrder, EscrowInvalidState (not Disputed), EscrowDisputeNotExpired.
    function resolveExpiredDispute(OrderTerms calldata terms) external;

    /// @notice Sends the caller's whole credit in `token` to `to`. Returns the amount.
    /// @dev The escrow's own balance must fall by exactly the amount sent. Reverts with
    ///      EscrowInvalidAccount (zero `to`), EscrowNothingToWithdraw, EscrowTransferMismatch (the
    ///      token took more or less than it sent: for a fee charged on top, use `withdrawAmount`
    ///      with less than the whole credit), or the token's error.
    function withdraw(address token, address to) external returns (uint256 amount);

    /// @notice Sends `amount` (at most the caller's credit) of `token` to `to` and debits the
    ///         caller's credit by what actually left the escrow, which it returns. If that is more
    ///         than `amount` (a fee charged on top), the excess comes out of the rest of the
    ///         caller's credit, so every other credit stays covered, and the token is refused for
    ///         new orders and funding for good (`TokenRefused`).
    /// @dev Reverts with EscrowInvalidAccount, EscrowNothingToWithdraw (no credit, or zero
    ///      amount), EscrowInvalidAmount (more than the credit), EscrowTransferMismatch (less left
    ///      than was sent, or more than the caller's credit covers), or the token's error.
    function withdrawAmount(address token, address to, uint256 amount) external returns (uint256 debited);

    // ------------------------------------------------------------------------------------------
    // Views
    // ------------------------------------------------------------------------------------------

    /// @notice The id of the order with these terms (whether or not it was created).
    function orderIdOf(OrderTerms calldata terms) external pure returns (uint256);

    /// @notice The mutable state of order `orderId` (all zero if unknown).
    function getOrder(uint256 orderId) external view returns (Order memory);

    /// @notice The FX rate (18 decimals) and its observation time locked by `orderId`, or zeros.
    function lockedRate(uint256 orderId) external view returns (uint256 rate, uint64 timestamp);

    /// @notice The customs duty paid out of order `orderId` so far (at its CustomsCleared milestones).
    function dutyPaid(uint256 orderId) external view returns (uint256);

    /// @notice What `account` can withdraw in `token`.
    function creditOf(address token, address account) external view returns (uint256);

    /// @notice Whether `token` is allowed, and its currency and decimals.
    function tokenInfo(address token) external view returns (bool allowed, bytes3 currency, uint8 decimals);

    /// @notice The role registry (ConsortiumRegistry).
    function registry() external view returns (address);

    /// @notice Seconds an arbitrator has to rule before the timeout rule applies.
    function disputeTimeout() external view returns (uint256);

    /// @notice Number of ORACLE organisations that must sign an FX quote.
    function fxQuorum() external view returns (uint256);

    /// @notice The EIP-712 digest of a message with struct hash `structHash` in this escrow's
    ///         domain: what a milestone attester, a customs officer, the buyer or an FX oracle signs
    ///         when `structHash` is the hash of its MilestoneAttestation, CustomsReturn,
    ///         DeliveryConfirmation or FxRate message (types above).
    function typedDataDigest(bytes32 structHash) external view returns (bytes32);
}
