"""Live data usage in the Mini App (issue 11), as a buyer sees it in Chromium: after eSIM Go's signed usage
callback the eSIM page shows what is used and left, the days left and when it was measured, warns at 80 % in
words as well as colour, and at 100 % says the data is used up and makes Top up the primary button; My eSIMs
shows a compact line under the plan. In English and Russian."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
import requests
from playwright.sync_api import expect

import extensions
from conftest import SERVICE_TOKEN

from .fake_telegram import QR_LOADED

pytestmark = pytest.mark.browser

BUNDLE = "esim_1GB_7D_TH_V2"  # 1 GB for 7 days in Thailand, 314 Stars

TEXT = {
    "en": {"pay": "Pay 314 ⭐", "used": "0.8 GB of 1 GB used", "left": "0.2 GB left", "days": "7 days left",
           "low": "Data running low", "now": "Updated just now", "ago": "Updated 3 minutes ago",
           "line": "0.2 GB left · 7 days left", "out": "Data used up", "out_line": "Data used up · 7 days left",
           "valuetext": "80% used, Data running low", "unlimited_line": "Unlimited · 5 days left"},
    "ru": {"pay": "Оплатить 314 ⭐", "used": "Израсходовано 0,8 ГБ из 1 ГБ", "left": "Осталось 0,2 ГБ",
           "days": "Осталось 7 дней", "low": "Трафик заканчивается", "now": "Обновлено только что",
           "ago": "Обновлено 3 минуты назад", "line": "Осталось 0,2 ГБ · 7 дней", "out": "Трафик закончился",
           "out_line": "Трафик закончился · Осталось 7 дней",
           "valuetext": "Израсходовано 80%, Трафик заканчивается", "unlimited_line": "Безлимит · Осталось 5 дней"},
}


def buy(app, shop) -> dict:
    """Pay for BUNDLE through the fake Telegram client; the ready order as the buyer's API gives it."""
    page = app.page
    page.goto(f"{shop.origin}/checkout/{BUNDLE}")
    page.wait_for_function("t => Telegram.WebApp.MainButton.isVisible && Telegram.WebApp.MainButton.text === t",
                           arg=TEXT[app.buyer.language_code]["pay"])
    page.locator("#device-ok").check()  # the buyer's word that the phone takes an eSIM
    app.tg("Telegram.WebApp.MainButton._tap()")
    page.wait_for_url(re.compile(r"/esim/ord_\w+\?paid=1$"))
    page.wait_for_function(QR_LOADED, timeout=15_000)
    order_id = page.url.split("/esim/")[1].split("?")[0]
    return buyer_order(app, shop, order_id)


def buyer_order(app, shop, order_id: str) -> dict:
    answer = requests.get(f"{shop.origin}/api/orders/{order_id}", timeout=5,
                          headers={"Authorization": "tma " + app.tg("Telegram.WebApp.initData")})
    assert answer.status_code == 200, answer.text
    return answer.json()["order"]


def send_usage(shop, iccid: str, percent: int) -> None:
    answer = shop.esimgo.send_usage_callback(shop.origin + "/api/esimgo/callback", iccid, percent)
    assert answer.status_code == 200, answer.text


