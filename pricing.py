"""Sale prices: the one place a bundle's eSIM Go cost becomes what the buyer pays (SPEC §5).

usd   = cost × MARKUP × (1 + country markup % / 100) × STARS_MARKUP, rounded half-up to cents
stars = max(1, ceil(usd / (1 − STARS_FEE) / STARS_USD_RATE))

All arithmetic is `Decimal`; Stars are an `int`. Prices are computed only here, on the server.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from config import Settings

CENT = Decimal("0.01")


@dataclass(frozen=True)
class PriceSettings:
    markup: Decimal = Decimal("1.29")
    stars_markup: Decimal = Decimal("1.05")
    stars_fee: Decimal = Decimal("0.25")
    stars_usd_rate: Decimal = Decimal("0.013")
    country_markup_percent: Mapping[str, Decimal] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: Settings) -> PriceSettings:
        return cls(
            markup=settings.markup,
            stars_markup=settings.stars_markup,
            stars_fee=settings.stars_fee,
            stars_usd_rate=settings.stars_usd_rate,
            country_markup_percent=dict(settings.country_markups),
        )


@dataclass(frozen=True)
class Price:
    usd: Decimal
    stars: int


def sale_price(cost: Decimal, country_code: str | None, settings: PriceSettings) -> Price:
    """The buyer's price for a bundle costing `cost` USD; `country_code` picks a country markup (None for regional)."""
    if not isinstance(cost, Decimal):
        raise TypeError("cost must be a Decimal")
    country_pct = settings.country_markup_percent.get((country_code or "").upper(), Decimal(0))
    usd = cost * settings.markup * (1 + country_pct / 100) * settings.stars_markup
    usd = usd.quantize(CENT, rounding=ROUND_HALF_UP)
    return Price(usd=usd, stars=stars_for(usd, settings))


def stars_for(usd: Decimal, settings: PriceSettings) -> int:
    """The Stars that bring in `usd` after Telegram's fee (never below 1): a sale price, or one after a discount."""
    stars = (usd / (1 - settings.stars_fee) / settings.stars_usd_rate).to_integral_value(rounding=ROUND_CEILING)
    return max(1, int(stars))
