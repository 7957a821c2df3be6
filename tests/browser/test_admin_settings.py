"""The owner's settings screens in Chromium (issue 12; the API is docs/settings.md), on a 390 px phone and a
desktop: prices changed with a preview before saving and then charged by the catalogue, invalid values refused
next to their fields with nothing saved, a promo code created, edited, paused and deleted, the Russian FAQ
edited and put back to the built-in one, and the three views fitting a phone.

`ADMIN_SCREENSHOTS=1` writes docs/screenshots/admin-prices-phone.png, admin-promos-phone.png and
admin-help-phone.png (otherwise they go to the test's temporary folder)."""

from __future__ import annotations

import re

import pytest
import requests
from playwright.sync_api import Page, expect

from conftest import ADMIN_TOKEN

from . import test_admin
from .test_admin import PAGE, PASSWORD, shot, shots_folder, sign_in

console = test_admin.console  # the owner's browser page on a phone or desktop (a fixture)

pytestmark = [pytest.mark.browser, pytest.mark.settings(ADMIN_PASSWORD=PASSWORD)]

BUNDLE = "esim_1GB_7D_TH_V2"  # costs 2.26 USD at the sandbox: 3.06 USD / 314 Stars at the default markups
THAILAND = '#preview-list li[data-area="TH"]'  # the cheapest Thai plan: 1 day unlimited lite, cost 1.96 USD
IN_FORCE = "These are the prices in force: your values change nothing yet."


# ---- helpers ------------------------------------------------------------------------------------------


