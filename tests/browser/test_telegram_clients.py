"""The Mini App in every Telegram client, run by Telegram's genuine telegram-web-app.js (issue 14): Telegram Web's
cross-site iframe with third-party storage blocked and allowed (launch data in the URL fragment, events over
postMessage), and the apps' web view (iOS, Android, Desktop, macOS: window.TelegramWebviewProxy). A buyer finds a
plan, pays with Stars and gets the eSIM with no console error; moving between pages keeps the launch data, theme
and language with no storage at all and asks our server at most once; a reload is rendered by the server in the
buyer's language. Also the device check as each client's buyer sees it."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect

from .fake_telegram import THEMES

pytestmark = pytest.mark.browser

BUNDLE = "esim_1GB_7D_TH_V2"  # 1 GB, 7 days in Thailand: 314 Stars
IOS_LINK = "https://esimsetup.apple.com/esim_qrcode_provisioning?carddata="
# sessionStorage as the Mini App's own script would try it: the error's name, or None when it works.
STORAGE_ERROR = "() => { try { sessionStorage.setItem('probe', '1'); return null; } catch (e) { return e.name; } }"
WORDS = {
    "en": {"title": "Travel eSIMs", "search": "thai", "one_result": "1 result", "pay": "Pay 314 ⭐",
           "confirm_first": "Please confirm first that your phone takes an eSIM.", "code": "Activation code",
           "esim_title": "Your eSIM", "ready": "Ready", "my": "My eSIMs", "help": "Help",
           "computer": "You’re on a computer", "iphone": "You’re in Telegram on an iPhone",
           "android": "You’re in Telegram on Android", "install": "Install on iPhone"},
    "ru": {"title": "eSIM для путешествий", "search": "таил", "one_result": "1 результат", "pay": "Оплатить 314 ⭐",
           "confirm_first": "Сначала подтвердите, что ваш телефон поддерживает eSIM.", "code": "Код активации",
           "esim_title": "Ваша eSIM", "ready": "Готова", "my": "Мои eSIM", "help": "Помощь",
           "computer": "Вы на компьютере", "iphone": "Вы в Telegram на iPhone",
           "android": "Вы в Telegram на Android", "install": "Установить на iPhone"},
}


def our_requests(shop, since: int) -> list[str]:
    """What reached the shop's server since hit number `since`."""
    return shop.hits[since:]


def only_known_hosts(tg, shop, *others: str) -> None:
    hosts = {urlsplit(url).netloc for url in tg.requests if url.startswith("http")}
    assert hosts <= {shop.host, "telegram.org", *others}, hosts


def document_after(tg, shop, action) -> str:
    """Run `action` (a reload) and return the HTML of the Mini App document the server sent for it."""
    with tg.page.expect_response(lambda r: r.request.resource_type == "document" and r.url.startswith(shop.origin)):
        action()
    return tg.documents[-1]


@pytest.mark.parametrize(("storage", "lang", "scheme"), [("blocked", "ru", "dark"), ("blocked", "en", "light"),
                                                         ("allowed", "en", "dark"), ("allowed", "ru", "light")])
