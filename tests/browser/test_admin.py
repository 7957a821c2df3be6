"""The owner's admin console in Chromium (issue 10), on a 390 px phone and a desktop: login refused and
accepted, Needs attention showing an order whose delivery failed, Retry delivering it (one eSIM bought, one QR
sent), search by ICCID and @username, a refund (the buyer told), a resend (the QR again), buyers, CSV export of
the filtered rows, logout; order fields holding HTML shown as text; the alert's deep link opening its order;
the events a refusing backend did not take (issue 13), sent again from the Events view.

`ADMIN_SCREENSHOTS=1` writes the README's screenshots to docs/screenshots/admin-*.png (otherwise they go to
the test's temporary folder, so a normal run leaves the tree as it was)."""

from __future__ import annotations

import csv
import os
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
import test_events
from playwright.sync_api import Locator, Page, expect

import extensions
from auth import sign_init_data
from conftest import SERVICE_TOKEN

from .fake_telegram import Buyer, Payments

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "owner-test-password-7"
BUNDLE = "esim_1GB_7D_TH_V2"  # 314 Stars, $3.06 (SPEC §5)
PAGE = "/admin/orders.html"
HOSTILE = '<img src=x onerror="window.__pwned=1">'
MAX_SHOT_BYTES = 400 * 1024

DEVICES = {
    "phone": {"viewport": {"width": 390, "height": 780}, "device_scale_factor": 2, "is_mobile": True,
              "has_touch": True},
    "desktop": {"viewport": {"width": 1280, "height": 860}, "device_scale_factor": 1},
}

ANNA = Buyer(id=2515644, first_name="Anna", username="anna_travels")
BORIS = Buyer(id=31337001, first_name="Boris", username="boris_roams")


# ---- helpers ------------------------------------------------------------------------------------------


# The owner's backend on a free loopback port (tests/test_events.py's Receiver): 200 unless scripted.
backend = test_events.receiver


@pytest.fixture
def config(config, request):
    """tests/conftest.py's settings; a test that asks for `backend` has the shop send its order events there
    (only the test delivers them, with `deliver`: no worker runs here); a first retry 5 minutes after a failure."""
    if "backend" in request.fixturenames:
        config.update(BACKEND_WEBHOOK_URL=request.getfixturevalue("backend").url,
                      BACKEND_WEBHOOK_SECRET=test_events.SECRET, EVENTS_RETRY_SECONDS="300")
    return config


def deliver(shop) -> int:
    """The worker's delivery round: every due event POSTed to the backend; how many it took."""
    return shop.app.extensions["esimsdata"]["outbox"].deliver_due(extensions.store(shop.app))


@pytest.fixture
def console(browser, shop):
    """open(device) -> a fresh page for the owner on that device; page errors and console errors recorded."""
    contexts = []

    def open_page(device: str) -> Page:
        context = browser.new_context(**DEVICES[device], locale="en-US", accept_downloads=True)
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(15_000)
        page.errors = []  # uncaught exceptions and console errors (a CSP violation is one)
        page.on("pageerror", lambda exc: page.errors.append(str(exc)))
        # A refused request (401, 404) is logged by Chromium as an error: expected here, not a fault of the page.
        page.on("console", lambda msg: page.errors.append(msg.text)
                if msg.type == "error" and not msg.text.startswith("Failed to load resource") else None)
        return page

    yield open_page
    for context in contexts:
        context.close()


def buy(shop, buyer: Buyer, bundle: str = BUNDLE) -> str:
    """An order paid as a buyer pays it: the Mini App's invoice, then Telegram's updates to our webhook."""
    settings = extensions.settings(shop.app)
    answer = requests.post(shop.origin + "/api/telegram/stars/create-invoice", json={"bundle_name": bundle},
                           headers={"Authorization": "tma " + sign_init_data(settings.telegram_bot_token,
                                                                             buyer.user())}, timeout=10)
    assert answer.status_code == 200, answer.text
    payments = Payments(shop.origin, shop.telegram, buyer, settings.telegram_webhook_secret)
    assert payments.pay(answer.json()["invoice_link"]) == "paid"
    # The web process settles a fresh payment in a thread: wait for it to finish, whatever the outcome.
    assert extensions.fulfilment(shop.app).wait_idle(), "the payment was not settled"
    return answer.json()["order_id"]


