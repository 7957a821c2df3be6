"""The Mini App's pages through Flask's test client (SPEC §7, issue 4): every route answers, HTML is never
cached while assets are content-hashed and cached for good, demo mode's signed buyer exists only in demo
mode, data from config and URLs is escaped, and both languages carry every text the pages use."""

from __future__ import annotations

import hashlib
import json
import re
from html import unescape
from pathlib import Path

import pytest

from auth import validate_init_data
from conftest import BOT_TOKEN, in_demo_mode

ROOT = Path(__file__).resolve().parent.parent
PAGES = ["/", "/country/TH", "/region/europe", "/global", "/checkout/esim_1GB_7D_TH_V2", "/my-esims",
         "/esim/ord_20261122_ab12cd34ef", "/help"]


def script_url(html: str) -> str:
    return re.search(r'<script src="(/assets/app\.js\?v=[0-9a-f]+)"', html).group(1)


@pytest.mark.parametrize("path", PAGES)
def test_every_page_answers_html_that_is_never_cached(client, path):
    response = client.get(path)
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    assert response.headers["Cache-Control"] == "no-store"
    csp = response.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "script-src 'self' https://telegram.org" in csp


@pytest.mark.parametrize("path", PAGES)
def test_telegram_script_comes_first_then_one_hashed_bundle(client, path):
    html = client.get(path).get_data(as_text=True)
    head = html[html.index("<head>"):html.index("</head>")]
    scripts = re.findall(r'<script src="([^"]+)"', html)
    assert scripts[0] == "https://telegram.org/js/telegram-web-app.js?63"
    assert head.index("telegram-web-app.js") < head.index("<style>")
    assert scripts[1:] == [script_url(html)]
    assert "<link rel=\"stylesheet\"" not in html  # the CSS is inlined: one request less
    # Nothing from anyone else's origin: no CDNs, no web fonts.
    hosts = set(re.findall(r'(?:src|href)="https?://([^/"]+)', html))
    assert hosts <= {"telegram.org", "t.me"}


def test_the_bundle_url_names_its_content_and_is_cached_for_a_year(client):
    url = script_url(client.get("/").get_data(as_text=True))
    response = client.get(url)
    assert response.status_code == 200 and response.mimetype == "text/javascript"
    assert url.endswith("v=" + hashlib.sha256(response.data).hexdigest()[:12])
    assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    body = response.get_data(as_text=True)
    assert "window.ES_I18N" in body and "ES.pages.catalogue" in body and "ES.pages.esim" in body
    # A stale or missing version is served fresh, never pinned in a cache.
    assert client.get("/assets/app.js?v=000000000000").headers["Cache-Control"] == "no-cache"
    assert client.get("/assets/other.js").status_code == 404


def test_static_files_with_their_hash_are_cached_for_a_year(client, app):
    with app.test_request_context():
        from assets import static_url

        url = static_url("i18n.json")
    content = (ROOT / "static" / "i18n.json").read_bytes()
    assert url == "/static/i18n.json?v=" + hashlib.sha256(content).hexdigest()[:12]
    assert client.get(url).headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert client.get("/static/i18n.json?v=stale").headers["Cache-Control"] == "no-cache"


def test_first_screen_is_small(client):
    html = client.get("/").data
    bundle = client.get(script_url(html.decode())).data
    countries = client.get("/api/esimgo/countries").data
    # HTML (CSS inlined) + the bundle + the catalogue call: the whole first screen from our origin.
    assert len(html) + len(bundle) + len(countries) <= 150 * 1024


def test_a_lowercase_country_code_redirects_to_the_stable_url(client):
    response = client.get("/country/th?iccid=8944")
    assert response.status_code == 301
    assert response.headers["Location"] == "/country/TH?iccid=8944"


@pytest.mark.parametrize("path", ["/country/ZZ", "/country/THA", "/region/atlantis", "/checkout/esim_nope_V2",
                                  "/checkout/bad%20name", "/esim/ord.1"])
def test_unknown_destinations_plans_and_orders_are_404_pages(client, path):
    response = client.get(path)
    assert response.status_code == 404
    assert response.mimetype == "text/html" and response.headers["Cache-Control"] == "no-store"


def test_demo_init_data_does_not_exist_outside_demo_mode(client):
    response = client.get("/api/demo/init-data")
    assert response.status_code == 404
    assert response.get_json()["error"] == "not_found"


def test_demo_mode_signs_a_demo_buyer_in_the_asked_language(app, client):
    in_demo_mode(app)
    response = client.get("/api/demo/init-data?lang=ru")
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    init_data = response.get_json()["init_data"]
    buyer = validate_init_data(init_data, BOT_TOKEN, 60)
    assert (buyer.id, buyer.first_name, buyer.username, buyer.language_code) == (1000001, "Demo", "demo_buyer", "ru")
    assert client.get("/api/orders", headers={"Authorization": "tma " + init_data}).status_code == 200
    odd = client.get("/api/demo/init-data?lang=xx").get_json()["init_data"]
    assert validate_init_data(odd, BOT_TOKEN, 60).language_code == "en"


