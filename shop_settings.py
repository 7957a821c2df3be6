"""The owner's shop settings (issue 12, docs/settings.md): the price settings, the support contact, the help
page's texts and the promo codes, edited in the admin console and kept in `data/settings.json`.

The file holds only what the owner saved; the environment (`config.Settings`) and the built-in texts are the
defaults. It is one small JSON object written under a file lock by atomic replace, with a copy of the previous
version kept in `data/backups/settings/` and every change recorded in its `history`. Every process reads it
again when it changes (a `stat()` per use), so a change applies in every worker at once. Validation is here;
what a promo code means is `promo.py`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from assets import translations
from config import Settings
from durable import atomic_write
from pricing import PriceSettings
from storage import JsonStore, StorageError

log = logging.getLogger(__name__)

PRICE_KEYS = ("markup", "stars_markup", "stars_fee", "stars_usd_rate")
TEXTS = ("faq", "refund_policy")
LANGUAGES = ("en", "ru")
KEYS = (*PRICE_KEYS, "country_markups", "support_contact", "texts")
FAQ_TOPICS = ("start", "sim", "twice", "topup", "stars")  # the built-in FAQ, from static/i18n.json
TEXT_MAX = 5000
CONTACT_MAX = 200
HISTORY_KEPT = 500
HISTORY_SHOWN = 50
BACKUPS_KEPT = 100
HISTORY_VALUE_MAX = 160  # a long text is shown shortened in the history


class SettingsInvalid(ValueError):
    """Values the owner sent that cannot be saved: `fields` maps each one to the reason, in the owner's words."""

    def __init__(self, fields: dict[str, str], message: str = "Some values were not saved: see each field.") -> None:
        super().__init__(message)
        self.fields = fields
        self.message = message


# ---- reading values ----------------------------------------------------------------------------------


DECIMALS_MAX = 6  # places after the point: 0.013 USD per Star, 12.5 % — never an exponent or a tiny fraction
DIGITS_MAX = 12


def decimal_value(value: Any, places: int = DECIMALS_MAX) -> Decimal | None:
    """A number the owner sent (string or JSON number) with at most `places` decimals, or None if it is not one.
    Plain notation only: "1e-10000" would pass a range check and then price a plan at 10^10000 Stars."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float, Decimal)):
        return None
    written = str(value).strip()
    if not written or len(written) > 24 or "e" in written.lower():
        return None
    try:
        number = Decimal(written)
    except InvalidOperation:
        return None
    if not number.is_finite():
        return None
    sign, digits, exponent = number.normalize().as_tuple()
    if -exponent > places or len(digits) > DIGITS_MAX:  # type: ignore[operator]
        return None
    return number + 0  # no "-0"


def text(value: Decimal) -> str:
    """A Decimal as the owner wrote it, without exponent or trailing zeros: "1.29", "10", "0.013"."""
    return f"{value.normalize():f}"


_PRICE_RULES: dict[str, tuple[Decimal, bool, Decimal, bool, str]] = {
    # key: (low, low included, high, high included, what it is)
    "markup": (Decimal(1), True, Decimal(10), True,
               "Must be from 1 to 10 (1.29 = 29 % over cost): below 1 the shop sells under cost."),
    "stars_markup": (Decimal(1), True, Decimal(10), True, "Must be from 1 to 10 (1.05 = 5 % more for Stars)."),
    "stars_fee": (Decimal(0), True, Decimal("0.5"), True,
                  "Must be from 0 to 0.5: Telegram's share of a Stars payment, e.g. 0.25."),
    "stars_usd_rate": (Decimal("0.001"), True, Decimal("0.1"), True,
                       "Must be from 0.001 to 0.1: USD per Star, e.g. 0.013."),
}


def _price_value(key: str, value: Any) -> tuple[Decimal | None, str | None]:
    number = decimal_value(value)
    low, low_in, high, high_in, why = _PRICE_RULES[key]
    if number is None:
        return None, f"Must be a plain number with at most {DECIMALS_MAX} decimals. " + why
    if number < low or (number == low and not low_in) or number > high or (number == high and not high_in):
        return None, why
    return number, None


COUNTRY_PERCENT_MIN = Decimal(-50)
COUNTRY_PERCENT_MAX = Decimal(1000)


def _country_markups(value: Any, markup: Decimal, errors: dict[str, str]) -> dict[str, Decimal]:
    if not isinstance(value, Mapping):
        errors["country_markups"] = 'Must be an object of country code and percent, e.g. {"TH": 10}.'
        return {}
    clean: dict[str, Decimal] = {}
    for raw_code, raw_percent in value.items():
        code = str(raw_code).strip().upper()
        field = f"country_markups.{str(raw_code)[:8]}"
        if len(code) != 2 or not ("A" <= code[0] <= "Z" and "A" <= code[1] <= "Z"):
            errors[field] = "Must be a two-letter country code, e.g. TH."
            continue
        percent = decimal_value(raw_percent, places=2)
        if percent is None:
            errors[field] = "Must be a number of percent with at most 2 decimals, e.g. 10 or 12.5."
        elif not COUNTRY_PERCENT_MIN <= percent <= COUNTRY_PERCENT_MAX:
            errors[field] = f"Must be from {COUNTRY_PERCENT_MIN} to {COUNTRY_PERCENT_MAX} percent."
        elif markup * (1 + percent / 100) < 1:
            errors[field] = f"Too low: with the base markup {text(markup)} the shop would sell under cost."
        else:
            clean[code] = percent
    return clean


def _optional_text(value: Any, limit: int, field: str, errors: dict[str, str]) -> str | None:
    """The owner's text, None to put the default back (null or empty), or an error."""
    if value is None:
        return None
    if not isinstance(value, str):
        errors[field] = "Must be text."
        return None
    value = value.replace("\r\n", "\n").strip()
    if len(value) > limit:
        errors[field] = f"At most {limit} characters."
        return None
    if any(ord(ch) < 32 and ch not in "\n\t" for ch in value):
        errors[field] = "Must not contain control characters."
        return None
    return value or None


