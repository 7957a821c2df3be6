"""The owner's help texts (docs/settings.md, "Help texts") as safe HTML: plain text with a small formatting subset.

Every character the owner wrote reaches the page through `markupsafe.escape`; the only markup is the few tags
written here, with attributes of our own. The subset: a blank line separates blocks (paragraphs; in the FAQ,
entries whose first line is the question and the rest the answer), lines within a block are kept as line
breaks, a line starting with "- " is a list item, `**bold**` within a line, and `https://…` URLs and Telegram
`@handles` become links that open the way the help page's support link does (t.me through Telegram,
`data-telegram-link`; other sites outside it, `data-external`). Nothing else is read as formatting: tags,
entities, other schemes (`javascript:`, `data:`, `http:`) and stray `**` are shown as the text they are.
The text is split into its pieces (lines, links, bold markers) before escaping rather than after, so a link
ends where the owner's URL ends rather than at the first `&` an entity brought in.
"""

from __future__ import annotations

import re
from typing import NamedTuple
from urllib.parse import urlsplit

from markupsafe import Markup, escape

# A URL runs to the first space, quote, angle bracket or backslash (which browsers would read as a slash).
_URL = r"https://[^\s<>\"'`\\]+"
# A Telegram username (5–32 characters) not glued to a word before it (an e-mail address) or after it.
_HANDLE = r"(?<![\w@/])@([A-Za-z][A-Za-z0-9_]{3,31})(?![\w@])"
_LINK = re.compile(f"(?P<url>{_URL})|{_HANDLE}")
_TRAILING = ".,;:!?*'\")]}»…"  # "*": a URL at the end of **bold**
# Control characters other than tab and newline have no place in a help text (and NUL none in HTML).
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_BLANK = re.compile(r"\n[ \t]*\n")
_BOLD = "**"
_TELEGRAM_HOSTS = ("t.me", "telegram.me")


class Entry(NamedTuple):
    """A FAQ entry: the question (inline formatting only) and its answer (paragraphs and lists; may be empty)."""

    question: Markup
    answer: Markup


def blocks(text: str) -> Markup:
    """The text as paragraphs and lists (the refund policy)."""
    return Markup("").join(_block(lines) for lines in _blocks(text))


def faq(text: str) -> list[Entry]:
    """The FAQ's entries: each block's first line is the question, the rest its answer."""
    return [Entry(_inline(lines[0]), _block(lines[1:])) for lines in _blocks(text)]


def _blocks(text: str) -> list[list[str]]:
    """The text's blocks (separated by blank lines), each a list of its non-empty lines, right-trimmed."""
    text = _CONTROL.sub("", (text or "").replace("\r\n", "\n").replace("\r", "\n"))
    found = []
    for chunk in _BLANK.split(text):
        lines = [line.rstrip() for line in chunk.split("\n") if line.strip()]
        if lines:
            found.append(lines)
    return found


def _is_item(line: str) -> bool:
    return line.lstrip().startswith("- ")


def _block(lines: list[str]) -> Markup:
    """Runs of list items as a <ul>, runs of other lines as a <p> with line breaks."""
    out: list[Markup] = []
    at = 0
    while at < len(lines):
        item = _is_item(lines[at])
        end = at
        while end < len(lines) and _is_item(lines[end]) == item:
            end += 1
        run = lines[at:end]
        if item:
            items = Markup("").join(Markup("<li>{}</li>").format(_inline(line.lstrip()[2:])) for line in run)
            out.append(Markup("<ul>{}</ul>").format(items))
        else:
            out.append(Markup("<p>{}</p>").format(Markup("<br>").join(_inline(line.strip()) for line in run)))
        at = end
    return Markup("").join(out)


def _link(match: re.Match[str]) -> tuple[str, Markup]:
    """(the text left over after the link, the link) for a URL or @handle match."""
    url = match.group("url")
    if url is None:
        handle = match.group(2)
        return "", _anchor(f"https://t.me/{handle}", "@" + handle, telegram=True)
    rest = ""
    # Punctuation ending a sentence is not part of the URL; a ")" is, when the URL opened one.
    while url and url[-1] in _TRAILING and not (url[-1] == ")" and url.count("(") >= url.count(")")):
        rest = url[-1] + rest
        url = url[:-1]
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (read to refuse a port that is not a number)
        host = parts.hostname
    except ValueError:  # an unclosed "[" of an IPv6 address, a port that is not a number
        host = None
    if not host:
        return match.group(0), Markup("")
    return rest, _anchor(url, url, telegram=host.lower() in _TELEGRAM_HOSTS)


def _anchor(href: str, label: str, telegram: bool) -> Markup:
    # target=_blank as on the help page's support link: telegram-web-app.js leaves the click to static/js.
    marker = Markup(" data-telegram-link") if telegram else Markup(" data-external")
    return Markup('<a href="{}" target="_blank" rel="noopener"{}>{}</a>').format(href, marker, label)


def _inline(line: str) -> Markup:
    """One line: links, and `**` markers paired left to right into <strong> (an unpaired or empty pair is text)."""
    pieces: list[str | Markup | None] = []  # text, a link, or None for a `**` marker
    at = 0
    for match in _LINK.finditer(line):
        _text(pieces, line[at:match.start()])
        rest, link = _link(match)
        if link:
            pieces.append(link)
        _text(pieces, rest)
        at = match.end()
    _text(pieces, line[at:])

    markers = [index for index, piece in enumerate(pieces) if piece is None]
    bold = set()
    for first, second in zip(markers[0::2], markers[1::2], strict=False):
        if any(piece.strip() for piece in pieces[first + 1:second]):
            bold.update((first, second))
    out, opened = [], False
    for index, piece in enumerate(pieces):
        if piece is None:
            if index in bold:
                out.append(Markup("</strong>" if opened else "<strong>"))
                opened = not opened
            else:
                out.append(escape(_BOLD))
        else:
            out.append(escape(piece))  # a link is Markup already; text is escaped here, once
    return Markup("").join(out)


def _text(pieces: list[str | Markup | None], text: str) -> None:
    """Add plain text, with each `**` as a marker of its own."""
    parts = text.split(_BOLD)
    for index, part in enumerate(parts):
        if index:
            pieces.append(None)
        if part:
            pieces.append(part)
