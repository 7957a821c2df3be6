"""The Mini App in Chromium, as a buyer inside Telegram uses it (SPEC §7, issue 4): catalogue → plans →
checkout → Stars payment → eSIM page → My eSIMs, in light and dark themes, Russian and English; the first
screen's request and size budget; only our origin and telegram.org ever asked; demo mode and a browser
outside Telegram; data shown as text, never as HTML."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
import requests
from playwright.sync_api import expect

import extensions
from conftest import SERVICE_TOKEN, in_demo_mode

from .fake_telegram import QR_LOADED, Buyer

pytestmark = pytest.mark.browser

BUNDLE = "esim_1GB_7D_TH_V2"  # 1 GB, 7 days in Thailand: cost 2.26 → $3.06 → 314 Stars (SPEC §5)
IOS_LINK = "https://esimsetup.apple.com/esim_qrcode_provisioning?carddata="
FIRST_SCREEN_MAX_REQUESTS = 3  # HTML + one JS bundle + GET /api/esimgo/countries
FIRST_SCREEN_MAX_BYTES = 150 * 1024

TEXT = {
    "en": {"preparing": "Preparing your eSIM", "ready": "Ready", "usd": "$3.06", "pay": "Pay 314 ⭐",
           "code": "Activation code", "title": "Travel eSIMs", "thailand": "Thailand", "plans": "9 plans",
           "install": "Install on iPhone", "confirm_first": "Please confirm first that your phone takes an eSIM."},
    "ru": {"preparing": "Готовим вашу eSIM", "ready": "Готова", "usd": "3,06 $", "pay": "Оплатить 314 ⭐",
           "code": "Код активации", "title": "eSIM для путешествий", "thailand": "Таиланд", "plans": "9 тарифов",
           "install": "Установить на iPhone",
           "confirm_first": "Сначала подтвердите, что ваш телефон поддерживает eSIM."},
}


def assert_only_our_hosts(app_page, shop) -> None:
    foreign = sorted({r.url for r in app_page.requests if r.host not in (shop.host, "telegram.org")})
    assert not foreign, f"requests to other hosts: {foreign}"


def wait_main_button(app_page, text: str) -> None:
    app_page.page.wait_for_function(
        "t => Telegram.WebApp.MainButton.isVisible && Telegram.WebApp.MainButton.text === t", arg=text)


def confirm_device(page) -> None:
    """The buyer's word, asked on the checkout before paying, that the phone takes an eSIM."""
    page.locator("#device-ok").check()


