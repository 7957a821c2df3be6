"""Configuration: reads the environment and `.env` once at start-up into one plain dict (SPEC §3).

`load_config(overrides)` is the only place that knows variable names, defaults, demo mode and what
production refuses to start without. Everything else reads `app.config[...]`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from dotenv import dotenv_values

ROOT = Path(__file__).resolve().parent

DEMO_ESIMGO_KEY = "sandbox-key"
# Not a secret: a well-formed token the Bot API sandbox accepts, so the demo can sign initData.
DEMO_BOT_TOKEN = "1000000001:DEMO-esimsdata-sandbox-token"

DEFAULTS: dict[str, Any] = {
    "APP_ENV": "development",
    "TELEGRAM_BOT_TOKEN": "",
    "TELEGRAM_WEBHOOK_SECRET": "",
    "TELEGRAM_API_URL": "https://api.telegram.org",
    "ESIMGO_API_KEY": "",
    "ESIMGO_BASE_URL": "https://api.esim-go.com/v2.4",
    "PUBLIC_BASE_URL": "",
    "DATA_DIR": str(ROOT / "data"),
    "ADMIN_TOKEN": "",
    "ADMIN_PASSWORD": "",
    "ADMIN_TELEGRAM_IDS": "",
    "SERVICE_TOKEN": "",
    "SUPPORT_CONTACT": "@esimsdata_support",
    "TELEGRAM_BOT_USERNAME": "",  # e.g. esimsdata_bot: the outside-Telegram page links to t.me/<it>
    # Pricing (SPEC §5); defaults are the earlier version's.
    "MARKUP": "1.29",
    "STARS_MARKUP": "1.05",
    "STARS_FEE": "0.25",
    "STARS_USD_RATE": "0.013",
    "COUNTRY_MARKUPS": "",  # "TH:10,US:5" = +10 % for Thailand, +5 % for the USA
    # Catalogue cache (SPEC §5): refreshed daily; a failed refresh is retried sooner.
    "CATALOGUE_REFRESH_HOURS": "24",
    "CATALOGUE_RETRY_SECONDS": "60",
    "CATALOGUE_BACKGROUND": "1",  # tests switch the thread off and load explicitly
    # A starting worker waits this long for its plans before it serves (first start: one process fetches).
    "CATALOGUE_STARTUP_WAIT_SECONDS": "45",
    # Buyer auth (SPEC §4): initData older than this is refused.
    "INITDATA_MAX_AGE_SECONDS": "86400",
    "STORAGE_LOCK_TIMEOUT": "10",
    # Purchase lifecycle (SPEC §6). An unpaid invoice expires; fulfilment retries with backoff.
    "ORDER_EXPIRY_MINUTES": "60",
    "ORDER_PRUNE_DAYS": "14",  # invoices that expired unpaid are dropped after this (no money ever moved)
    "INVOICES_PER_MINUTE": "10",  # per buyer; more is a script, not a traveller
    "FULFIL_INLINE": "1",  # settle a fresh payment in a thread of the web process (the worker is the backup)
    "FULFIL_INLINE_SECONDS": "90",  # how long that thread keeps at it before leaving the rest to the worker
    "FULFIL_LEASE_SECONDS": "120",  # longer than any one step (eSIM Go read timeout is 30 s)
    "FULFIL_BACKOFF_SECONDS": "2",  # first retry delay, doubled each time, at most 5 min
    "FULFIL_MAX_ATTEMPTS": "6",  # eSIM Go purchase attempts before the Stars are refunded
    "FULFIL_RECONCILE_SECONDS": "5",  # wait before deciding an interrupted purchase did not happen
    "FULFIL_PROCESSING_POLL_SECONDS": "2",
    "FULFIL_MAX_PROCESSING_SECONDS": "900",  # eSIM Go says assignment can take up to 10 minutes
    "FULFIL_ATTENTION_MINUTES": "10",  # a paid order not settled by then is flagged and the admins told
    "WORKER_POLL_SECONDS": "2",
    "DEMO_MODE": False,
    # Demo mode's sandboxes (SPEC §8); a second checkout, or the tests, set other free ports.
    "DEMO_ESIMGO_PORT": "8101",
    "DEMO_TELEGRAM_PORT": "8102",
}

# Settings that are numbers or yes/no, parsed here once: the rest of the app reads them typed.
NUMBERS: dict[str, type] = {
    "CATALOGUE_REFRESH_HOURS": float, "CATALOGUE_RETRY_SECONDS": float, "CATALOGUE_STARTUP_WAIT_SECONDS": float,
    "INITDATA_MAX_AGE_SECONDS": int, "STORAGE_LOCK_TIMEOUT": float, "ORDER_EXPIRY_MINUTES": float,
    "ORDER_PRUNE_DAYS": float, "INVOICES_PER_MINUTE": int, "FULFIL_INLINE_SECONDS": float,
    "FULFIL_LEASE_SECONDS": float, "FULFIL_BACKOFF_SECONDS": float, "FULFIL_MAX_ATTEMPTS": int,
    "FULFIL_RECONCILE_SECONDS": float, "FULFIL_PROCESSING_POLL_SECONDS": float,
    "FULFIL_MAX_PROCESSING_SECONDS": float, "FULFIL_ATTENTION_MINUTES": float, "WORKER_POLL_SECONDS": float,
}
FLAGS = ("CATALOGUE_BACKGROUND", "FULFIL_INLINE")

# Production refuses to start without these (SPEC §3).
PRODUCTION_REQUIRED = (
    "TELEGRAM_BOT_TOKEN",
    "TELEGRAM_WEBHOOK_SECRET",
    "ESIMGO_API_KEY",
    "PUBLIC_BASE_URL",
    "ADMIN_TOKEN",
    "SERVICE_TOKEN",
)


class ConfigError(RuntimeError):
    """The configuration cannot run the shop; the message says what to set."""


def _from_environment(env_file: Path) -> dict[str, str]:
    """`.env` values overlaid by the real environment (so PM2/systemd settings win over the file)."""
    values = {k: v for k, v in dotenv_values(env_file).items() if v is not None} if env_file.exists() else {}
    values.update({k: v for k, v in os.environ.items() if k in DEFAULTS or k == "BOT_TOKEN"})
    return values


def load_config(overrides: Mapping[str, Any] | None = None, env_file: Path | None = None) -> dict[str, Any]:
    """Build the app's config: defaults, then `.env`/environment, then `overrides` (tests)."""
    config: dict[str, Any] = dict(DEFAULTS)
    # ESIMSDATA_ENV_FILE lets tests (and unusual layouts) point away from the project's own .env.
    source = _from_environment(env_file or Path(os.environ.get("ESIMSDATA_ENV_FILE") or ROOT / ".env"))
    if not source.get("TELEGRAM_BOT_TOKEN") and source.get("BOT_TOKEN"):
        source["TELEGRAM_BOT_TOKEN"] = source["BOT_TOKEN"]
    source.pop("BOT_TOKEN", None)
    config.update(source)
    config.update(overrides or {})
    # Demo mode follows from the keys alone: a DEMO_MODE in .env or an override must never open the demo routes
    # (which sign buyers and play payments) in a shop with real keys.
    config["DEMO_MODE"] = False

    production = config["APP_ENV"] == "production"
    if production:
        missing = [name for name in PRODUCTION_REQUIRED if not config.get(name)]
        if missing:
            raise ConfigError(
                "APP_ENV=production but these settings are empty: " + ", ".join(missing)
                + ". Set them in .env (see .env.example)."
            )
    if not config["ESIMGO_API_KEY"] and not config["TELEGRAM_BOT_TOKEN"]:
        _enter_demo_mode(config)
    elif not config["ESIMGO_API_KEY"] or not config["TELEGRAM_BOT_TOKEN"]:
        raise ConfigError(
            "Set both ESIMGO_API_KEY and TELEGRAM_BOT_TOKEN for a live shop, or neither for demo mode."
        )
    elif not config["TELEGRAM_WEBHOOK_SECRET"]:
        # Whatever APP_ENV says: without the secret anyone could post a successful_payment and get an eSIM.
        raise ConfigError(
            "TELEGRAM_WEBHOOK_SECRET is empty: with a real bot token the webhook must check Telegram's secret "
            "header. Set it in .env (any 1-256 characters of A-Z, a-z, 0-9, _ and -), then run scripts/setup-bot."
        )
    if not config["PUBLIC_BASE_URL"]:
        config["PUBLIC_BASE_URL"] = "http://127.0.0.1:8000"
    config["PUBLIC_BASE_URL"] = config["PUBLIC_BASE_URL"].rstrip("/")
    config["TELEGRAM_API_URL"] = config["TELEGRAM_API_URL"].rstrip("/")
    config["ESIMGO_BASE_URL"] = config["ESIMGO_BASE_URL"].rstrip("/")
    config["DATA_DIR"] = str(Path(config["DATA_DIR"]))
    config["ADMIN_IDS"] = parse_id_list(config["ADMIN_TELEGRAM_IDS"])
    config["COUNTRY_MARKUP_PERCENT"] = parse_country_markups(config["COUNTRY_MARKUPS"])
    for name in (*NUMBERS, *FLAGS):  # `NAME=` left empty in .env means the default
        if str(config[name]).strip() == "":
            config[name] = DEFAULTS[name]
    for name, kind in NUMBERS.items():
        config[name] = _number(name, config[name], kind)
    for name in FLAGS:
        config[name] = parse_flag(name, config[name])
    for name in ("MARKUP", "STARS_MARKUP", "STARS_FEE", "STARS_USD_RATE"):
        config[name] = _decimal(name, config[name])
    return config