def test_demo_payment_does_not_exist_outside_demo_mode(client, tma):
    response = client.post("/api/demo/pay/ord_20261122_ab12cd34ef", headers={"Authorization": tma(1000001)})
    assert response.status_code == 404 and response.get_json()["error"] == "not_found"


def test_demo_payment_pays_only_the_buyers_own_waiting_order(app, client, tma, telegram):
    in_demo_mode(app)
    buyer = {"Authorization": tma(1000001)}
    assert client.post("/api/demo/pay/ord_x").status_code == 401
    invoice = client.post("/api/telegram/stars/create-invoice", headers=buyer,
                          json={"bundle_name": "esim_1GB_7D_TH_V2"}).get_json()
    order_id = invoice["order_id"]
    stranger = client.post(f"/api/demo/pay/{order_id}", headers={"Authorization": tma(1000002)})
    assert stranger.status_code == 404
    response = client.post(f"/api/demo/pay/{order_id}", headers=buyer)
    assert response.status_code == 200 and response.get_json() == {"order_id": order_id, "status": "paid"}
    order = client.get(f"/api/orders/{order_id}", headers=buyer).get_json()["order"]
    assert order["status"] in ("paid", "provisioning", "completed") and order["paid_at"]
    answers = telegram.calls("answerPreCheckoutQuery")
    assert len(answers) == 1 and answers[0].params["ok"].lower() == "true"  # Telegram's order of events
    again = client.post(f"/api/demo/pay/{order_id}", headers=buyer)
    assert again.status_code == 409


@pytest.mark.parametrize("path", PAGES)
def test_demo_mode_says_so_on_every_page(app, client, path):
    assert 'class="demo-banner"' not in client.get(path).get_data(as_text=True)
    in_demo_mode(app)
    html = client.get(path).get_data(as_text=True)
    assert "Demo mode — nothing is real" in html and 'data-demo="1"' in html


@pytest.mark.settings(SUPPORT_CONTACT="<script>alert(1)</script>")
def test_config_and_url_values_are_escaped(app, client):
    html = client.get("/help").get_data(as_text=True)
    assert "<script>alert(1)" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    html = client.get('/esim/x"onload="alert(1)').get_data(as_text=True)
    assert 'onload="alert(1)' not in html


@pytest.mark.settings(SUPPORT_CONTACT="@esimsdata_help")
def test_a_support_handle_becomes_a_telegram_link(app, client):
    html = client.get("/help").get_data(as_text=True)
    assert 'href="https://t.me/esimsdata_help"' in html and "/paysupport" in html


def test_pages_render_in_the_buyers_language(client):
    english = client.get("/help").get_data(as_text=True)
    assert '<html lang="en">' in english and "Refunds" in english
    client.set_cookie("lang", "ru")  # set by the page's script from Telegram's language_code or the switch
    russian = client.get("/help").get_data(as_text=True)
    assert '<html lang="ru">' in russian and "Возврат" in russian and "/paysupport" in russian
    client.delete_cookie("lang")
    by_header = client.get("/my-esims", headers={"Accept-Language": "ru-RU,ru;q=0.9"}).get_data(as_text=True)
    assert "Мои eSIM" in by_header


def test_both_languages_have_every_text_the_pages_use():
    table = json.loads((ROOT / "static" / "i18n.json").read_text("utf-8"))
    plural = re.compile(r"_(one|few|many|other)$")
    english = {plural.sub("", k) for k in table["en"]}
    russian = {plural.sub("", k) for k in table["ru"]}
    assert english == russian
    templates = "".join(p.read_text("utf-8") for p in (ROOT / "templates").glob("*.html"))
    scripts = "".join(p.read_text("utf-8") for p in (ROOT / "static" / "js").glob("*.js"))
    # Server-only texts (<title>) are t("key"); re-translated ones go through _i18n.html: i18n.text("h1", "key").
    used = set(re.findall(r'\bt\("([a-z_]+)"\)', templates))
    used |= set(re.findall(r'\bi18n\.(?:text|attr)\("[a-z-]+", "([a-z_]+)"[,)]', templates))
    used |= set(re.findall(r'\bt\("([a-z_]+)"', scripts)) | set(re.findall(r'\btn\("([a-z_]+)"', scripts))
    assert used, "no texts found"
    assert used <= english, sorted(used - english)
    for key in re.findall(r'\btn\("([a-z_]+)"', scripts):
        assert f"{key}_other" in table["en"] and f"{key}_many" in table["ru"], key


