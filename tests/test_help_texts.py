"""The help page's FAQ, refund policy and support contact as the owner writes them in the admin console (issue 12,
docs/settings.md "Help texts"): each language's text in force, rendered safely by richtext.py, shown in the
buyer's language; the built-in texts, re-translated like every other, while the owner has written none."""

from __future__ import annotations

import re

import pytest

import extensions
from conftest import ADMIN_TOKEN

OWNER = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
RU_FAQ = ("Как **быстро** придёт eSIM?\nСразу после оплаты. <script>alert(1)</script>\n- Пишите @esims_help\n\n"
          "Можно вернуть деньги?\nДа, см. https://esims.example/refund?a=1&b=2.")


def put_settings(client, body: dict) -> dict:
    answer = client.put("/api/admin/settings", json=body, headers=OWNER)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    return answer.get_json()


def help_page(client, lang: str) -> str:
    return client.get(f"/help?lang={lang}").get_data(as_text=True)


def shown(html: str, name: str) -> list[tuple[str, bool, str]]:
    """(language, hidden, inner HTML) of each language's copy of the `faq` or `refund` card on the page's <main>."""
    main = html.split('<main id="main">', 1)[1].split("</main>", 1)[0]
    kind = "faq" if name == "faq" else "prose owner-text"
    opening = re.compile(rf'<div class="card {kind}" lang="(\w+)" data-lang-only="\1"( hidden)?>')
    found = []
    for match in opening.finditer(main):
        card = re.split(r"\n<(?:div class=\"card|h2)", main[match.end():], maxsplit=1)[0]
        found.append((match.group(1), bool(match.group(2)), card.strip().removesuffix("</div>").strip()))
    return found


def test_until_the_owner_writes_one_the_built_in_texts_are_re_translated_as_before(client):
    html = help_page(client, "ru")
    assert "data-lang-only" not in html
    assert 'data-i18n="q_start">Когда начинает действовать тариф?</summary>' in html
    assert 'data-i18n="refund_auto">' in html


def test_the_owners_russian_faq_is_shown_in_russian_and_the_built_in_one_in_english(client):
    view = put_settings(client, {"texts": {"faq": {"ru": RU_FAQ}}})
    assert view["custom_texts"]["faq"] == {"en": False, "ru": True}

    russian = shown(help_page(client, "ru"), "faq")
    assert [(lang, hidden) for lang, hidden, _ in russian] == [("en", True), ("ru", False)]
    faq = russian[1][2]
    assert "<summary>Как <strong>быстро</strong> придёт eSIM?</summary>" in faq
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in faq and "<script>" not in faq
    assert ('<li>Пишите <a href="https://t.me/esims_help" target="_blank" rel="noopener" data-telegram-link>'
            "@esims_help</a></li>") in faq
    assert ('<a href="https://esims.example/refund?a=1&amp;b=2" target="_blank" rel="noopener" data-external>'
            "https://esims.example/refund?a=1&amp;b=2</a>.") in faq
    # English: the built-in FAQ, as the owner's editor shows it, rendered the same way.
    assert "<summary>When does my plan start?</summary>" in russian[0][2]

    english = shown(help_page(client, "en"), "faq")
    assert [(lang, hidden) for lang, hidden, _ in english] == [("en", False), ("ru", True)]


def test_a_refund_policy_in_one_language_leaves_the_other_built_in(client):
    put_settings(client, {"texts": {"refund_policy": {"en": "Refunds within **14 days**.\n\n- unused eSIMs only"}}})
    cards = dict((lang, (hidden, inner)) for lang, hidden, inner in shown(help_page(client, "en"), "refund"))
    assert cards["en"] == (False, "<p>Refunds within <strong>14 days</strong>.</p><ul><li>unused eSIMs only</li></ul>")
    assert cards["ru"][0] is True and "звёзды вернутся автоматически" in cards["ru"][1]
    # The FAQ nobody changed keeps its built-in markup.
    assert 'data-i18n="q_start"' in help_page(client, "en")