def seed(shop, buyer_id: int, **fields) -> dict:
    """An order recorded by an operator (POST /api/orders): a record, never a cue to buy or message."""
    answer = requests.post(f"{shop.origin}/api/orders", timeout=5, json={"telegram_user_id": buyer_id, **fields},
                           headers={"X-Service-Token": SERVICE_TOKEN})
    assert answer.status_code == 201, answer.text
    return answer.json()["order"]


def seed_history(shop) -> None:
    """A few older orders of other buyers, so the dashboard, chart and table look like a shop's."""
    now = datetime.now(UTC)
    for days, user, username, code, name, bundle, stars, price, cost, status in [
        (1, 40000001, "mila_k", "JP", "Japan", "esim_3GB_30D_JP_V2", 745, "7.26", "5.37", "completed"),
        (2, 40000002, None, "TR", "Turkey", "esim_1GB_7D_TR_V2", 314, "3.06", "2.26", "completed"),
        (4, 40000003, "sergei_g", "AE", "United Arab Emirates", "esim_5GB_30D_AE_V2", 1650, "16.09", "11.90",
         "refunded"),
        (6, 40000001, "mila_k", "TH", "Thailand", BUNDLE, 314, "3.06", "2.26", "completed"),
        (9, 40000004, "lena_v", "GE", "Georgia", "esim_1GB_7D_GE_V2", 314, "3.06", "2.26", "expired"),
    ]:
        moment = (now - timedelta(days=days)).isoformat(timespec="seconds")
        extra = {"iccid": f"89440000000000{user % 100000:05d}{days}", "matchingId": f"JQ-SEED-{days:04d}",
                 "smdpAddress": "rsp.truphone.com", "telegram_payment_charge_id": f"stxSEED{days}"} \
            if status in ("completed", "refunded") else {}
        seed(shop, user, telegram_username=username, country_code=code, country_name=name, bundle_name=bundle,
             stars=stars, price=price, cost=cost, status=status, created_at=moment, **extra)


def shot(page: Page, folder: Path, name: str, full_page: bool = False) -> None:
    page.evaluate("document.fonts.ready")
    path = folder / f"{name}.png"
    page.screenshot(path=str(path), animations="disabled", caret="hide", full_page=full_page)
    assert path.stat().st_size < MAX_SHOT_BYTES, f"{path} is {path.stat().st_size} bytes"


def shots_folder(tmp_path: Path) -> Path:
    if os.environ.get("ADMIN_SCREENSHOTS"):
        folder = ROOT / "docs" / "screenshots"
        folder.mkdir(parents=True, exist_ok=True)
        return folder
    return tmp_path


def sign_in(page: Page, password: str = PASSWORD) -> None:
    expect(page.locator("#login-form")).to_be_visible()
    page.fill("#password", password)
    page.click("#login-form button[type=submit]")


def search(page: Page, words: str) -> None:
    page.fill("#f-q", words)
    page.press("#f-q", "Enter")


def row(page: Page, order_id: str):
    return page.locator(f'#orders-body tr[data-order="{order_id}"]')


def open_order(page: Page, order_id: str) -> None:
    row(page, order_id).locator("a.order-link").click()
    expect(page.locator("#detail")).to_be_visible()
    expect(page.locator("#detail-title")).to_have_text(f"Order {order_id}")
    expect(page.locator('#detail-body [data-action="refund"]')).to_be_visible()


def act(page: Page, action: str, reason: str | None = None) -> None:
    """Press an action in the open order, then confirm it in the page's own confirmation step."""
    page.click(f'#detail-body [data-action="{action}"]')
    confirm = page.locator(f'#detail-body [data-confirm="{action}"]')
    expect(confirm).to_be_visible()
    if reason is not None:
        page.fill("#refund-reason", reason)
    confirm.click()