# ---- the file ----------------------------------------------------------------------------------------


class ShopSettings:
    """The settings in force: the owner's saved values over the environment's defaults."""

    def __init__(self, path: str | os.PathLike, defaults: Settings, lock_timeout: float = 10.0,
                 backups: str | os.PathLike | None = None) -> None:
        self.file = JsonStore(path, lock_timeout=lock_timeout, before_replace=self._keep_backup)
        self.backups = Path(backups) if backups else self.file.path.parent / "backups" / "settings"
        self.env = defaults
        self._last_good: dict[str, Any] = {}
        self._problem: str | None = None
        self._derived: dict[str, tuple[dict[str, Any], Any]] = {}  # name -> (the data it came from, value)

    # -- reads --

    def data(self) -> dict[str, Any]:
        """The file's contents (cached until it changes; never modify). A file that cannot be read leaves the
        last good contents in force and says so in the log: a bad hand edit must not stop the shop."""
        try:
            data = self.file.read()
            if data is not self._last_good:
                _check_stored(data)  # wrong types from a hand edit are as unusable as broken JSON
                self._last_good = data
                self._problem = None
        except (StorageError, ValueError, TypeError, AttributeError) as exc:
            if str(exc) != self._problem:  # said once, not on every request
                self._problem = str(exc)
                log.error("shop settings: %s; using the last good settings", exc)
        return self._last_good

    def derived(self, name: str, make: Callable[[dict[str, Any]], Any]) -> Any:
        """`make(data)`, made again only when the settings change (the help page's HTML, the price settings)."""
        data = self.data()
        cached = self._derived.get(name)
        if cached is None or cached[0] is not data:
            # The data object stays the same until the file changes, so its identity stamps what came from it.
            cached = self._derived[name] = (data, make(data))
        return cached[1]

    def prices(self) -> PriceSettings:
        """The price settings in force: the same object until they change (the catalogue reprices on a new one)."""
        return self.derived("prices", self._make_prices)

    def _make_prices(self, data: dict[str, Any]) -> PriceSettings:
        values = data.get("values", {})
        env = PriceSettings.from_settings(self.env)
        numbers = {key: Decimal(values[key]) if key in values else getattr(env, key) for key in PRICE_KEYS}
        country = values.get("country_markups")
        markups = ({code: Decimal(p) for code, p in country.items()} if country is not None
                   else dict(env.country_markup_percent))
        made = PriceSettings(**numbers, country_markup_percent=markups)
        previous = self._derived.get("prices")
        return previous[1] if previous and previous[1] == made else made

    def support_contact(self) -> str:
        return self.data().get("values", {}).get("support_contact") or self.env.support_contact

    def texts(self) -> dict[str, dict[str, str]]:
        """The help texts in force: {"faq": {"en": …, "ru": …}, "refund_policy": {…}} (the owner's, else built-in)."""
        return self.derived("texts", self._make_texts)

    def _make_texts(self, data: dict[str, Any]) -> dict[str, dict[str, str]]:
        saved = data.get("values", {}).get("texts", {})
        built_in = default_texts()
        return {name: {lang: saved.get(name, {}).get(lang) or built_in[name][lang] for lang in LANGUAGES}
                for name in TEXTS}

    def custom_texts(self) -> dict[str, dict[str, bool]]:
        saved = self.data().get("values", {}).get("texts", {})
        return {name: {lang: bool(saved.get(name, {}).get(lang)) for lang in LANGUAGES} for name in TEXTS}

    def promocodes(self) -> dict[str, dict[str, Any]]:
        """The owner's promo codes by key (`promo.key(code)`), as stored (never modify)."""
        return self.data().get("promocodes", {})

    def view(self) -> dict[str, Any]:
        """GET /api/admin/settings."""
        prices = self.prices()
        env = PriceSettings.from_settings(self.env)
        return {
            **{key: text(getattr(prices, key)) for key in PRICE_KEYS},
            "country_markups": {c: text(p) for c, p in sorted(prices.country_markup_percent.items())},
            "support_contact": self.support_contact(),
            "texts": self.texts(),
            "custom_texts": self.custom_texts(),
            "defaults": {
                **{key: text(getattr(env, key)) for key in PRICE_KEYS},
                "country_markups": {c: text(p) for c, p in sorted(env.country_markup_percent.items())},
                "support_contact": self.env.support_contact,
                "texts": default_texts(),
            },
            "history": list(reversed(self.data().get("history", [])[-HISTORY_SHOWN:])),
        }

    # -- checking what the owner sent --

    def proposed(self, body: Any) -> tuple[PriceSettings, dict[str, Any]]:
        """The price settings `body` (PUT's subset) would put in force, and the values to save; or SettingsInvalid."""
        if not isinstance(body, dict):
            raise SettingsInvalid({}, "Send a JSON object with the settings to change.")
        errors: dict[str, str] = {key: "Unknown setting." for key in body if key not in KEYS}
        current = self.prices()
        numbers: dict[str, Decimal] = {}
        for key in PRICE_KEYS:
            if key in body:
                number, error = _price_value(key, body[key])
                if error:
                    errors[key] = error
                else:
                    numbers[key] = number  # type: ignore[assignment]
        markup = numbers.get("markup", current.markup)
        save: dict[str, Any] = {key: text(value) for key, value in numbers.items()}
        country = current.country_markup_percent
        if "country_markups" in body:
            country = _country_markups(body["country_markups"], markup, errors)
            save["country_markups"] = {c: text(p) for c, p in sorted(country.items())}
        elif "markup" in numbers:  # a lower base markup must not leave a country below cost
            for code, percent in country.items():
                if markup * (1 + percent / 100) < 1:
                    errors[f"country_markups.{code}"] = (f"Too low with the base markup {text(markup)}: "
                                                         "the shop would sell under cost.")
        if "support_contact" in body:
            save["support_contact"] = _optional_text(body["support_contact"], CONTACT_MAX, "support_contact", errors)
            if save["support_contact"] and "\n" in save["support_contact"]:
                errors["support_contact"] = "One line only."
        if "texts" in body:
            texts = body["texts"]
            if not isinstance(texts, dict):
                errors["texts"] = 'Must be an object like {"faq": {"en": "…", "ru": "…"}}.'
            else:
                save["texts"] = {}
                for name, by_lang in texts.items():
                    if name not in TEXTS:
                        errors[f"texts.{str(name)[:32]}"] = "Unknown text: faq or refund_policy."
                    elif not isinstance(by_lang, dict) or any(lang not in LANGUAGES for lang in by_lang):
                        errors[f"texts.{name}"] = 'Must be an object like {"en": "…", "ru": "…"}.'
                    else:
                        save["texts"][name] = {lang: _optional_text(value, TEXT_MAX, f"texts.{name}.{lang}", errors)
                                               for lang, value in by_lang.items()}
        if errors:
            raise SettingsInvalid(errors)
        prices = PriceSettings(**{key: numbers.get(key, getattr(current, key)) for key in PRICE_KEYS},
                               country_markup_percent=dict(country))
        return prices, save

    # -- changes --

    @contextmanager
    def change(self) -> Iterator[dict[str, Any]]:
        """Hold the file's lock and yield its contents to change; on the way out the new file replaces the old
        one (if it changed), a copy of which is kept first (`_keep_backup`). The caller records what changed with
        `record()`."""
        with self.file.transaction() as data:
            yield data

    def update(self, body: Any, who: str) -> dict[str, Any]:
        """PUT /api/admin/settings: validate everything, then save all of it or nothing; returns view()."""
        with self.change() as data:
            _, save = self.proposed(body)  # under the lock: against what another admin may just have saved
            values = data.setdefault("values", {})
            changes: dict[str, Any] = {}
            for key, value in save.items():
                if key == "texts":
                    texts = values.setdefault("texts", {})
                    for name, by_lang in value.items():
                        for lang, new in by_lang.items():
                            old = texts.get(name, {}).get(lang)
                            if old != new:
                                changes[f"texts.{name}.{lang}"] = {"from": _short(old), "to": _short(new)}
                                if new is None:
                                    texts.get(name, {}).pop(lang, None)
                                else:
                                    texts.setdefault(name, {})[lang] = new
                    for name in [n for n, by_lang in texts.items() if not by_lang]:
                        del texts[name]
                elif key == "country_markups":
                    old_map = values.get("country_markups", {})
                    for code in sorted(set(old_map) | set(value)):
                        if old_map.get(code) != value.get(code):
                            changes[f"country_markups.{code}"] = {"from": old_map.get(code), "to": value.get(code)}
                    values[key] = value
                else:
                    old = values.get(key)
                    if old != value:
                        changes[key] = {"from": old, "to": value}
                    if value is None:
                        values.pop(key, None)
                    else:
                        values[key] = value
            record(data, who, changes)
        return self.view()

    def _keep_backup(self, before: str) -> None:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        atomic_write(self.backups / f"settings-{stamp}-{secrets.token_hex(2)}.json", before.encode())
        kept = sorted(p for p in self.backups.glob("settings-*.json"))
        for old in kept[:-BACKUPS_KEPT]:
            with contextlib.suppress(FileNotFoundError):
                old.unlink()