def test_putting_the_built_in_text_back_restores_the_built_in_page(client):
    put_settings(client, {"texts": {"faq": {"ru": RU_FAQ}}})
    put_settings(client, {"texts": {"faq": {"ru": None}}})
    html = help_page(client, "ru")
    assert "data-lang-only" not in html and "быстро" not in html


def test_every_page_carries_the_owners_texts_for_the_router(client):
    put_settings(client, {"texts": {"faq": {"ru": RU_FAQ}}})
    html = client.get("/my-esims?lang=ru").get_data(as_text=True)
    template = html.split('<template id="view-help">', 1)[1].split("</template>", 1)[0]
    assert "Как <strong>быстро</strong> придёт eSIM?" in template


@pytest.mark.parametrize("text", [
    "<script>alert(1)</script>", "<img src=x onerror=alert(1)>", '"><svg onload=alert(1)>', "</details></div><b>x",
    "[x](javascript:alert(1)) javascript:alert(1) data:text/html,<b>x</b>", "&lt;script&gt; &#60;b&#62;",
    "**unclosed <i>x</i>", "https://x.example/\"onmouseover=\"alert(1)", "<!-- x --> <![CDATA[x]]>",
])
def test_hostile_owner_texts_never_add_markup_to_the_page(client, text):
    def markup(html: str) -> dict[str, list[str]]:
        tags = re.findall(r"<([a-z][a-z0-9]*)([^>]*)>", html)
        return {
            "tags": sorted({name for name, _ in tags}),
            "handlers": [attrs for _, attrs in tags if re.search(r"\son\w+=", attrs)],
            "odd links": sorted(set(re.findall(r'href="(?!https://|/)([^"]*)"', html))),
            "comments": re.findall(r"<!--|<!\[CDATA\[", html),
            "scripts": re.findall(r"<script[^>]*>", html, re.I),
        }

    baseline = markup(client.get("/help?lang=en").get_data(as_text=True))
    put_settings(client, {"texts": {"faq": {"en": f"Q {text}\nA {text}"}, "refund_policy": {"en": text}}})
    html = client.get("/help?lang=en").get_data(as_text=True)
    assert "data-lang-only" in html
    found = markup(html)
    assert set(found["tags"]) - set(baseline["tags"]) <= {"strong"}, found["tags"]
    assert {key: value for key, value in found.items() if key != "tags"} == \
        {key: value for key, value in baseline.items() if key != "tags"}


@pytest.mark.parametrize("contact, href, marker", [
    ("@esims_owner", "https://t.me/esims_owner", "data-telegram-link"),
    ("https://esims.example/help", "https://esims.example/help", "data-external"),
    ("mailto:help@esims.example", "mailto:help@esims.example", None),
])
def test_the_owners_support_contact_is_the_one_the_help_page_gives(client, app, contact, href, marker):
    put_settings(client, {"support_contact": contact})
    assert extensions.shop(app).support_contact() == contact
    html = help_page(client, "en")
    support = html.split('id="support">', 1)[1].split("</div>", 1)[0]
    tags = re.findall(r"<a [^>]*>", support)
    assert tags and all(f'href="{href}"' in tag for tag in tags), tags
    for tag in tags:
        assert ("data-telegram-link" in tag) == (marker == "data-telegram-link"), tag
        assert ("data-external" in tag) == (marker == "data-external"), tag
    put_settings(client, {"support_contact": None})
    assert extensions.settings(app).support_contact in help_page(client, "en")


def test_a_plain_text_support_contact_is_shown_as_text(client):
    put_settings(client, {"support_contact": "Call <b>us</b>"})
    support = help_page(client, "en").split('id="support">', 1)[1].split("</div>", 1)[0]
    assert "Call &lt;b&gt;us&lt;/b&gt;" in support and "<a " not in support
