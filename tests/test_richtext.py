"""The owner's help texts rendered as safe HTML (richtext.py, docs/settings.md "Help texts").

The formatting subset is checked on its own; then whole classes of hostile input — tags, attributes and quotes
breaking out of a link, other URL schemes, entity tricks, stray and nested `**`, control characters — are
combined into thousands of texts, and every rendering is read back with an HTML parser: only our tags and
attributes, links only to https:// hosts opening the way the support link does, and every character the owner
wrote shown as text, in order.
"""

from __future__ import annotations

import random
import re
from html.parser import HTMLParser
from urllib.parse import urlsplit

import pytest
from markupsafe import Markup

import richtext

ALLOWED = {"p": set(), "br": set(), "ul": set(), "li": set(), "strong": set(),
           "a": {"href", "target", "rel", "data-telegram-link", "data-external"}}
VOID = {"br"}

TAGS = ["<script>alert(1)</script>", "<SCRIPT SRC=//evil.example/x.js></SCRIPT>", "<img src=x onerror=alert(1)>",
        "<svg/onload=alert(1)>", "</p><script>alert(1)</script><p>", "<a href=\"javascript:alert(1)\">x</a>",
        "<!-- comment -->", "<![CDATA[x]]>", "<?xml x?>", "<!doctype html>", "<style>*{}</style>", "< script>",
        "<scr<script>ipt>", "<iframe src=data:text/html,x>", "</strong></li></ul>", "<b>bold</b>", "<br/>",
        "<textarea>", "<title>", "<plaintext>", "<strong onclick=alert(1)>x</strong>"]
BREAKOUTS = ["https://x.example/\"onmouseover=\"alert(1)", "https://x.example/'onfocus='alert(1)'",
             "https://x.example/`autofocus`", "https://x.example/><script>alert(1)</script>",
             "https://x.example/\\\"x", "https://x.example/?a=1&b=\"2\"", "https://\"x.example",
             "https://x.example/\ttab", "https://x.example/a\u00a0b", "@handle\"onclick=\"alert(1)",
             "https://t.me/x\"data-external=\"1", "https://x.example/**bold**", "https://t.me@evil.example/"]
SCHEMES = ["javascript:alert(1)", "JaVaScRiPt:alert(1)", "java\tscript:alert(1)", "java\nscript:alert(1)",
           " javascript:alert(1)", "data:text/html;base64,PHNjcmlwdD4=", "vbscript:msgbox(1)",
           "http://plain.example", "//evil.example/x", "https:/evil.example", "https:\\\\evil.example",
           "https://", "https://[::1", "https://javascript:alert(1)", "ftp://x.example", "file:///etc/passwd",
           "[link](javascript:alert(1))", "![img](data:image/png;base64,AAAA)", "<https://x.example>",
           "mailto:someone@example.com", "tg://resolve?domain=x"]
ENTITIES = ["&lt;script&gt;alert(1)&lt;/script&gt;", "&#60;script&#62;", "&#x3C;img src=x onerror=alert(1)&#x3E;",
            "&amp;lt;b&amp;gt;", "&quot;&apos;&#39;&#34;", "&#106;avascript:alert(1)", "&#0;&#xD800;", "&", "&amp",
            "https://x.example/&quot;onclick=&quot;alert(1)", "a &lt;b&gt; c", "&nbsp;&zwnj;&#8238;"]
STARS = ["**a", "a**", "**a **b** c**", "****", "** **", "***a***", "**a\nb**", "**<b>x</b>**",
         "**https://x.example**", "**@esims_help**", "** ** **", "*a*", "**", "**\n\n**", "x**y**z**"]
CONTROL = ["\x00", "\x0b", "\x1b[31m", "\x7f", "\u202e", "\u200b", "\u2028", "\ufeff", "\r", "\r\n", "\t"]
PLAIN = ["Hello", "Привет, **мир**", "@esims_help", "write to help@example.com", "@abc", "@" + "a" * 40,
         "https://esims.example/faq?x=1&y=2.", "(see https://en.wikipedia.org/wiki/Foo_(bar))", "- item",
         "  - indented item", "-not an item", "1. numbered", "# heading", "_i_", "`code`", "> quote", "---"]
CLASSES = {"tags": TAGS, "breakouts": BREAKOUTS, "schemes": SCHEMES, "entities": ENTITIES, "stars": STARS,
           "control": CONTROL}