@pytest.mark.parametrize(("lang", "scheme", "platform"), [("en", "light", "ios"), ("ru", "dark", "android")])
def test_buyer_finds_pays_and_installs_an_esim(open_app, shop, lang, scheme, platform):
    words = TEXT[lang]
    # eSIM Go takes a moment to prepare the eSIM, as it really does, so "preparing" can be seen.
    shop.esimgo.settings(processing_seconds=1.5)
    app = open_app(lang=lang, scheme=scheme, platform=platform)
    page = app.page
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))

    # Catalogue: Telegram-native start, in the buyer's language and theme.
    page.goto(shop.origin + "/")
    expect(page.locator("#main h1")).to_have_text(words["title"])
    rows = page.locator("#destinations a.row")
    expect(rows.first).to_be_visible()
    assert app.tg("window.__tg.calls.slice(0, 2)") == ["ready", "expand"]
    assert app.tg("Telegram.WebApp.BackButton.isVisible") is False  # hidden on the root
    assert app.tg("Telegram.WebApp.MainButton.isVisible") is False
    assert page.evaluate("document.documentElement.lang") == lang
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background == ("rgb(239, 239, 244)" if scheme == "light" else "rgb(21, 30, 39)")  # secondary_bg_color
    everything = rows.count()
    assert everything > 150

    # Search narrows the list down to Thailand.
    page.fill("#search", "thai" if lang == "en" else "таил")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text(words["thailand"])
    rows.first.click()

    # Plans of Thailand: standard and unlimited, data, days, speed, Stars and USD.
    page.wait_for_url(re.compile(r"/country/TH$"))
    expect(page.locator("#area-name")).to_have_text(words["thailand"])
    expect(page.locator("#area-sub")).to_have_text(words["plans"])
    assert app.tg("Telegram.WebApp.BackButton.isVisible") is True
    plan = page.locator(f'a.plan[data-bundle="{BUNDLE}"]')
    expect(plan).to_contain_text("314 ⭐")
    expect(plan).to_contain_text(words["usd"])
    expect(plan).to_contain_text("4G/5G")
    expect(page.locator("#plan-tabs")).to_be_visible()
    page.click('#plan-tabs button[data-tab="unlimited"]')
    expect(page.locator("a.plan").first).to_contain_text("∞")
    page.click('#plan-tabs button[data-tab="standard"]')
    plan.click()

    # Checkout: the plan, what's included, 314 Stars and $3.06; the MainButton pays.
    page.wait_for_url(re.compile(rf"/checkout/{BUNDLE}$"))
    expect(page.locator("[data-stars]")).to_have_text("314 ⭐")
    expect(page.locator("[data-usd]")).to_contain_text(words["usd"])
    expect(page.locator(".summary")).to_contain_text(words["thailand"])
    wait_main_button(app, words["pay"])
    # Not before the buyer says the phone takes an eSIM: the tap points at the question instead of paying.
    app.tg("Telegram.WebApp.MainButton._tap()")
    expect(page.locator("#toast")).to_have_text(words["confirm_first"])
    expect(page.locator("#device-ok")).to_be_focused()
    assert app.tg("window.__tg.invoices") == []
    confirm_device(page)
    app.tg("Telegram.WebApp.MainButton._tap()")

    # Telegram's invoice sheet opens on a t.me link; the buyer pays; our page goes to the order and waits.
    page.wait_for_url(re.compile(r"/esim/ord_\w+\?paid=1$"))
    invoices = app.tg("window.__tg.invoices")
    assert len(invoices) == 1 and re.fullmatch(r"https://t\.me/\$[A-Za-z0-9_=-]+", invoices[0])
    order_id = page.url.split("/esim/")[1].split("?")[0]
    assert app.payments.paid == [order_id]
    assert app.tg("window.__tg.calls").count("MainButton.showProgress") == 1
    expect(page.locator("#esim h2")).to_contain_text(words["preparing"])
    assert app.tg("Telegram.WebApp.BackButton.isVisible") is True

    # Ready: square QR from our server, the codes, the iPhone one-tap link, install steps.
    qr = page.locator("img#qr")
    expect(qr).to_be_visible(timeout=15_000)
    page.wait_for_function(QR_LOADED)
    width, height = qr.evaluate("img => [img.naturalWidth, img.naturalHeight]")
    assert width == height > 0
    order = requests.get(f"{shop.origin}/api/orders/{order_id}", timeout=5,
                         headers={"Authorization": "tma " + app.tg("Telegram.WebApp.initData")}).json()["order"]
    expect(page.locator(".codes")).to_contain_text(words["code"])
    expect(page.locator(".codes")).to_contain_text(order["matchingId"])
    expect(page.locator(".codes")).to_contain_text(order["smdpAddress"])
    expect(page.locator("#install")).to_be_visible()
    assert "notification:success" in app.tg("window.__tg.haptics")
    assert "impact:light" in app.tg("window.__tg.haptics")
    if platform == "ios":
        # On an iPhone the one-tap install is the MainButton, opened outside Telegram (Safari).
        wait_main_button(app, words["install"])
        app.tg("Telegram.WebApp.MainButton._tap()")
        assert app.tg("window.__tg.links")[-1].startswith(IOS_LINK)
        assert page.locator("a#ios-install").count() == 0
    else:
        # Apple's one-tap install cannot work on Android: the QR and the codes are the way there.
        assert page.locator("a#ios-install").count() == 0
        assert app.tg("Telegram.WebApp.MainButton.isVisible") is False
        expect(page.locator('[data-steps="android"]')).to_be_visible()  # Android steps first on Android

    # My eSIMs lists the order as Ready; Back from the eSIM page goes there too.
    app.tg("Telegram.WebApp.BackButton._tap()")
    page.wait_for_url(re.compile(r"/my-esims$"))
    chip = page.locator(f'a.order[data-order="{order_id}"] .chip')
    expect(chip).to_have_text(words["ready"])
    assert app.tg("Telegram.WebApp.BackButton.isVisible") is False
    assert app.tg("Telegram.WebApp.MainButton.isVisible") is False

    if lang == "en":
        # Top-up: from the eSIM, a compatible plan of the same destination, paid for that eSIM's ICCID.
        page.click(f'a.order[data-order="{order_id}"]')
        page.click("#top-up")
        page.wait_for_url(re.compile(rf"/country/TH\?iccid={order['iccid']}$"))
        page.click('a.plan[data-bundle="esim_3GB_30D_TH_V2"]')
        page.wait_for_url(re.compile(rf"/checkout/esim_3GB_30D_TH_V2\?iccid={order['iccid']}$"))
        expect(page.locator("#checkout-title")).to_have_text("Top-up")
        expect(page.locator(".notice")).to_contain_text(order["iccid"][-4:])
        expect(page.locator("#checkout-device")).to_be_hidden()  # it goes onto an eSIM already installed
        wait_main_button(app, "Pay 745 ⭐")
        app.tg("Telegram.WebApp.MainButton._tap()")
        page.wait_for_url(re.compile(r"/esim/ord_\w+\?paid=1$"))
        top_up_id = page.url.split("/esim/")[1].split("?")[0]
        assert top_up_id != order_id and app.payments.paid == [order_id, top_up_id]
        stored = extensions.store(shop.app).get(top_up_id)
        assert stored["top_up_of"] == order["iccid"]

    assert_only_our_hosts(app, shop)
    assert not errors, errors