@pytest.mark.parametrize(("lang", "scheme"), [("en", "light"), ("ru", "dark")])
def test_usage_callback_shows_used_left_and_days_left_then_used_up(open_app, shop, lang, scheme):
    words = TEXT[lang]
    app = open_app(lang=lang, scheme=scheme, platform="android")
    page = app.page
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    order = buy(app, shop)

    # 80 % used: the card says how much is used and left, the days left, that data runs low, and when measured.
    send_usage(shop, order["iccid"], 80)
    assert buyer_order(app, shop, order["id"])["usage"]["used_bytes"] == 800_000_000
    page.goto(f"{shop.origin}/esim/{order['id']}")
    usage = page.locator(".card.usage")
    expect(usage).to_contain_text(words["used"])
    expect(usage).to_contain_text(words["left"])
    expect(usage).to_contain_text(words["days"])
    expect(usage.locator(".measured")).to_have_text(words["now"])
    expect(page.locator("#usage-status")).to_have_text(words["low"])  # the warning in words, not colour alone
    bar = usage.locator('.bar[role="progressbar"]')
    expect(bar).to_have_attribute("aria-valuenow", "80")
    expect(bar).to_have_attribute("aria-valuetext", words["valuetext"])
    expect(bar).to_have_class("bar low")
    expect(page.locator("#top-up")).to_have_class("button secondary")

    # The time of the measurement reads relatively in the page's language.
    stamp = (datetime.now(UTC) - timedelta(minutes=3, seconds=10)).isoformat(timespec="seconds")
    extensions.store(shop.app).update(order["id"], lambda o: o["usage"].update(measured_at=stamp))
    page.reload()
    expect(usage.locator(".measured")).to_have_text(words["ago"])
    expect(usage.locator(".measured")).to_have_attribute("datetime", stamp)

    # My eSIMs: a thin bar and "0.2 GB left · 7 days left" under the plan.
    page.goto(f"{shop.origin}/my-esims")
    line = page.locator(f'a.order[data-order="{order["id"]}"] .usage-line')
    expect(line).to_have_text(words["line"])
    expect(line.locator(".bar.thin")).to_have_attribute("aria-valuenow", "80")

    # 100 %: the data is used up, and topping up becomes the page's primary button.
    send_usage(shop, order["iccid"], 100)
    page.reload()
    expect(line).to_have_text(words["out_line"])
    page.goto(f"{shop.origin}/esim/{order['id']}")
    expect(page.locator("#usage-status")).to_contain_text(words["out"])
    expect(usage).to_contain_text(words["days"])
    expect(usage.locator(".bar")).to_have_attribute("aria-valuenow", "100")
    expect(usage.locator(".bar")).to_have_class("bar out")
    expect(page.locator("#top-up")).to_have_class("button")
    assert not errors, errors


@pytest.mark.parametrize("lang", ["en", "ru"])
def test_unlimited_esim_shows_no_bar_only_days_left_and_nothing_without_usage(open_app, shop, lang):
    app = open_app(lang=lang)
    plan = {"bundle_name": "esim_ULE_7D_TH_V2", "country_code": "TH", "country_name": "Thailand", "stars": 900,
            "price": "9.00", "status": "completed", "matchingId": "JQ-TEST-0001", "smdpAddress": "rsp.truphone.com"}

    def seed(iccid: str) -> str:
        answer = requests.post(f"{shop.origin}/api/orders", timeout=5, headers={"X-Service-Token": SERVICE_TOKEN},
                               json={"telegram_user_id": app.buyer.id, "iccid": iccid, **plan})
        assert answer.status_code == 201, answer.text
        return answer.json()["order"]["id"]

    unlimited, unknown = seed("8944000000000000017"), seed("8944000000000000025")
    now = datetime.now(UTC)
    extensions.store(shop.app).update(unlimited, lambda o: o.update(unlimited=True, duration_days=7, usage={
        "total_bytes": None, "used_bytes": None, "remaining_bytes": None, "percent": None, "unlimited": True,
        "ends_at": (now + timedelta(days=4, hours=12)).isoformat(timespec="seconds"),
        "measured_at": now.isoformat(timespec="seconds")}))

    page = app.page
    page.goto(f"{shop.origin}/my-esims")
    expect(page.locator(f'a.order[data-order="{unlimited}"] .usage-line')).to_have_text(TEXT[lang]["unlimited_line"])
    expect(page.locator(f'a.order[data-order="{unlimited}"] .bar')).to_have_count(0)
    expect(page.locator(f'a.order[data-order="{unknown}"]')).to_be_visible()
    expect(page.locator(f'a.order[data-order="{unknown}"] .usage-line')).to_have_count(0)

    page.goto(f"{shop.origin}/esim/{unlimited}")
    usage = page.locator(".card.usage")
    expect(usage).to_contain_text("Unlimited" if lang == "en" else "Безлимит")
    expect(usage).to_contain_text("5 days left" if lang == "en" else "Осталось 5 дней")
    expect(usage.locator(".bar")).to_have_count(0)
    expect(page.locator("#usage-status")).to_have_count(0)