def test_telegram_web_buyer_pays_and_gets_the_esim_whether_or_not_the_iframe_may_store(
        telegram_client, shop, telegram_web_origin, storage, lang, scheme):
    words = WORDS[lang]
    shop.esimgo.settings(processing_seconds=1.0)
    tg = telegram_client(storage=storage, lang=lang, scheme=scheme, platform="weba")
    app = tg.app
    rows = app.locator("#destinations a.row")
    expect(app.locator("#main h1")).to_have_text(words["title"])
    expect(rows.first).to_be_visible()

    # Telegram Web: the genuine script in a cross-site iframe, launched from the URL fragment.
    frame = tg.frame
    assert frame.evaluate("[Telegram.WebView.isIframe, Telegram.WebApp.platform]") == [True, "weba"]
    assert frame.evaluate("Telegram.WebApp.initDataUnsafe.user.id") == tg.buyer.id
    # Third-party storage really is refused (blocked) or given (allowed); the Lax language cookie never is.
    assert frame.evaluate(STORAGE_ERROR) == ("SecurityError" if storage == "blocked" else None)
    assert "lang=" not in frame.evaluate("document.cookie")
    events = tg.client("events")
    assert events.index("web_app_ready") < events.index("web_app_expand")
    assert "header:secondary_bg_color" in tg.client("colors")
    assert frame.evaluate("[document.documentElement.lang, document.documentElement.dataset.scheme]") == [lang, scheme]
    red, green, blue = (int(THEMES[scheme]["secondary_bg_color"][i:i + 2], 16) for i in (1, 3, 5))
    assert frame.evaluate("getComputedStyle(document.body).backgroundColor") == f"rgb({red}, {green}, {blue})"
    assert tg.client("backButton.is_visible") is False

    # Search, and the count is announced once; a destination opens without a page load: one request, its plans.
    app.locator("#search").fill(words["search"])
    expect(rows).to_have_count(1)
    expect(app.locator("#announce")).to_have_text(words["one_result"])
    since = len(shop.hits)
    rows.first.click()
    plan = app.locator(f'a.plan[data-bundle="{BUNDLE}"]')
    expect(plan).to_contain_text("314 ⭐")
    assert our_requests(shop, since) == ["/api/esimgo/bundles?country=TH"]
    assert tg.path() == f"/country/TH?lang={lang}"  # no cookie in the iframe: the language rides in the URL
    assert "#tgWebAppData=" in frame.url  # and the launch data in the fragment, on every in-app URL
    assert tg.client("backButton.is_visible") is True

    # Telegram's BackButton, and forward again: the data is in memory, nothing is asked.
    since = len(shop.hits)
    tg.tap_back()
    expect(app.locator("#search")).to_be_visible()
    assert tg.client("backButton.is_visible") is False
    app.locator('#destinations a.row[data-code="TH"]').first.click()
    plan.click()
    expect(app.locator("[data-stars]")).to_have_text("314 ⭐")
    assert our_requests(shop, since) == []

    # Checkout: the device check knows a computer; paying waits for the buyer's word that the phone takes an eSIM.
    tg.wait_main_button(words["pay"])
    expect(app.locator("#device-platform")).to_contain_text(words["computer"])
    tg.tap_main()
    expect(app.locator("#toast")).to_have_text(words["confirm_first"])
    assert tg.client("invoices") == []
    app.locator("#device-ok").check()
    tg.tap_main()

    # web_app_open_invoice → Telegram takes the payment (webhook) → invoice_closed: paid → the eSIM page.
    frame.wait_for_url(re.compile(r"/esim/ord_\w+\?paid=1"))
    order_id = re.search(r"/esim/(ord_\w+)", frame.url).group(1)
    assert len(tg.client("invoices")) == 1 and tg.payments.paid == [order_id]
    expect(app.locator("img#qr")).to_be_visible(timeout=15_000)
    expect(app.locator(".codes")).to_contain_text(words["code"])
    expect(app.locator("a#ios-install")).to_have_count(0)  # Apple's one-tap install does nothing on a computer
    assert "notification:success" in tg.client("haptics")

    # Telegram Web reloads the Mini App: the server renders the buyer's language at once, and the launch data
    # comes back from the URL — no storage needed to still be inside Telegram.
    html = document_after(tg, shop, lambda: tg.client("reload()"))
    assert f'<html lang="{lang}">' in html and words["esim_title"] in html
    expect(app.locator("img#qr")).to_be_visible(timeout=15_000)
    expect(app.locator("#outside")).to_be_hidden()

    # Back from the eSIM goes to My eSIMs (the checkout behind it is paid), where the order is ready.
    tg.tap_back()
    expect(app.locator(f'a.order[data-order="{order_id}"] .chip')).to_have_text(words["ready"])
    assert tg.client("backButton.is_visible") is False and tg.client("mainButton.is_visible") is False
    only_known_hosts(tg, shop, urlsplit(telegram_web_origin).netloc)
    assert not tg.errors, tg.errors


def test_telegram_web_language_switch_is_rendered_by_the_server_after_a_reload(telegram_client, shop):
    tg = telegram_client(storage="blocked", lang="en", platform="webk", path="/help")
    app = tg.app
    expect(app.locator("#main h1")).to_have_text("Help")
    app.locator('.lang-switch button[data-lang="ru"]').click()
    expect(app.locator("#main h1")).to_have_text("Помощь")
    app.locator('.tabbar a[href="/my-esims"]').click()
    expect(app.locator("#main h1")).to_have_text("Мои eSIM")  # the next page in the chosen language at once
    assert tg.path() == "/my-esims?lang=ru"
    html = document_after(tg, shop, lambda: tg.page.evaluate("__tgWeb.reload()"))
    assert '<html lang="ru">' in html and "Мои eSIM" in html  # first paint in Russian, no script needed
    expect(app.locator("#orders .state h2")).to_have_text("Пока нет eSIM")
    # Support opens in Telegram, once (the genuine script takes t.me links in the iframe itself).
    app.locator('.tabbar a[href="/help"]').click()
    app.locator("#support a.button").click()
    tg.page.wait_for_function("() => __tgWeb.links.length > 0")
    assert tg.client("links") == ["https://t.me/esimsdata_support"]
    assert not tg.errors, tg.errors