def _enter_demo_mode(config: dict[str, Any]) -> None:
    if config["APP_ENV"] == "production":  # unreachable: production already demanded both keys
        raise ConfigError("Demo mode is not allowed with APP_ENV=production.")
    config.update(
        DEMO_MODE=True,
        ESIMGO_API_KEY=DEMO_ESIMGO_KEY,
        ESIMGO_BASE_URL=f"http://127.0.0.1:{_port('DEMO_ESIMGO_PORT', config)}/v2.4",
        TELEGRAM_BOT_TOKEN=DEMO_BOT_TOKEN,
        TELEGRAM_API_URL=f"http://127.0.0.1:{_port('DEMO_TELEGRAM_PORT', config)}",
    )


def _port(name: str, config: dict[str, Any]) -> int:
    value = str(config[name]).strip()
    if not (value.isascii() and value.isdigit() and 0 < int(value) < 65536):
        raise ConfigError(f"{name} must be a TCP port number, got {value!r}.")
    return int(value)


def parse_flag(name: str, value: Any) -> bool:
    """The one reading of a yes/no setting: 1/true/yes/on or 0/false/no/off (any case); anything else is an error."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be 1/true/yes/on or 0/false/no/off, got {value!r}.")


def _number(name: str, value: Any, kind: type) -> int | float:
    try:
        number = kind(str(value).strip()) if not isinstance(value, bool) else None
    except ValueError:
        number = None
    if number is None or not math.isfinite(number) or number < 0:
        raise ConfigError(f"{name} must be a non-negative {'whole ' if kind is int else ''}number, got {value!r}.")
    return number


def parse_id_list(text: str) -> tuple[int, ...]:
    """"1, 2,3" -> (1, 2, 3); anything that is not a number is a configuration error."""
    ids = []
    for part in str(text or "").split(","):
        part = part.strip()
        if not part:
            continue
        if not part.lstrip("-").isdigit():
            raise ConfigError(f"ADMIN_TELEGRAM_IDS must be numeric Telegram user ids, got {part!r}.")
        ids.append(int(part))
    return tuple(ids)


def parse_country_markups(text: str) -> dict[str, Decimal]:
    """"TH:10,US:5" -> {"TH": Decimal("10"), "US": Decimal("5")} (percent per ISO country)."""
    markups: dict[str, Decimal] = {}
    for part in str(text or "").split(","):
        if not part.strip():
            continue
        code, sep, value = part.partition(":")
        code = code.strip().upper()
        if not sep or len(code) != 2 or not code.isalpha():
            raise ConfigError(f"COUNTRY_MARKUPS entries look like TH:10, got {part.strip()!r}.")
        markups[code] = _decimal("COUNTRY_MARKUPS", value.strip())
    return markups


def _decimal(name: str, value: Any) -> Decimal:
    try:
        result = Decimal(str(value))
    except InvalidOperation:
        raise ConfigError(f"{name} must be a number, got {value!r}.") from None
    if not result.is_finite():
        raise ConfigError(f"{name} must be a finite number, got {value!r}.")
    return result