def seed(shop, buyer_id: int, **fields) -> dict:
    answer = requests.post(f"{shop.origin}/api/orders", timeout=5, json={"telegram_user_id": buyer_id, **fields},
                           headers={"X-Service-Token": SERVICE_TOKEN})
    assert answer.status_code == 201, answer.text
    return answer.json()["order"]


@pytest.mark.parametrize("lang", ["en", "ru"])
def test_every_status_reads_in_words_and_a_ready_esim_shows_its_usage(open_app, shop, lang):
    app = open_app(lang=lang, scheme="dark" if lang == "en" else "light")
    plan = {"bundle_name": BUNDLE, "country_code": "TH", "country_name": "Thailand", "stars": 314, "price": "3.06"}
    labels = {
        "en": {"awaiting_payment": "Awaiting payment", "paid": "Preparing", "provisioning": "Preparing",
               "completed": "Ready", "failed": "Refunding", "refunded": "Refunded", "expired": "Expired"},
        "ru": {"awaiting_payment": "Ожидает оплаты", "paid": "Готовится", "provisioning": "Готовится",
               "completed": "Готова", "failed": "Возвращаем оплату", "refunded": "Оплата возвращена",
               "expired": "Истёк"},
    }[lang]
    ids = {}
    for status in labels:
        extra = {"iccid": "8944000000000000017", "matchingId": "JQ-TEST-0001",
                 "smdpAddress": "rsp.truphone.com"} if status == "completed" else {}
        ids[status] = seed(shop, app.buyer.id, status=status, **plan, **extra)["id"]
    extensions.store(shop.app).update(ids["completed"], lambda o: o.update(usage={
        "used_bytes": 1_200_000_000, "total_bytes": 3_000_000_000, "remaining_bytes": 1_800_000_000,
        "unlimited": False, "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "ends_at": (datetime.now(UTC) + timedelta(days=4, hours=12)).isoformat(timespec="seconds")}))

    page = app.page
    page.goto(shop.origin + "/my-esims")
    for status, label in labels.items():
        expect(page.locator(f'a.order[data-order="{ids[status]}"] .chip')).to_have_text(label)

    page.goto(f"{shop.origin}/esim/{ids['completed']}")
    usage = page.locator(".usage")
    if lang == "en":
        expect(usage).to_contain_text("1.2 GB of 3 GB used")
        expect(usage).to_contain_text("1.8 GB left")
        expect(usage).to_contain_text("5 days left")
    else:
        expect(usage).to_contain_text("Израсходовано 1,2 ГБ из 3 ГБ")
        expect(usage).to_contain_text("Осталось 5 дней")
    assert page.locator(".bar").get_attribute("aria-valuenow") == "40"
    expect(page.locator(".codes")).to_contain_text("JQ-TEST-0001")

    page.goto(f"{shop.origin}/esim/{ids['refunded']}")
    expect(page.locator("#esim .state p")).to_contain_text("314 ⭐")
    page.goto(f"{shop.origin}/esim/{ids['expired']}")
    expect(page.locator("#esim .state h2")).to_have_text("Order expired" if lang == "en" else "Срок заказа истёк")
    assert_only_our_hosts(app, shop)


def test_first_screen_stays_within_three_requests_and_150_kb(open_app, shop):
    app = open_app()
    sizes: dict[str, int] = {}
    cache_headers: dict[str, str] = {}

    def measure(response) -> None:
        if shop.host in response.url:
            sizes[response.url] = len(response.body())
            cache_headers[response.url] = response.headers.get("cache-control", "")

    app.page.on("response", measure)
    app.page.goto(shop.origin + "/", wait_until="networkidle")
    expect(app.page.locator("#destinations a.row").first).to_be_visible()
    ours = [r for r in app.requests if r.host == shop.host]
    assert [r.resource for r in ours] == ["document", "script", "fetch"], [r.url for r in ours]
    assert len(ours) <= FIRST_SCREEN_MAX_REQUESTS
    total = sum(sizes.values())
    assert total <= FIRST_SCREEN_MAX_BYTES, sizes
    assert any(r.url.startswith("https://telegram.org/js/telegram-web-app.js") for r in app.requests)
    assert_only_our_hosts(app, shop)
    print(f"first screen: {len(ours)} requests to our origin, {total} bytes: {sizes}")

    assert len(shop.hits) == len(ours)
    # Later pages take the bundle from the browser cache: its URL names its content and may be kept a year.
    # (Playwright turns the HTTP cache off while routes are set, so the header is what can be checked here.)
    script = next(r for r in ours if r.resource == "script")
    assert re.search(r"/assets/app\.js\?v=[0-9a-f]{12}$", script.url)
    assert cache_headers[script.url] == "public, max-age=31536000, immutable"
    assert cache_headers[shop.origin + "/"] == "no-store"


def test_language_switch_is_remembered_and_renders_the_next_page_in_it(open_app, shop):
    app = open_app(lang="en")
    page = app.page
    page.goto(shop.origin + "/country/TH")
    expect(page.locator("#area-name")).to_have_text("Thailand")
    page.click('.lang-switch button[data-lang="ru"]')
    expect(page.locator("#area-name")).to_have_text("Таиланд")
    expect(page.locator('a.plan[data-bundle="esim_1GB_7D_TH_V2"]')).to_contain_text("7 дней")
    assert page.evaluate("localStorage.getItem('esims.lang')") == "ru"
    page.goto(shop.origin + "/help")
    # Rendered in Russian by the server (cookie), before any script ran.
    html = page.evaluate("document.documentElement.outerHTML")
    assert 'lang="ru"' in html
    expect(page.locator("#main h1")).to_have_text("Помощь")
    expect(page.locator("#support")).to_contain_text("/paysupport")
    expect(page.locator("#support")).to_contain_text(extensions.settings(shop.app).support_contact)


def test_outside_telegram_explains_how_to_open_the_shop(open_app, shop):
    app = open_app(buyer=None)
    app.page.goto(shop.origin + "/my-esims")
    expect(app.page.locator("#outside")).to_be_visible()
    expect(app.page.locator("#outside h1")).to_have_text("Open the shop in Telegram")
    expect(app.page.locator("#main")).to_be_hidden()
    assert not [r for r in app.requests if "/api/" in r.url]  # nothing to ask without a buyer
    expect(app.page.locator(".demo-banner")).to_have_count(0)


def test_demo_mode_signs_a_demo_buyer_in_a_plain_browser(open_app, shop):
    in_demo_mode(shop.app)
    app = open_app(buyer=None)
    page = app.page
    page.goto(shop.origin + "/")
    expect(page.locator(".demo-banner")).to_have_text("Demo mode — nothing is real")
    expect(page.locator("#destinations a.row").first).to_be_visible()
    page.goto(shop.origin + "/my-esims")
    expect(page.locator(".demo-banner")).to_be_visible()
    expect(page.locator("#orders .state h2")).to_have_text("No eSIMs yet")
    assert [r.url for r in app.requests if "/api/demo/init-data" in r.url]

    # Checkout works through the page's own button (no Telegram MainButton in a browser), and the demo
    # plays Telegram's part of the payment once the buyer agrees.
    page.goto(shop.origin + f"/checkout/{BUNDLE}")
    expect(page.locator(".back-link")).to_be_visible()
    button = page.locator("#main-button")
    expect(button).to_have_text("Pay 314 ⭐")
    questions: list[str] = []
    page.on("dialog", lambda dialog: (questions.append(dialog.message), dialog.accept()))
    confirm_device(page)
    button.click()
    page.wait_for_url(re.compile(r"/esim/ord_\w+\?paid=1$"))
    assert "314 ⭐" in questions[0] and "Nothing real is charged" in questions[0]
    expect(page.locator("img#qr")).to_be_visible(timeout=15_000)
    expect(page.locator(".codes")).to_be_visible()
    expect(page.locator("a#ios-install")).to_have_count(0)  # a desktop browser: the one-tap install is iPhone-only
    assert_only_our_hosts(app, shop)


def test_demo_mode_works_when_telegram_org_cannot_be_reached(open_app, shop):
    in_demo_mode(shop.app)
    app = open_app(buyer=None, telegram_script=False)  # a browser where telegram.org is blocked
    app.page.goto(shop.origin + "/my-esims")
    expect(app.page.locator("#orders .state h2")).to_have_text("No eSIMs yet")
    app.page.goto(shop.origin + "/")
    expect(app.page.locator("#destinations a.row").first).to_be_visible()


def test_order_fields_are_shown_as_text_never_as_html(open_app, shop):
    app = open_app()
    evil = '<img src=x onerror="window.__pwned=1">Thailand'
    seeded = requests.post(f"{shop.origin}/api/orders", timeout=5,
                           headers={"X-Service-Token": SERVICE_TOKEN},
                           json={"telegram_user_id": app.buyer.id, "bundle_name": "<b>bold</b>",
                                 "country_code": "TH", "country_name": evil, "status": "awaiting_payment"})
    assert seeded.status_code == 201
    page = app.page
    page.goto(shop.origin + "/my-esims")
    row = page.locator("a.order").first
    expect(row).to_contain_text("Awaiting payment")
    expect(row.locator(".name")).to_contain_text(evil)
    assert page.locator("#orders img").count() == 0
    assert page.evaluate("window.__pwned") is None
    expect(row.locator(".sub").first).to_have_text("<b>bold</b>")


def test_someone_elses_order_is_not_found(open_app, shop):
    other = Buyer(id=42424242, first_name="Other")
    seeded = requests.post(f"{shop.origin}/api/orders", timeout=5,
                           headers={"X-Service-Token": SERVICE_TOKEN},
                           json={"telegram_user_id": other.id, "bundle_name": BUNDLE, "country_code": "TH",
                                 "status": "awaiting_payment"}).json()["order"]
    app = open_app()
    app.page.goto(f"{shop.origin}/esim/{seeded['id']}")
    expect(app.page.locator("#esim h2")).to_have_text("Order not found")


def test_on_a_first_start_pages_say_plans_are_loading_then_show_them(open_app, first_start):
    # Nothing on disk yet: the catalogue API answers 503 until eSIM Go's catalogue has been fetched.
    waiting, offline = open_app(), open_app()
    checkout, plans, catalogue = waiting.page, waiting.page.context.new_page(), offline.page
    errors: list[str] = []
    for page in (checkout, plans, catalogue):
        page.on("pageerror", lambda exc: errors.append(str(exc)))
    checkout.goto(f"{first_start.origin}/checkout/{BUNDLE}")
    plans.goto(first_start.origin + "/country/TH")
    catalogue.goto(first_start.origin + "/")
    for page, box in ((checkout, "#checkout"), (plans, "#plans"), (catalogue, "#destinations")):
        expect(page.locator(box + " .state h2")).to_have_text("Plans are loading. One moment…")

    # A buyer whose connection drops while waiting is told so, with a button to try again.
    catalogue.context.set_offline(True)
    no_connection = "No connection. Check the internet and try again."
    expect(catalogue.locator("#destinations .state h2")).to_have_text(no_connection)
    catalogue.context.set_offline(False)

    assert extensions.catalogue(first_start.app).refresh()
    # The waiting pages look again by themselves; the failed one when the buyer taps the button.
    expect(plans.locator(f'a.plan[data-bundle="{BUNDLE}"]')).to_contain_text("314 ⭐")
    expect(checkout.locator("[data-stars]")).to_have_text("314 ⭐")
    wait_main_button(waiting, "Pay 314 ⭐")
    catalogue.get_by_role("button", name="Try again").click()
    expect(catalogue.locator("#destinations a.row").first).to_be_visible()
    assert not errors, errors


def test_tabs_answer_the_arrow_keys_as_well_as_taps(open_app, shop):
    page = open_app().page
    page.goto(shop.origin + "/")
    rows = page.locator("#destinations a.row")
    expect(rows.first).to_have_attribute("href", re.compile(r"^/country/"))
    tabs = page.locator("#kind-tabs [role=tab]")
    # Tab reaches the chosen tab only; the arrows move the choice (ARIA tabs pattern), Home and End too.
    assert [tabs.nth(i).get_attribute("tabindex") for i in range(3)] == ["0", "-1", "-1"]
    tabs.first.focus()
    page.keyboard.press("ArrowRight")
    region = page.locator('#kind-tabs [data-tab="region"]')
    expect(region).to_have_attribute("aria-selected", "true")
    expect(region).to_be_focused()
    expect(rows.first).to_have_attribute("href", re.compile(r"^/region/"))
    page.keyboard.press("End")
    expect(page.locator('#kind-tabs [data-tab="global"]')).to_have_attribute("aria-selected", "true")
    expect(rows).to_have_count(1)
    page.keyboard.press("ArrowRight")  # round to the first
    expect(tabs.first).to_have_attribute("aria-selected", "true")
    expect(tabs.first).to_be_focused()
    assert [tabs.nth(i).get_attribute("tabindex") for i in range(3)] == ["0", "-1", "-1"]
    page.click('#kind-tabs [data-tab="global"]')
    expect(rows).to_have_count(1)
    page.reload()  # the choice is kept for this session
    expect(page.locator('#kind-tabs [data-tab="global"]')).to_have_attribute("aria-selected", "true")
    expect(rows).to_have_count(1)


def test_moving_between_pages_asks_the_server_at_most_once_and_never_for_a_page(open_app, shop):
    app = open_app()
    page = app.page
    page.goto(shop.origin + "/")
    expect(page.locator("#destinations a.row").first).to_be_visible()
    moves = []

    def move(action, ready) -> None:
        since = len(shop.hits)
        action()
        expect(ready).to_be_visible()
        page.wait_for_load_state("networkidle")
        moves.append(shop.hits[since:])

    move(lambda: page.locator('#destinations a.row[data-code="TH"]').first.click(), page.locator("a.plan").first)
    move(lambda: page.click(f'a.plan[data-bundle="{BUNDLE}"]'), page.locator("[data-stars]"))
    move(lambda: app.tg("Telegram.WebApp.BackButton._tap()"), page.locator("a.plan").first)
    move(lambda: app.tg("Telegram.WebApp.BackButton._tap()"), page.locator("#destinations a.row").first)
    move(lambda: page.click('.tabbar a[href="/my-esims"]'), page.locator("#orders .state"))
    move(lambda: page.click('.tabbar a[href="/help"]'), page.locator("#device-check"))
    move(lambda: page.locator("#device-search").fill("pixel"), page.locator("#device-results li").first)
    assert moves == [["/api/esimgo/bundles?country=TH"], [], [], [], ["/api/orders"], [],
                     [re.search(r"/static/devices\.json\?v=\w+", page.content()).group(0)]], moves
    assert [r.resource for r in app.requests if r.host == shop.host].count("document") == 1


def test_keyboard_focus_shows_targets_are_44_px_and_motion_can_be_reduced(open_app, shop):
    app = open_app(platform="android")
    page = app.page
    page.goto(f"{shop.origin}/checkout/{BUNDLE}")
    expect(page.locator("[data-stars]")).to_be_visible()
    page.keyboard.press("Tab")
    focused = page.evaluate("(() => { const s = getComputedStyle(document.activeElement);"
                            " return [document.activeElement.dataset.lang, s.outlineStyle, s.outlineWidth]; })()")
    assert focused == ["en", "solid", "2px"]  # the first stop, the EN switch, with a visible ring
    small = """() => Array.from(document.querySelectorAll('a, button, input, summary, label.device-confirm'))
        .filter((el) => el.offsetParent && el.type !== 'checkbox' && !el.closest('.support-contact'))
        .map((el) => [el.outerHTML.slice(0, 60), el.getBoundingClientRect()])
        .filter(([, r]) => r.height < 44 || r.width < 44).map(([html]) => html)"""
    assert page.evaluate(small) == []
    for path, ready in (("/", "#destinations a.row"), ("/country/TH", "a.plan"), ("/help", "#device-check")):
        page.goto(shop.origin + path)
        expect(page.locator(ready).first).to_be_visible()
        assert page.evaluate(small) == [], path
    # Tabs name the panel they show; the list itself is not a live region (counts are announced instead).
    page.goto(shop.origin + "/")
    for tab in page.locator("[role=tab]").all():
        assert page.locator("#" + tab.get_attribute("aria-controls")).get_attribute("role") == "tabpanel"
    assert page.locator("#destinations").get_attribute("aria-live") is None
    page.fill("#search", "thai")
    expect(page.locator("#announce")).to_have_text("1 result")
    # Reduced motion: no spinning or pulsing, pseudo-elements included.
    page.emulate_media(reduced_motion="reduce")
    still = page.evaluate("""() => ['spinner', 'skeleton-row', 'main-button busy'].map((name) => {
        const el = Object.assign(document.createElement('div'), { className: name });
        document.body.append(el);
        return [getComputedStyle(el).animationName, getComputedStyle(el, '::after').animationName];
    })""")
    assert still == [["none", "none"]] * 3


def test_back_returns_to_where_the_buyer_was_in_the_list(open_app, shop):
    page = open_app().page
    page.goto(shop.origin + "/")
    rows = page.locator("#destinations a.row")
    expect(rows.nth(60)).to_be_attached()
    page.evaluate("window.scrollTo(0, 2000)")
    # A tap where the buyer is, without Playwright scrolling anything into view first.
    page.evaluate("document.elementFromPoint(195, 400).closest('a.row').click()")
    expect(page.locator("a.plan").first).to_be_visible()
    assert page.evaluate("window.scrollY") == 0
    page.go_back()
    expect(rows.nth(60)).to_be_attached()
    page.wait_for_function("window.scrollY === 2000")