@pytest.mark.parametrize("lang", ["en", "ru"])
def test_every_translated_text_carries_its_key_for_the_language_switch(client, lang):
    # The server writes each text in the buyer's language, marked with the key the page's script re-translates
    # it from when Telegram's language or the EN/RU switch says otherwise (templates/_i18n.html).
    table = json.loads((ROOT / "static" / "i18n.json").read_text("utf-8"))
    client.set_cookie("lang", lang)
    for path in [*PAGES, "/country/ZZ"]:
        html = client.get(path).get_data(as_text=True)
        texts = re.findall(r'<(\w+)[^<>]* data-i18n="([a-z0-9_]+)">([^<]*)</\1>', html)
        attributes = re.findall(r'(placeholder|aria-label)="([^"]*)" data-i18n-(placeholder|aria)="([a-z_]+)"', html)
        assert texts and len(texts) == html.count("data-i18n="), path
        assert len(attributes) == html.count("data-i18n-"), path
        shown = [(key, text) for _, key, text in texts] + [(key, text) for _, text, _, key in attributes]
        for key, text in shown:
            assert unescape(text) == table[lang].get(key, table["en"].get(key)), (path, key)
        for name, _, kind, _ in attributes:
            assert (name, kind) in (("placeholder", "placeholder"), ("aria-label", "aria")), (path, name, kind)



@pytest.mark.parametrize("path", PAGES)
def test_every_page_is_the_one_app_with_every_other_page_as_a_template(client, path):
    # static/js/router.js moves between pages inside this document: Telegram's launch data is never reloaded.
    html = client.get(path).get_data(as_text=True)
    page = re.search(r'<body data-page="(\w+)"', html).group(1)
    templates = set(re.findall(r'<template id="view-(\w+)">', html))
    assert templates == {"catalogue", "plans", "checkout", "orders", "esim", "help"} - {page}
    assert re.search(r'data-devices="/static/devices\.json\?v=[0-9a-f]{12}"', html)


def test_the_language_in_the_url_wins_over_the_cookie(client):
    # Telegram Web's cross-site iframe keeps no cookie: there the script carries the language as ?lang=.
    client.set_cookie("lang", "en")
    html = client.get("/help?lang=ru").get_data(as_text=True)
    assert '<html lang="ru">' in html and "Помощь" in html
    assert '<html lang="en">' in client.get("/help?lang=xx").get_data(as_text=True)


def _js_tokens(source: str) -> list[tuple]:
    """JavaScript as a lexer reads it, comments and whitespace aside (an independent reading of the code)."""
    from pygments.lexers import JavascriptLexer
    from pygments.token import Comment, Text, Whitespace

    return [(kind, value) for kind, value in JavascriptLexer().get_tokens(source)
            if kind not in Whitespace and kind not in Comment and kind not in Text]


def test_the_bundle_leaves_out_only_comments_blank_lines_and_indentation(client):
    from assets import JS_MODULES, STATIC, compact

    for name in JS_MODULES:
        source = (STATIC / name).read_text("utf-8")
        kept = compact(source, name)
        assert kept and _js_tokens(kept) == _js_tokens(source), name  # not a token lost, added or moved
        assert not [line for line in kept.splitlines() if line.startswith(("//", "/*"))], name


@pytest.mark.parametrize("source", ["/* note */ const b = 2;", "/* a\n   long note */ const b = 2;",
                                    "const s = `a\n// b`;", "const s = 'a\\\n  b';"])
def test_the_bundle_refuses_code_it_could_change(source):
    from assets import compact

    with pytest.raises(ValueError, match="module:"):
        compact(source)


def test_the_device_list_is_brands_with_models():
    devices = json.loads((ROOT / "static" / "devices.json").read_text("utf-8"))
    table = json.loads((ROOT / "static" / "i18n.json").read_text("utf-8"))
    assert devices["updated"] and devices["about"]
    names = [model for brand in devices["brands"] for model in brand["models"]]
    assert len(names) > 100 and len(set(names)) == len(names)
    for brand in devices["brands"]:
        assert brand["brand"] and brand["platform"] in ("ios", "android") and brand["models"]
        assert brand.get("note") is None or brand["note"] in table["en"].keys() & table["ru"].keys()


@pytest.mark.parametrize("contact, marker", [("@esimsdata_help", "data-telegram-link"),
                                             ("https://t.me/esimsdata_help", "data-telegram-link"),
                                             ("https://example.com/support", "data-external"),
                                             ("mailto:help@example.com", None)])
def test_each_kind_of_support_contact_opens_the_way_telegram_can(config, contact, marker):
    from app import create_app

    app = create_app({**config, "SUPPORT_CONTACT": contact})
    try:
        html = app.test_client().get("/help").get_data(as_text=True)
        links = re.findall(r'<a [^>]*href="([^"]*)"[^>]*>', html)
        tags = [tag for tag in re.findall(r"<a [^>]*>", html) if contact.split(":", 1)[-1].lstrip("@") in tag]
        assert tags, links
        for tag in tags:
            assert ("data-telegram-link" in tag) == (marker == "data-telegram-link"), tag
            assert ("data-external" in tag) == (marker == "data-external"), tag
    finally:
        app.extensions["esimsdata"]["store"].close()


def test_a_lowercase_country_redirect_keeps_the_query_as_it_came(client):
    response = client.get("/country/th?iccid=8944&iso=x&_anchor=tgWebAppData%3Dx&_external=1")
    assert response.status_code == 301
    assert response.headers["Location"] == "/country/TH?iccid=8944&iso=x&_anchor=tgWebAppData%3Dx&_external=1"