def send_again(line: Locator) -> None:
    """Press an event's Send again (its row or card in the Events view), then confirm it in the page's own
    confirmation step."""
    line.locator("button[data-send]").click()
    line.locator('[data-confirm="send"]').click()


def close_order(page: Page) -> None:
    page.click("#detail-close")
    expect(page.locator("#detail")).to_be_hidden()


def no_page_wider_than_viewport(page: Page) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= page.viewport_size["width"], f"the page scrolls sideways: {width} px"


# ---- the owner's day -------------------------------------------------------------------------------------


@pytest.mark.settings(ADMIN_PASSWORD=PASSWORD)
@pytest.mark.parametrize("device", ["phone", "desktop"])
def test_owner_signs_in_fixes_a_failed_delivery_refunds_resends_and_exports(console, shop, tmp_path, device):
    store = extensions.store(shop.app)
    seed_history(shop)
    anna_order = buy(shop, ANNA)
    assert len(shop.telegram.calls("sendPhoto", chat_id=ANNA.id)) == 1
    # Boris has blocked the bot: his eSIM is bought, but Telegram refuses the photo with the QR.
    shop.telegram.fail("sendPhoto", error_code=403, description="Forbidden: bot was blocked by the user", times=1)
    boris_order = buy(shop, BORIS)
    assert store.get(boris_order)["iccid"] and not store.get(boris_order).get("delivered_at")
    assert len(shop.esimgo.orders) == 2

    page = console(device)
    page.goto(shop.origin + PAGE)

    # A wrong password is refused, in words; the console stays hidden.
    sign_in(page, "not-the-password")
    expect(page.locator("#login-error")).to_have_text("Wrong password.")
    expect(page.locator("#console")).to_be_hidden()

    # The right one opens the console: Boris's order needs attention, with the reason.
    sign_in(page)
    expect(page.locator("#console")).to_be_visible()
    expect(page.locator("#login")).to_be_hidden()
    needs = page.locator(f'#attention-list li[data-order="{boris_order}"]')
    expect(needs).to_contain_text("Delivery failed")
    expect(needs).to_contain_text("@boris_roams")
    expect(page.locator("#attention-clear")).to_be_hidden()

    # The dashboard: today's two sales, 30 days with the older ones, and a bar per day.
    today = page.locator('[data-period="today"]')
    expect(today.locator(".period-main strong")).to_have_text("2")
    expect(today).to_contain_text("628 ⭐")
    expect(today).to_contain_text("$6.12")
    expect(page.locator('[data-period="30d"] .period-main strong')).not_to_have_text("2")
    assert page.locator("#chart svg rect.bar").count() >= 28

    # The table: newest first, every state in words.
    expect(page.locator("#orders-body tr").first).to_have_attribute("data-order", boris_order)
    boris_row = row(page, boris_order)
    expect(boris_row).to_contain_text("Thailand")
    expect(boris_row).to_contain_text("314 ⭐")
    expect(boris_row).to_contain_text("$3.06")
    expect(boris_row.locator(".badge")).to_have_text("✓ Completed")
    expect(boris_row).to_contain_text("Delivery failed")
    expect(row(page, anna_order)).to_contain_text("Delivered")
    expect(page.locator("#orders-summary")).to_contain_text("of 7 orders")
    no_page_wider_than_viewport(page)
    folder = shots_folder(tmp_path)
    page.evaluate("window.scrollTo(0, 0)")
    shot(page, folder, f"admin-orders-{device}", full_page=device == "desktop")
    if device == "phone":  # the orders as cards, below the attention list and the dashboard
        page.locator("#orders-summary").evaluate("e => scrollTo(0, e.getBoundingClientRect().top + scrollY - 12)")
        shot(page, folder, "admin-cards-phone")
        page.evaluate("window.scrollTo(0, 0)")

    # Retry from the attention list delivers the eSIM: no second purchase, one more photo, to Boris.
    needs.locator("a").click()
    expect(page.locator("#detail-title")).to_have_text(f"Order {boris_order}")
    expect(page.locator('#detail-body [data-field="iccid"]')).to_contain_text(store.get(boris_order)["iccid"])
    expect(page.locator('#detail-body [data-action="retry"]')).to_be_enabled()
    assert page.url.endswith(f"#order={boris_order}")
    act(page, "retry")
    outcome = page.locator("#detail-body .outcome")
    expect(outcome).to_contain_text("delivered")
    expect(page.locator("#detail-body .detail-summary")).to_contain_text("Delivered")
    expect(page.locator('#detail-body [data-action="retry"]')).to_be_disabled()
    photos = shop.telegram.calls("sendPhoto", chat_id=BORIS.id)
    assert [call.status for call in photos] == [403, 200]
    assert len(shop.esimgo.orders) == 2
    references = [o.get("orderReference") for o in shop.esimgo.orders]
    assert references.count(store.get(boris_order)["orderReference"]) == 1
    expect(page.locator('#detail-body img.qr')).to_be_visible()
    expect(page.locator('#detail-body [data-field="lpa"]')).to_contain_text("LPA:1$")
    shot(page, folder, f"admin-detail-{device}")
    close_order(page)
    expect(page).not_to_have_url(re.compile("#order="))
    expect(page.locator("#attention-clear")).to_be_visible()
    expect(page.locator("#attention-list li")).to_have_count(0)

    # Search finds an order by its ICCID, and a buyer's by @username (with or without the @).
    search(page, store.get(anna_order)["iccid"])
    expect(page.locator("#orders-body tr")).to_have_count(1)
    expect(row(page, anna_order)).to_be_visible()
    for words in ("@boris_roams", "BORIS_ROAMS"):
        search(page, words)
        expect(page.locator("#orders-body tr")).to_have_count(1)
        expect(row(page, boris_order)).to_be_visible()

    # Refund Anna's completed order: her Stars back, and she is told.
    search(page, "@anna_travels")
    expect(page.locator("#orders-body tr")).to_have_count(1)
    told_before = len(shop.telegram.calls("sendMessage", chat_id=ANNA.id))
    open_order(page, anna_order)
    act(page, "refund", reason="the eSIM did not work on her phone")
    expect(page.locator("#detail-body .outcome")).to_contain_text("Refunded 314 ⭐")
    expect(page.locator("#detail-body .detail-summary .badge")).to_contain_text("Refunded")
    expect(page.locator('#detail-body [data-action="refund"]')).to_be_disabled()
    assert len(shop.telegram.calls("refundStarPayment")) == 1
    assert len(shop.telegram.calls("sendMessage", chat_id=ANNA.id)) == told_before + 1
    assert store.get(anna_order)["status"] == "refunded"
    close_order(page)
    expect(row(page, anna_order).locator(".badge")).to_contain_text("Refunded")

    # Resend Boris's delivered eSIM: he gets the QR once more.
    search(page, "@boris_roams")
    expect(page.locator("#orders-body tr")).to_have_count(1)
    open_order(page, boris_order)
    act(page, "resend")
    expect(page.locator("#detail-body .outcome")).to_contain_text("sent to the buyer again")
    assert [call.status for call in shop.telegram.calls("sendPhoto", chat_id=BORIS.id)] == [403, 200, 200]
    close_order(page)

    # Buyers: Mila has two orders; choosing her shows only hers.
    page.click('.tab[data-view="users"]')
    mila = page.locator('#users-body tr[data-user="40000001"]')
    expect(mila).to_contain_text("@mila_k")
    mila.locator("button").click()
    expect(page.locator("#view-orders")).to_be_visible()
    expect(page.locator("#user-filter")).to_contain_text("@mila_k")
    expect(page.locator("#orders-body tr")).to_have_count(2)
    page.click("#user-filter-clear")
    expect(page.locator("#user-filter")).to_be_hidden()

    # CSV export: exactly the rows the table shows under the current filter (completed orders).
    page.click("#f-clear")
    if not page.locator("#more-filters").evaluate("d => d.open"):
        page.click("#more-filters summary")
    page.locator("#f-statuses label", has_text="Completed").click()
    expect(page.locator("#orders-summary")).to_contain_text("of 4 orders")
    shown = page.locator("#orders-body tr").evaluate_all("rows => rows.map(r => r.dataset.order)")
    with page.expect_download() as download:
        page.click("#csv")
    lines = list(csv.DictReader(Path(download.value.path()).read_text("utf-8").splitlines()))
    assert [line["id"] for line in lines] == shown
    assert {line["status"] for line in lines} == {"completed"}
    assert boris_order in shown and anna_order not in shown
    assert download.value.suggested_filename.endswith(".csv")

    # Log out: the console and its data are gone, and the API no longer answers this browser.
    page.click("#logout")
    expect(page.locator("#login-form")).to_be_visible()
    expect(page.locator("#console")).to_be_hidden()
    expect(page.locator("#orders-body tr")).to_have_count(0)
    status = page.evaluate("fetch('/api/admin/orders').then(r => r.status)")
    assert status == 401
    assert page.errors == []