def admin_get(shop, path: str) -> dict:
    """What the API says, read with the operator's token (not through the page under test)."""
    answer = requests.get(shop.origin + path, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()


def catalogue_price(shop, bundle: str = BUNDLE) -> tuple[str, int]:
    """The public catalogue's price of a Thai plan, as the Mini App shows it to buyers."""
    answer = requests.get(shop.origin + "/api/esimgo/bundles", params={"country": "TH"}, timeout=10)
    assert answer.status_code == 200, answer.text
    plan = next(b for b in answer.json()["bundles"] if b["name"] == bundle)
    return plan["price_usd"], plan["stars"]


def open_view(page: Page, shop, view: str) -> None:
    page.goto(shop.origin + PAGE)
    sign_in(page)
    expect(page.locator("#console")).to_be_visible()
    page.click(f'.tab[data-view="{view}"]')
    expect(page.locator(f"#view-{view}")).to_be_visible()
    expect(page.locator(f'.tab[data-view="{view}"]')).to_have_attribute("aria-current", "page")


def fits_the_screen(page: Page) -> None:
    widths = page.evaluate("[document.scrollingElement.scrollWidth, innerWidth]")
    assert widths[0] <= widths[1], f"the page scrolls sideways: {widths[0]} px in a {widths[1]} px window"


def promo_row(page: Page, code: str):
    return page.locator(f'#promos-body tr[data-code="{code}"]')


# ---- prices ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("device", ["phone", "desktop"])
def test_owner_reprices_thailand_after_seeing_the_preview(console, shop, device):
    assert catalogue_price(shop) == ("3.06", 314)
    page = console(device)
    open_view(page, shop, "prices")

    # The values in force, with their defaults; the preview shows today's prices, unchanged.
    expect(page.locator("#set-markup")).to_have_value("1.29")
    expect(page.locator("#set-stars_fee")).to_have_value("0.25")
    expect(page.locator('[data-default-for="markup"]')).to_have_text("Default 1.29")
    expect(page.locator('[data-default-for="stars_usd_rate"]')).to_have_text("Default 0.013")
    thai = page.locator(THAILAND)
    expect(thai.locator(".now")).to_have_text("$2.65 · 272 ⭐")
    expect(thai.locator(".after")).to_have_text("$2.65 · 272 ⭐")
    expect(page.locator("#preview-status")).to_have_text(IN_FORCE)
    expect(page.locator("#settings-history")).to_have_text("No changes yet: every value is the default.")

    # A higher base markup: the preview shows what it does before anything is saved.
    page.fill("#set-markup", "1.35")
    expect(thai.locator(".after")).to_have_text("$2.78 · 286 ⭐")  # 1.96 × 1.35 × 1.05
    expect(thai.locator(".now")).to_have_text("$2.65 · 272 ⭐")
    expect(page.locator("#preview-status")).to_contain_text("plans change price")

    # Thailand's own markup, found by searching the countries.
    page.fill("#country-q", "thai")
    expect(page.locator("#country-list li:not([hidden])")).to_have_count(1)
    country = page.locator('#country-list li[data-country="TH"]')
    expect(country).to_contain_text("Thailand")
    expect(country).to_contain_text("from $2.65 · 272 ⭐ · cost $1.96")
    country.locator("input").fill("10")
    expect(thai.locator(".after")).to_have_text("$3.06 · 314 ⭐")  # × 1.10 more
    # Nothing is saved yet: buyers still see the old price.
    assert admin_get(shop, "/api/admin/settings")["markup"] == "1.29"
    assert catalogue_price(shop) == ("3.06", 314)

    page.click("#prices-save")
    outcome = page.locator("#prices-outcome")
    expect(outcome).to_have_class(re.compile("tone-ok"))
    expect(outcome).to_contain_text("Saved: Base markup 1.35, Thailand 10 %.")
    saved = admin_get(shop, "/api/admin/settings")
    assert (saved["markup"], saved["country_markups"]) == ("1.35", {"TH": "10"})
    # The catalogue charges the new price at once: 2.26 × 1.35 × 1.10 × 1.05 = 3.52 USD, 362 Stars.
    assert catalogue_price(shop) == ("3.52", 362)

    # The console shows what is now in force, and who changed what.
    expect(page.locator("#set-markup")).to_have_value("1.35")
    expect(thai.locator(".now")).to_have_text("$3.06 · 314 ⭐")
    expect(page.locator("#preview-status")).to_have_text(IN_FORCE)
    expect(country).to_contain_text("from $3.06 · 314 ⭐ · cost $1.96")
    change = page.locator("#settings-history > li").first
    expect(change).to_contain_text("by admin (session")
    expect(change.locator('[data-change="markup"]')).to_have_text("Base markup: default → 1.35")
    expect(change.locator('[data-change="country_markups.TH"]')).to_have_text("Markup for Thailand: none → 10 %")
    assert page.errors == []


def test_invalid_prices_are_refused_next_to_their_fields_and_nothing_is_saved(console, shop):
    page = console("phone")
    open_view(page, shop, "prices")
    expect(page.locator(THAILAND).locator(".after")).to_have_text("$2.65 · 272 ⭐")

    # Each refused value's reason appears under its own field as soon as the preview asks the server.
    page.fill("#set-markup", "0.5")
    expect(page.locator("#err-markup")).to_contain_text("below 1 the shop sells under cost")
    expect(page.locator("#set-markup")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#preview-status")).to_contain_text("Mend the values marked in red")
    page.fill("#set-stars_fee", "-0.1")
    expect(page.locator("#err-stars_fee")).to_contain_text("Must be from 0 to 0.5")
    expect(page.locator("#err-markup")).to_be_visible()
    page.fill("#country-q", "TH")
    page.locator('#country-list li[data-country="TH"] input').fill("ten")
    page.fill("#country-q", "")
    expect(page.locator("#err-cm-TH")).to_have_text(
        "Must be a number of percent with at most 2 decimals, e.g. 10 or 12.5.")
    expect(page.locator("#err-stars_markup")).to_be_hidden()

    # Saving anyway: refused as a whole, the reasons stay, and nothing the owner typed is lost.
    page.click("#prices-save")
    outcome = page.locator("#prices-outcome")
    expect(outcome).to_have_class(re.compile("tone-bad"))
    expect(outcome).to_contain_text("Some values were not saved: see each field.")
    expect(page.locator("#err-markup")).to_be_visible()
    expect(page.locator("#err-stars_fee")).to_be_visible()
    expect(page.locator("#set-markup")).to_have_value("0.5")
    expect(page.locator("#set-stars_fee")).to_have_value("-0.1")
    saved = admin_get(shop, "/api/admin/settings")
    assert (saved["markup"], saved["stars_fee"], saved["country_markups"], saved["history"]) == ("1.29", "0.25", {}, [])
    assert catalogue_price(shop) == ("3.06", 314)

    # Mended (the defaults put back with a tap), the reasons go and the preview is back.
    page.click('[data-default-for="markup"]')
    page.click('[data-default-for="stars_fee"]')
    page.click('#country-list li[data-country="TH"] [data-clear]')
    expect(page.locator("#err-markup")).to_be_hidden()
    expect(page.locator("#err-stars_fee")).to_be_hidden()
    expect(page.locator("#err-cm-TH")).to_be_hidden()
    expect(page.locator("#set-markup")).not_to_have_attribute("aria-invalid", "true")
    expect(page.locator("#preview-status")).to_have_text(IN_FORCE)
    page.click("#prices-save")
    expect(outcome).to_have_text("Nothing to save: every value is the one in force.")
    assert admin_get(shop, "/api/admin/settings")["history"] == []
    assert page.errors == []


# ---- promo codes ----------------------------------------------------------------------------------------


def test_owner_creates_edits_pauses_and_deletes_a_promo_code(console, shop):
    page = console("phone")
    open_view(page, shop, "promos")
    expect(page.locator("#promos-body")).to_have_text("No promo codes yet: + New code makes one.")

    # A 20 % code for Thailand only, 100 uses, once per buyer; a percent over 100 is refused first.
    page.click("#promo-new")
    expect(page.locator("#promo-form")).to_be_visible()
    page.fill("#promo-code", "SPRING20")
    page.fill("#promo-off", "120")
    page.fill("#promo-max", "100")
    page.check("#promo-once")
    page.select_option("#promo-dest-pick", "TH")
    expect(page.locator('#promo-dests li[data-destination="TH"]')).to_contain_text("Thailand")
    page.click("#promo-save")
    expect(page.locator("#err-promo-off")).to_have_text("Must be a percent from 0.01 to 100, with at most 2 decimals.")
    expect(page.locator("#promo-off")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#promo-form-outcome")).to_contain_text("The promo code was not saved")
    assert admin_get(shop, "/api/admin/promocodes")["promocodes"] == []
    page.fill("#promo-off", "20")
    page.click("#promo-save")

    expect(page.locator("#promo-form")).to_be_hidden()
    expect(page.locator("#promos-outcome")).to_have_text("SPRING20 was created (Active): 20 % off.")
    row = promo_row(page, "SPRING20")
    expect(row.locator(".c-off")).to_have_text("20 % off")
    expect(row.locator(".c-state")).to_have_text("Active")
    expect(row.locator(".c-uses")).to_have_text("0 / 100")
    expect(row.locator(".c-dests")).to_contain_text("Thailand")
    expect(row.locator(".c-code")).to_contain_text("once per buyer")
    expect(row.locator(".c-revenue")).to_contain_text("$0.00")
    stored = admin_get(shop, "/api/admin/promocodes")["promocodes"]
    assert [(p["code"], p["percent_off"], p["destinations"], p["max_uses"], p["once_per_buyer"], p["active"])
            for p in stored] == [("SPRING20", "20", ["TH"], 100, True, True)]

    # The same code again (any case) is refused on the code's field.
    page.click("#promo-new")
    page.fill("#promo-code", "spring20")
    page.fill("#promo-off", "5")
    page.click("#promo-save")
    expect(page.locator("#err-promo-code")).to_contain_text("exists already")
    page.click("#promo-cancel")
    expect(page.locator("#promo-form")).to_be_hidden()

    # Edited: 25 % now, for Europe too.
    row.locator('[data-promo-action="edit"]').click()
    expect(page.locator("#promo-form-title")).to_have_text("Edit SPRING20")
    expect(page.locator("#promo-code")).to_have_value("SPRING20")
    expect(page.locator("#promo-off")).to_have_value("20")
    expect(page.locator("#promo-max")).to_have_value("100")
    expect(page.locator("#promo-once")).to_be_checked()
    page.fill("#promo-off", "25")
    page.select_option("#promo-dest-pick", "europe")
    page.click("#promo-save")
    expect(page.locator("#promos-outcome")).to_have_text("SPRING20 was saved (Active).")
    expect(row.locator(".c-off")).to_have_text("25 % off")
    expect(row.locator(".c-dests")).to_contain_text("Thailand, Europe")

    # Paused: buyers can no longer use it; then on again.
    row.locator('[data-promo-action="pause"]').click()
    expect(page.locator("#promos-outcome")).to_contain_text("SPRING20 is paused")
    expect(row.locator(".c-state")).to_have_text("Paused")
    assert admin_get(shop, "/api/admin/promocodes")["promocodes"][0]["active"] is False
    row.locator('[data-promo-action="resume"]').click()
    expect(row.locator(".c-state")).to_have_text("Active")
    assert admin_get(shop, "/api/admin/promocodes")["promocodes"][0]["state"] == "active"

    # Deleted after a confirmation; Cancel first leaves it be.
    row.locator('[data-promo-action="delete"]').click()
    expect(row.locator(".confirm")).to_contain_text("Delete the code SPRING20?")
    row.locator(".confirm button", has_text="Cancel").click()
    expect(row.locator('[data-confirm="delete"]')).to_have_count(0)
    assert len(admin_get(shop, "/api/admin/promocodes")["promocodes"]) == 1
    row.locator('[data-promo-action="delete"]').click()
    row.locator('[data-confirm="delete"]').click()
    expect(page.locator("#promos-outcome")).to_have_text("SPRING20 was deleted.")
    expect(row).to_have_count(0)
    expect(page.locator("#promos-body")).to_have_text("No promo codes yet: + New code makes one.")
    assert admin_get(shop, "/api/admin/promocodes")["promocodes"] == []
    assert page.errors == []


# ---- help texts -----------------------------------------------------------------------------------------


def test_owner_edits_the_russian_faq_and_puts_the_built_in_one_back(console, shop):
    before = admin_get(shop, "/api/admin/settings")
    built_in = before["texts"]["faq"]["ru"]
    page = console("phone")
    open_view(page, shop, "help")

    # The texts in force, each in its own box, and where to see them as buyers do.
    expect(page.locator("#text-faq-ru")).to_have_value(built_in)
    expect(page.locator("#text-refund_policy-en")).to_have_value(before["texts"]["refund_policy"]["en"])
    expect(page.locator("#set-support_contact")).to_have_value(before["support_contact"])
    box = page.locator('[data-text="faq.ru"]')
    expect(box.locator("[data-text-state]")).to_have_text("Built-in text")
    expect(box.locator("[data-reset]")).to_be_disabled()
    expect(page.locator(".format-note")).to_contain_text("**bold**")
    for lang in ("en", "ru"):
        link = page.locator(f"#help-link-{lang}")
        expect(link).to_have_attribute("href", f"/help?lang={lang}")
        expect(link).to_have_attribute("target", "_blank")

    faq = "Как оплатить?\nЗвёздами Telegram, прямо в приложении.\n\nМожно ли <b>вернуть</b>?\nДа: напишите нам."
    page.fill("#text-faq-ru", faq)
    expect(box.locator("[data-text-state]")).to_have_text("Not saved yet")
    expect(box.locator("[data-count]")).to_have_text(f"{len(faq)} / 5,000 characters")
    page.click("#help-save")
    expect(page.locator("#help-outcome")).to_have_text("Saved: FAQ (Russian). The help page shows it now.")
    expect(box.locator("[data-text-state]")).to_have_text("Your text")
    after = admin_get(shop, "/api/admin/settings")
    assert after["texts"]["faq"]["ru"] == faq
    assert after["custom_texts"]["faq"] == {"en": False, "ru": True}
    assert after["texts"]["faq"]["en"] == before["texts"]["faq"]["en"]
    assert after["history"][0]["changes"].keys() == {"texts.faq.ru"}

    # The help page in Russian, opened from the console in a new tab, shows it (the markup as text).
    with page.context.expect_page() as opened:
        page.click("#help-link-ru")
    help_page = opened.value
    expect(help_page.locator("body")).to_contain_text("Звёздами Telegram, прямо в приложении.")
    expect(help_page.locator("body")).to_contain_text("Можно ли <b>вернуть</b>?")
    help_page.close()

    # Reset to built-in: the built-in text is shown at once and is in force once saved.
    box.locator("[data-reset]").click()
    expect(page.locator("#text-faq-ru")).to_have_value(after["defaults"]["texts"]["faq"]["ru"])
    expect(box.locator("[data-text-state]")).to_have_text("Built-in after saving")
    page.click("#help-save")
    expect(page.locator("#help-outcome")).to_have_text("Saved: FAQ (Russian). The help page shows it now.")
    expect(box.locator("[data-text-state]")).to_have_text("Built-in text")
    reset = admin_get(shop, "/api/admin/settings")
    assert reset["custom_texts"]["faq"]["ru"] is False
    assert reset["texts"]["faq"]["ru"] == built_in
    assert reset["history"][0]["changes"]["texts.faq.ru"]["to"] is None
    assert page.errors == []


# ---- on a phone -----------------------------------------------------------------------------------------


def test_the_settings_views_fit_a_phone(console, shop, tmp_path):
    answer = requests.post(shop.origin + "/api/admin/promocodes", timeout=10,
                           headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
                           json={"code": "WELCOME5", "amount_off_usd": "5", "max_uses": 50, "once_per_buyer": True,
                                 "destinations": ["TH", "europe", "local"], "ends_at": "2099-12-31"})
    assert answer.status_code == 201, answer.text
    folder = shots_folder(tmp_path)
    page = console("phone")
    open_view(page, shop, "prices")
    for tab in ("orders", "users", "prices", "promos", "help"):
        expect(page.locator(f'.tab[data-view="{tab}"]')).to_be_in_viewport()

    expect(page.locator(THAILAND)).to_be_visible()
    page.fill("#set-markup", "1.35")
    expect(page.locator(THAILAND).locator(".after")).to_have_text("$2.78 · 286 ⭐")
    for control in ("#set-markup", "#set-stars_markup", "#set-stars_fee", "#set-stars_usd_rate", "#country-q",
                    '#country-list li[data-country="TH"] input', "#prices-save"):
        expect(page.locator(control)).to_be_visible()
    page.fill("#country-q", "thai")
    page.locator('#country-list li[data-country="TH"] input').fill("10")
    expect(page.locator(THAILAND).locator(".after")).to_have_text("$3.06 · 314 ⭐")
    expect(page.locator('#country-list li[data-country="TH"] input')).to_be_in_viewport()
    fits_the_screen(page)
    # The picture: Thailand's markup being set, the preview of what it does, and Save (a whole page is too big).
    page.locator(".country-markups").evaluate("card => card.scrollIntoView({block: 'start'})")
    expect(page.locator("#prices-save")).to_be_in_viewport()
    shot(page, folder, "admin-prices-phone")

    page.click('.tab[data-view="promos"]')
    row = promo_row(page, "WELCOME5")
    expect(row.locator(".c-off")).to_have_text("$5.00 off")
    expect(row.locator(".c-dests")).to_have_text("🇹🇭 Thailand, Europe, Every country plan")
    for action in ("edit", "pause", "delete"):
        expect(row.locator(f'[data-promo-action="{action}"]')).to_be_in_viewport()
    fits_the_screen(page)
    page.click("#promo-new")
    for control in ("#promo-code", "#promo-off", "#promo-starts", "#promo-ends", "#promo-max", "#promo-once",
                    "#promo-active", "#promo-dest-pick", "#promo-save"):
        expect(page.locator(control)).to_be_visible()
    fits_the_screen(page)
    page.evaluate("scrollTo(0, 0)")
    shot(page, folder, "admin-promos-phone", full_page=True)

    page.click('.tab[data-view="help"]')
    expect(page.locator("#text-faq-en")).not_to_have_value("")
    for control in ("#set-support_contact", "#text-faq-en", "#text-faq-ru", "#text-refund_policy-en",
                    "#text-refund_policy-ru", "#help-save", "#help-link-en", "#help-link-ru"):
        expect(page.locator(control)).to_be_visible()
    fits_the_screen(page)
    shot(page, folder, "admin-help-phone")  # the top: the whole page (four long texts) is too big a picture
    assert page.errors == []