class Reader(HTMLParser):
    """Reads rendered HTML as a browser's tokenizer would, failing on anything outside the subset."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.tags: list[str] = []
        self.text: list[str] = []
        self.links: list[tuple[dict[str, str | None], str]] = []
        self._label: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        assert tag in ALLOWED, tag
        self.tags.append(tag)
        names = [name for name, _ in attrs]
        assert set(names) <= ALLOWED[tag] and len(names) == len(set(names)), (tag, attrs)
        if tag == "a":
            assert "a" not in self.stack, "nested links"
            self._label = []
            self.links.append((dict(attrs), ""))
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        raise AssertionError(f"self-closing <{tag}/> is not ours")

    def handle_endtag(self, tag):
        assert self.stack and self.stack[-1] == tag, (tag, self.stack)  # balanced and properly nested
        self.stack.pop()
        if tag == "a":
            attrs, _ = self.links[-1]
            self.links[-1] = (attrs, "".join(self._label or []))
            self._label = None

    def handle_data(self, data):
        self.text.append(data)
        if self._label is not None:
            self._label.append(data)

    def handle_comment(self, data):
        raise AssertionError(f"comment: {data!r}")

    def handle_decl(self, decl):
        raise AssertionError(f"declaration: {decl!r}")

    def handle_pi(self, data):
        raise AssertionError(f"processing instruction: {data!r}")

    def unknown_decl(self, data):
        raise AssertionError(f"declaration: {data!r}")


def read(html: Markup) -> Reader:
    assert isinstance(html, Markup)
    reader = Reader()
    reader.feed(str(html))
    reader.close()
    assert not reader.stack, reader.stack
    assert reader.rawdata == "", reader.rawdata  # nothing left the tokenizer could not place
    return reader


def assert_safe(html: Markup, source: str) -> Reader:
    reader = read(html)
    for attrs, label in reader.links:
        href = attrs.get("href") or ""
        parts = urlsplit(href)
        assert parts.scheme == "https" and parts.hostname and href.startswith("https://"), href
        assert not re.search(r"[\s\"'<>`\\]", href), href
        assert attrs["target"] == "_blank" and attrs["rel"] == "noopener", attrs
        telegram = parts.hostname in ("t.me", "telegram.me")
        assert ("data-telegram-link" in attrs) == telegram and ("data-external" in attrs) != telegram, attrs
        assert label in (href, "@" + href.removeprefix("https://t.me/")), (label, href)
    # Every character the owner wrote is on the page as text, in order (markers and spacing aside).
    def visible(text: str) -> str:
        return re.sub(r"[\s*\-\x00-\x1f\x7f]", "", text)

    assert visible("".join(reader.text)) == visible(source), (source, str(html))
    return reader


def hostile_texts(count: int) -> list[str]:
    rng = random.Random(12)
    pool = [fragment for fragments in CLASSES.values() for fragment in fragments] + PLAIN
    texts = []
    for _ in range(count):
        lines = []
        for _ in range(rng.randint(1, 8)):
            words = [rng.choice(pool) for _ in range(rng.randint(1, 4))]
            prefix = rng.choice(["", "", "- ", "**", "  "])
            lines.append(prefix + rng.choice([" ", "", "**", " ** "]).join(words))
        texts.append(rng.choice(["\n", "\n\n", "\n \n", "\r\n"]).join(lines))
    return texts


# ---- the subset ---------------------------------------------------------------------------------------


def test_blank_lines_make_paragraphs_and_single_newlines_line_breaks():
    html = richtext.blocks("First line\nsecond line\n\n\n  \nNext paragraph\n")
    assert html == Markup("<p>First line<br>second line</p><p>Next paragraph</p>")


def test_lines_starting_with_a_dash_and_space_are_a_list():
    html = richtext.blocks("Before:\n- one\n  - two\n-three\nafter")
    assert html == Markup("<p>Before:</p><ul><li>one</li><li>two</li></ul><p>-three<br>after</p>")


def test_double_stars_make_bold_within_a_line():
    assert richtext.blocks("a **b** c **d**") == Markup("<p>a <strong>b</strong> c <strong>d</strong></p>")


def test_https_urls_and_handles_open_as_the_support_link_does():
    html = richtext.blocks("Write @esims_help or see https://t.me/esims_news, https://esims.example/faq?a=1&b=2.")
    assert html == Markup(
        '<p>Write <a href="https://t.me/esims_help" target="_blank" rel="noopener" data-telegram-link>@esims_help</a>'
        ' or see <a href="https://t.me/esims_news" target="_blank" rel="noopener" data-telegram-link>'
        'https://t.me/esims_news</a>, <a href="https://esims.example/faq?a=1&amp;b=2" target="_blank" '
        'rel="noopener" data-external>https://esims.example/faq?a=1&amp;b=2</a>.</p>')


def test_faq_entries_are_a_question_line_and_an_answer():
    entries = richtext.faq("When does it **start**?\nOn arrival.\n- Wi-Fi first\n\nJust a note")
    assert entries == [
        richtext.Entry(Markup("When does it <strong>start</strong>?"),
                       Markup("<p>On arrival.</p><ul><li>Wi-Fi first</li></ul>")),
        richtext.Entry(Markup("Just a note"), Markup("")),
    ]


@pytest.mark.parametrize("text", ["", "   ", "\n\n\n", "\r\n \r\n", None])
def test_an_empty_text_renders_nothing(text):
    assert richtext.blocks(text) == Markup("") and richtext.faq(text) == []


# ---- hostile input, class by class --------------------------------------------------------------------


def assert_safe_faq(text: str) -> None:
    entries = richtext.faq(text)
    html = Markup("").join(Markup("<p>{}</p>{}").format(question, answer) for question, answer in entries)
    assert_safe(html, text)


@pytest.mark.parametrize("kind", sorted(CLASSES))
def test_each_class_of_hostile_input_is_shown_as_text(kind):
    for fragment in CLASSES[kind]:
        for text in (fragment, f"**{fragment}**", f"- {fragment}", f"see {fragment} now", f"{fragment}\n\n{fragment}",
                     f"**a {fragment}", f"{fragment} b**", f"Question {fragment}?\n- {fragment}\n{fragment}"):
            assert_safe(richtext.blocks(text), text)
            assert_safe_faq(text)


def test_tags_never_reach_the_page_as_tags():
    for fragment in TAGS:
        reader = assert_safe(richtext.blocks(fragment), fragment)
        assert reader.tags == ["p"], (fragment, reader.tags)
        assert "".join(reader.text) == fragment


def test_only_https_urls_become_links():
    for fragment in SCHEMES:
        reader = assert_safe(richtext.blocks(fragment), fragment)
        hrefs = [attrs["href"] for attrs, _ in reader.links]
        assert all(href in fragment for href in hrefs), (fragment, hrefs)  # a link is a URL the owner wrote
        if fragment not in ("<https://x.example>",):
            assert hrefs == [], (fragment, hrefs)


def test_entities_are_shown_as_written_not_decoded():
    for fragment in ENTITIES:
        reader = assert_safe(richtext.blocks(fragment), fragment)
        assert "".join(reader.text) == fragment.replace("\u202e", ""), fragment


def test_a_quote_or_bracket_ends_a_link_and_stays_text():
    for fragment in BREAKOUTS:
        reader = assert_safe(richtext.blocks(fragment), fragment)
        for attrs, _ in reader.links:
            assert set(attrs) in ({"href", "target", "rel", "data-external"},
                                  {"href", "target", "rel", "data-telegram-link"}), attrs
    # A URL naming t.me only as a user name goes to the host it names, outside Telegram.
    (attrs, _), = read(richtext.blocks("https://t.me@evil.example/")).links
    assert "data-external" in attrs


def test_bold_is_always_balanced_and_an_unpaired_marker_is_text():
    cases = {"**a": "**a", "a**": "a**", "****": "****", "** **": "** **", "**a\nb**": "**a<br>b**",
             "**a **b** c**": "<strong>a </strong>b<strong> c</strong>", "***a***": "<strong>*a</strong>*",
             "x**y**z**": "x<strong>y</strong>z**", "**<b>x</b>**": "<strong>&lt;b&gt;x&lt;/b&gt;</strong>"}
    for text, inner in cases.items():
        assert richtext.blocks(text) == Markup(f"<p>{inner}</p>"), text
    for text in STARS:
        assert_safe(richtext.blocks(text), text)


def test_control_characters_are_dropped_and_line_ends_of_every_kind_read_alike():
    assert richtext.blocks("a\x00b\x1b[1mc\x7f") == Markup("<p>ab[1mc</p>")
    assert richtext.blocks("a\r\nb\r\rc") == richtext.blocks("a\nb\n\nc") == Markup("<p>a<br>b</p><p>c</p>")


def test_handles_are_telegram_usernames_only():
    links = lambda text: [label for _, label in read(richtext.blocks(text)).links]  # noqa: E731
    assert links("@esims_help, @abcd and @abc") == ["@esims_help", "@abcd"]
    assert links("help@example.com, @" + "a" * 33 + ", @@double, @_under, @1digit") == []


def test_thousands_of_mixed_hostile_texts_render_safely():
    for text in hostile_texts(3000):
        assert_safe(richtext.blocks(text), text)
        for question, answer in richtext.faq(text):
            read(question)
            read(answer)