@pytest.mark.settings(ADMIN_PASSWORD=PASSWORD)
@pytest.mark.parametrize("device", ["phone", "desktop"])
def test_order_fields_holding_html_are_shown_as_text(console, shop, device):
    hostile = seed(shop, 50000001, telegram_username=HOSTILE, country_code="TH", country_name=HOSTILE,
                   bundle_name=HOSTILE, iccid=HOSTILE, matchingId=HOSTILE, smdpAddress="rsp.example.test",
                   orderReference="<script>window.__pwned=2</script>", stars=314, price="3.06", status="completed",
                   customer={"name": "<b onmouseover=window.__pwned=3>x</b>"})
    page = console(device)
    page.goto(shop.origin + PAGE)
    sign_in(page)
    line = row(page, hostile["id"])
    expect(line.locator(".c-dest")).to_contain_text(HOSTILE)
    expect(line.locator(".c-buyer")).to_contain_text("@" + HOSTILE)
    search(page, HOSTILE)  # the ICCID holds it too
    expect(page.locator("#orders-body tr")).to_have_count(1)

    open_order(page, hostile["id"])
    body = page.locator("#detail-body")
    expect(body.locator(".detail-what")).to_contain_text(HOSTILE)
    expect(body.locator('[data-field="iccid"]')).to_contain_text(HOSTILE)
    expect(body.locator('[data-field="orderReference"]')).to_contain_text("<script>window.__pwned=2</script>")
    page.click("#detail-body .all-fields summary")
    expect(body.locator('.all-fields [data-stored="customer"]')).to_contain_text("<b onmouseover=window.__pwned=3>")
    body.locator('.all-fields [data-stored="customer"]').hover()
    assert page.locator("img[src='x'], #detail-body b, #orders-body b, #detail-body script").count() == 0
    assert page.evaluate("typeof window.__pwned") == "undefined"
    # The session cookie alone does not let a page act: a POST without the console's CSRF token is refused.
    refused = page.evaluate("id => fetch(`/api/admin/orders/${id}/resend`, {method: 'POST'}).then(r => r.status)",
                            hostile["id"])
    assert refused == 403
    assert page.errors == []


