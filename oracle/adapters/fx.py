"""Exchange rates (`fx`), JSON:

    {"base": "EUR", "quote": "USD", "rate": "1.0842", "observedAt": "2025-07-01T14:00:00Z", "source": "ECB reference rate"}

`rate` units of `quote` per unit of `base`, as a decimal string (at most 18 decimals). A rate is
no EPCIS event (it is about no object): the oracle signs it as the escrow's
`FxRate(base, quote, rate, timestamp, deadline)` (rate with 18 decimals, an ORACLE signature)
and posts it to the relayer, which assembles quotes signed by `fxQuorum()` organisations.
"""

from __future__ import annotations

from decimal import Decimal

from pydantic import Field, model_validator

from oracle.adapters.base import Adapter, Amount, Context, Currency, FxObservation, Output, Record, Timestamp, unix


class FxRate(Record):
    base: Currency
    quote: Currency
    rate: Amount
    observed_at: Timestamp
    source: str | None = Field(None, max_length=120)

    @model_validator(mode="after")
    def _sane(self) -> "FxRate":
        if self.base == self.quote:
            raise ValueError(f"base and quote are both {self.base}")
        if Decimal(self.rate) <= 0:
            raise ValueError(f"rate must be positive, got {self.rate}")
        if Decimal(self.rate) >= 10**12:
            raise ValueError(f"rate: {self.rate} is not a plausible exchange rate (at most 10^12)")
        return self


class FxAdapter(Adapter):
    name = "fx"
    model = FxRate
    description = "FX rates, signed for the escrow's funding in another currency"

    def build(self, record: FxRate, ctx: Context) -> Output:
        observation = FxObservation(record.base, record.quote, Decimal(record.rate), unix(record.observed_at), record.source)
        return Output(
            fx=[observation],
            remember=[lambda s: s.save_rate(observation.base, observation.quote, observation.rate, observation.observed_at)],
            notes={"pair": f"{record.base}/{record.quote}", "rate": record.rate},
        )