def _check_stored(data: dict[str, Any]) -> None:
    """A ValueError naming the first stored value the shop could not use (the file was edited by hand)."""
    values = data.get("values", {})
    if not isinstance(values, dict):
        raise ValueError("settings.json: values must be an object")
    for key in PRICE_KEYS:
        if key in values and decimal_value(values[key]) is None:
            raise ValueError(f"settings.json: {key} is not a number: {str(values[key])[:40]!r}")
    country = values.get("country_markups", {})
    if not isinstance(country, dict) or any(decimal_value(p, 2) is None for p in country.values()):
        raise ValueError("settings.json: country_markups must map country codes to percents")
    texts = values.get("texts", {})
    if not isinstance(texts, dict) or not all(isinstance(t, dict) and all(isinstance(v, str) for v in t.values())
                                              for t in texts.values()):
        raise ValueError("settings.json: texts must map each text to its languages' strings")
    if not isinstance(values.get("support_contact", ""), str):
        raise ValueError("settings.json: support_contact must be text")
    codes = data.get("promocodes", {})
    if not isinstance(codes, dict) or not all(
            isinstance(c, dict) and isinstance(c.get("id"), str) and isinstance(c.get("code"), str)
            and (decimal_value(c.get("percent_off") or 0) is not None)
            and (decimal_value(c.get("amount_off_usd") or 0) is not None) for c in codes.values()):
        raise ValueError("settings.json: promocodes must be the codes as the console saves them")


def record(data: dict[str, Any], who: str, changes: dict[str, Any]) -> None:
    """Add one entry to the file's history: who changed what, from → to, and when."""
    if not changes:
        return
    history = data.setdefault("history", [])
    history.append({"at": datetime.now(UTC).isoformat(timespec="seconds"), "by": who, "changes": changes})
    del history[:-HISTORY_KEPT]


def _short(value: Any) -> Any:
    if isinstance(value, str) and len(value) > HISTORY_VALUE_MAX:
        return value[:HISTORY_VALUE_MAX - 1] + "…"
    return value


def default_texts() -> dict[str, dict[str, str]]:
    """The built-in help texts, in the owner's editing format (docs/settings.md), from static/i18n.json."""
    table = translations()

    def t(lang: str, key: str) -> str:
        return table.get(lang, {}).get(key) or table["en"][key]

    return {
        "faq": {lang: "\n\n".join(f"{t(lang, 'q_' + topic)}\n{t(lang, 'a_' + topic)}" for topic in FAQ_TOPICS)
                for lang in LANGUAGES},
        "refund_policy": {lang: f"{t(lang, 'refund_auto')}\n\n{t(lang, 'refund_request')}" for lang in LANGUAGES},
    }