@pytest.mark.settings(ADMIN_PASSWORD=PASSWORD)
def test_an_alert_link_opens_its_order_and_an_ended_session_asks_to_sign_in_again(console, shop):
    first = seed(shop, 60000001, telegram_username="alerted", country_code="JP", country_name="Japan",
                 bundle_name="esim_3GB_30D_JP_V2", stars=745, price="7.26", status="completed",
                 iccid="8944000000000000601", matchingId="JQ-ALERT-0001", smdpAddress="rsp.truphone.com")
    second = seed(shop, 60000002, country_code="TR", country_name="Turkey", bundle_name="esim_1GB_7D_TR_V2",
                  stars=314, price="3.06", status="expired")
    page = console("phone")

    # The bot's alert links to the order; the owner is not signed in yet: login first, then that order.
    page.goto(f"{shop.origin}{PAGE}#order={first['id']}")
    sign_in(page)
    expect(page.locator("#detail-title")).to_have_text(f"Order {first['id']}")
    expect(page.locator('#detail-body [data-field="iccid"]')).to_have_text("8944000000000000601")
    expect(page.locator('#detail-body [data-field="matchingId"]')).to_contain_text("JQ-ALERT-0001")

    # Signed in, another alert's link opens that order at once; an unknown one says so.
    page.goto(f"{shop.origin}{PAGE}#order={second['id']}")
    expect(page.locator("#detail-title")).to_have_text(f"Order {second['id']}")
    expect(page.locator("#detail-body .detail-summary")).to_contain_text("Expired")
    expect(page.locator('#detail-body [data-action="resend"]')).to_be_disabled()
    expect(page.locator('#detail-body [data-action="refund"]')).to_be_disabled()
    page.goto(f"{shop.origin}{PAGE}#order=ord_missing")
    expect(page.locator("#detail-body")).to_contain_text("There is no order ord_missing.")

    # A session that ended (expired, or signed out elsewhere): the next call brings back the login form.
    page.context.clear_cookies()
    page.click("#detail-close")
    page.click("#refresh")
    expect(page.locator("#login-error")).to_have_text("Your session has ended. Sign in again.")
    expect(page.locator("#console")).to_be_hidden()
    assert page.errors == []


