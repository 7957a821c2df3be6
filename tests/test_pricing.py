"""Sale prices (SPEC §5): what a buyer is charged for a bundle of a given eSIM Go cost."""

from decimal import Decimal

import pytest

from pricing import PriceSettings, sale_price


def test_spec_example_cost_2_26_sells_for_3_06_usd_and_314_stars():
    price = sale_price(Decimal("2.26"), "TH", PriceSettings())
    assert price.usd == Decimal("3.06")
    assert price.stars == 314
    assert isinstance(price.stars, int)


def test_country_markup_raises_only_that_country():
    settings = PriceSettings(country_markup_percent={"TH": Decimal("10")})
    assert sale_price(Decimal("2.26"), "TH", settings).usd == Decimal("3.37")  # 3.06117 x 1.1 = 3.367
    assert sale_price(Decimal("2.26"), "VN", settings).usd == Decimal("3.06")
    assert sale_price(Decimal("2.26"), None, settings).usd == Decimal("3.06")


def test_rounding_is_half_up_to_cents_and_stars_round_up():
    # 0.37 x 1.29 x 1.05 = 0.501165 -> 0.50 USD; 0.50 / 0.75 / 0.013 = 51.28 -> 52 Stars
    price = sale_price(Decimal("0.37"), None, PriceSettings())
    assert price.usd == Decimal("0.50")
    assert price.stars == 52


def test_a_free_bundle_still_costs_at_least_one_star():
    assert sale_price(Decimal("0"), None, PriceSettings()).stars == 1


def test_float_costs_are_refused_so_binary_rounding_never_reaches_a_price():
    with pytest.raises(TypeError):
        sale_price(2.26, None, PriceSettings())  # type: ignore[arg-type]


def test_settings_change_the_price_of_new_quotes():
    cheaper = PriceSettings(markup=Decimal("1.10"))
    assert sale_price(Decimal("2.26"), None, cheaper).usd == Decimal("2.61")  # 2.26 x 1.1 x 1.05 = 2.6103