@pytest.mark.parametrize(("platform", "lang", "scheme"), [("ios", "en", "light"), ("android", "ru", "dark")])
def test_telegram_app_buyer_pays_through_the_apps_bridge(telegram_client, shop, platform, lang, scheme):
    # Telegram for iOS and Android: the Mini App is the web view's page; the script talks to TelegramWebviewProxy.
    words = WORDS[lang]
    tg = telegram_client(lang=lang, scheme=scheme, platform=platform, path="/country/TH")
    app = tg.app
    app.locator(f'a.plan[data-bundle="{BUNDLE}"]').click()
    expect(app.locator("[data-stars]")).to_have_text("314 ⭐")
    assert tg.frame.evaluate("[Telegram.WebView.isIframe, Telegram.WebApp.platform]") == [False, platform]
    assert tg.client("backButton.is_visible") is True
    expect(app.locator("#device-platform")).to_contain_text(words["iphone" if platform == "ios" else "android"])
    app.locator("#device-ok").check()
    tg.wait_main_button(words["pay"])
    tg.tap_main()
    tg.page.wait_for_url(re.compile(r"/esim/ord_\w+\?paid=1"))
    order_id = re.search(r"/esim/(ord_\w+)", tg.page.url).group(1)
    expect(app.locator("img#qr")).to_be_visible(timeout=15_000)
    if platform == "ios":
        # Apple's one-tap install works on the iPhone itself: Telegram's MainButton opens it outside Telegram.
        tg.wait_main_button(words["install"])
        tg.tap_main()
        tg.page.wait_for_function("() => __tgWeb.links.length > 0")
        assert tg.client("links")[-1].startswith(IOS_LINK)
        expect(app.locator('[data-steps="iphone"]')).to_be_visible()
    else:
        assert tg.client("mainButton.is_visible") is False
        expect(app.locator("a#ios-install")).to_have_count(0)
        expect(app.locator('[data-steps="android"]')).to_be_visible()
    tg.tap_back()
    expect(app.locator(f'a.order[data-order="{order_id}"] .chip')).to_have_text(words["ready"])
    assert tg.payments.paid == [order_id]
    only_known_hosts(tg, shop)
    assert not tg.errors, tg.errors


@pytest.mark.parametrize("platform", ["tdesktop", "macos", "webk"])
def test_desktop_clients_get_back_and_the_computer_advice(telegram_client, shop, platform):
    # Telegram Desktop, macOS and Web K: BackButton on inner pages only; the device check speaks to a computer.
    tg = telegram_client(storage="blocked", lang="en", scheme="dark", platform=platform)
    app = tg.app
    app.locator('#destinations a.row[data-code="TH"]').first.click()
    expect(app.locator("#area-name")).to_have_text("Thailand")
    assert tg.client("backButton.is_visible") is True
    tg.tap_back()
    expect(app.locator("#search")).to_be_visible()
    assert tg.client("backButton.is_visible") is False
    app.locator('.tabbar a[href="/help"]').click()
    expect(app.locator("#device-platform")).to_contain_text(WORDS["en"]["computer"])
    assert not tg.errors, tg.errors


@pytest.mark.parametrize("lang", ["en", "ru"])
def test_device_check_finds_phones_and_says_when_one_is_not_listed(telegram_client, shop, lang):
    tg = telegram_client(lang=lang, platform="android", path="/help")
    app = tg.app
    expect(app.locator("#device-platform")).to_contain_text(WORDS[lang]["android"])
    assert not [url for url in tg.requests if "devices.json" in url]  # not fetched before the buyer searches
    search = app.locator("#device-search")
    results = app.locator("#device-results li")
    search.fill("pixel 8")
    expect(results).to_have_count(3)
    expect(results.first).to_contain_text("Google Pixel 8")
    expect(results.first).to_contain_text("eSIM ✓")
    counted = {"en": "3 matching models support eSIM.", "ru": "3 подходящие модели поддерживают eSIM."}[lang]
    expect(app.locator("#device-count")).to_have_text(counted)
    expect(app.locator("#announce")).to_have_text(counted)  # said once, not row by row
    search.fill("iphone13")  # typed without the space
    expect(results).to_have_count(4)
    expect(results.first).to_contain_text(
        {"en": "Not models sold in mainland China", "ru": "Кроме моделей для материкового Китая"}[lang])
    search.fill("galaxy s")
    expect(results).to_have_count(8)  # the first eight, and a word to narrow it down
    expect(app.locator("#device-count")).to_contain_text(
        {"en": "Type more of the name", "ru": "Уточните название"}[lang])
    search.fill("Nokia 3310")
    expect(results).to_have_count(0)
    expect(app.locator("#device-count")).to_contain_text("*#06#")
    app.locator(".device-caveats summary").click()
    expect(app.locator(".device-caveats")).to_contain_text(
        {"en": "locked to a carrier", "ru": "привязан к оператору"}[lang])
    assert len([url for url in tg.requests if "/static/devices.json?v=" in url]) == 1
    assert not tg.errors, tg.errors