@pytest.mark.settings(ADMIN_PASSWORD=PASSWORD)
@pytest.mark.parametrize("device", ["phone", "desktop"])
def test_events_the_backend_refused_are_shown_and_sent_again(console, shop, backend, tmp_path, device):
    store = extensions.store(shop.app)
    # Anna's order (paid, then delivered: "Payment received", "eSIM delivered"): the backend's secret is not ours
    # yet, so it refuses her first event for good, and her second waits behind it.
    anna_order = buy(shop, ANNA)
    backend.answers.append((401, '{"error": "bad signature"}'))
    assert deliver(shop) == 0
    # Boris's order: the backend asks to be tried later, in its own words (markup included).
    boris_order = buy(shop, BORIS)
    backend.answers.append((200, '{"success": false, "error": "<b>busy</b>"}'))
    assert deliver(shop) == 0
    anna, boris = store.get(anna_order)["outbox"], store.get(boris_order)["outbox"]
    assert [e["state"] for e in anna + boris] == ["failed", "pending", "pending", "pending"]
    assert len(backend.received) == 2

    page = console(device)
    page.goto(shop.origin + PAGE)
    sign_in(page)
    tab = page.locator("#events-tab")
    expect(tab).to_be_visible()
    expect(page.locator("#events-badge")).to_have_text("1")  # the failed one needs the owner
    tab.click()
    expect(page.locator("#view-events")).to_be_visible()
    expect(page.locator("#view-orders")).to_be_hidden()
    expect(page.locator("#events-summary")).to_contain_text("4 events not delivered yet (1 failed, 3 waiting)")

    def line(event):
        return page.locator(f'#events-body tr[data-event="{event["id"]}"]')

    refused = line(anna[0])
    expect(refused.locator(".c-event")).to_contain_text("Payment received")
    expect(refused.locator(".c-state")).to_have_text(re.compile("Failed"))
    expect(refused.locator(".c-state .badge")).to_have_class(re.compile("tone-bad"))
    expect(refused.locator(".c-attempts")).to_have_text("1")
    expect(refused.locator(".c-next")).to_have_text("Not until you send it again")
    expect(refused.locator(".c-error")).to_have_text("401: the backend refused our signature or token")
    expect(refused.locator(f'.c-order a[href="#order={anna_order}"]')).to_have_text(anna_order)
    expect(line(anna[1]).locator(".c-event")).to_contain_text("eSIM delivered")
    expect(line(anna[1]).locator(".c-state")).to_have_text(re.compile("Waiting"))
    expect(line(anna[1]).locator(".c-next")).to_have_text("After this order's event before it")
    expect(line(anna[1]).locator("button[data-send]")).to_have_count(0)  # it goes once the one before it has
    busy = line(boris[0])
    expect(busy.locator(".c-state .badge")).to_have_class(re.compile("tone-wait"))
    expect(busy.locator(".c-attempts")).to_have_text("1")
    expect(busy.locator(".c-next time")).to_have_attribute("datetime", boris[0]["next_at"])
    expect(busy.locator(".c-next time")).to_have_text(re.compile(r"^in [45] minutes$"))  # 5 min after it failed
    expect(busy.locator(".c-error")).to_have_text("200 with success false: {'success': False, 'error': '<b>busy</b>'}")
    assert page.locator("#events-body b").count() == 0  # the backend's words are text
    no_page_wider_than_viewport(page)
    if device == "phone":
        shot(page, shots_folder(tmp_path), "admin-events-phone", full_page=True)

    # The order link opens that order's detail over the list.
    refused.locator(".c-order a").click()
    expect(page.locator("#detail-title")).to_have_text(f"Order {anna_order}")
    close_order(page)

    # Send again asks first; Cancel leaves everything as it was.
    refused.locator("button[data-send]").click()
    expect(refused.locator(".confirm")).to_contain_text(f"Send the “Payment received” event of order {anna_order}")
    expect(busy.locator("button[data-send]")).to_be_disabled()
    refused.locator(".confirm button", has_text="Cancel").click()
    expect(refused.locator('[data-confirm="send"]')).to_have_count(0)
    expect(busy.locator("button[data-send]")).to_be_enabled()
    assert store.get(anna_order)["outbox"][0]["state"] == "failed"

    # The secret mended (the backend answers 200 from now on): Send again, confirmed, queues it at once.
    send_again(refused)
    outcome = page.locator("#events-outcome")
    expect(outcome).to_have_text(f"Payment received of order {anna_order}: It will be sent within a few seconds.")
    expect(outcome).to_have_class(re.compile("tone-ok"))
    expect(refused.locator(".c-state")).to_have_text(re.compile("Waiting"))
    expect(refused.locator(".c-attempts")).to_have_text("0")
    expect(page.locator("#events-badge")).to_be_hidden()
    # The worker's next round takes Anna's two, in order; Boris's waits for its next try.
    assert deliver(shop) == 2
    page.click("#refresh")
    expect(page.locator("#events-body tr[data-event]")).to_have_count(2)
    expect(refused).to_have_count(0)

    # A waiting event need not wait for its next try either.
    send_again(busy)
    expect(outcome).to_have_text(f"Payment received of order {boris_order}: It will be sent within a few seconds.")
    expect(busy.locator(".c-next time")).to_have_text(re.compile(r"^(now|\d+ seconds? ago)$"))
    assert deliver(shop) == 2
    page.click("#refresh")
    expect(page.locator("#events-body")).to_have_text("✓ All events delivered.")
    expect(page.locator("#events-summary")).to_have_text("Your backend has taken every event.")
    expect(tab).to_be_visible()
    posted = [r["headers"]["X-Event-Id"] for r in backend.received]
    assert posted == [anna[0]["id"], boris[0]["id"], anna[0]["id"], anna[1]["id"], boris[0]["id"], boris[1]["id"]]
    assert [e["state"] for o in (anna_order, boris_order) for e in store.get(o)["outbox"]] == ["sent"] * 4
    assert page.errors == []


@pytest.mark.settings(ADMIN_PASSWORD=PASSWORD)
def test_no_events_view_without_a_backend(console, shop):
    page = console("phone")
    page.goto(shop.origin + PAGE)
    with page.expect_response(lambda response: response.url.endswith("/api/admin/outbox")) as answer:
        sign_in(page)
    assert answer.value.json()["enabled"] is False
    expect(page.locator("#events-summary")).not_to_have_text("Loading events…")
    expect(page.locator("#events-tab")).to_be_hidden()
    expect(page.locator("#view-events")).to_be_hidden()
    assert page.errors == []
