"""Configuration: the environment and `.env`, read once at start-up into one typed, frozen `Settings` (SPEC §3).

`load_settings(overrides)` is the only place that knows variable names, defaults, how each value is parsed,
demo mode and what production refuses to start without. Every setting is a field of `Settings`, named like
its variable in lower case (`FULFIL_MAX_ATTEMPTS` -> `settings.fulfil_max_attempts`) and typed by it: the rest
of the app never parses a string. Tests pass overrides by variable name, as `.env` would.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from decimal import Decimal, InvalidOperation
from pathlib import Path
from types import MappingProxyType
from typing import Any, get_type_hints

from dotenv import dotenv_values

ROOT = Path(__file__).resolve().parent

DEMO_ESIMGO_KEY = "sandbox-key"
# Not a secret: a well-formed token the Bot API sandbox accepts, so the demo can sign initData.
DEMO_BOT_TOKEN = "1000000001:DEMO-esimsdata-sandbox-token"
DEMO_ADMIN_PASSWORD = "demo"


ADMIN_SECRET_LENGTHS = {"ADMIN_PASSWORD": 12, "ADMIN_TOKEN": 24}


class ConfigError(RuntimeError):
    """The configuration cannot run the shop; the message says what to set."""


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


def _decimal(name: str, value: Any) -> Decimal:
    try:
        result = Decimal(str(value).strip())
    except InvalidOperation:
        raise ConfigError(f"{name} must be a number, got {value!r}.") from None
    if not result.is_finite():
        raise ConfigError(f"{name} must be a finite number, got {value!r}.")
    return result


def parse_port(name: str, value: Any) -> int:
    text = str(value).strip()
    if not (text.isascii() and text.isdigit() and 0 < int(text) < 65536):
        raise ConfigError(f"{name} must be a TCP port number, got {value!r}.")
    return int(text)


def parse_id_list(name: str, value: Any) -> tuple[int, ...]:
    """"1, 2,3" -> (1, 2, 3); anything that is not a number is a configuration error."""
    if isinstance(value, tuple):
        return value
    ids = []
    for part in str(value or "").split(","):
        part = part.strip()
        if not part:
            continue
        if not part.lstrip("-").isdigit():
            raise ConfigError(f"{name} must be numeric Telegram user ids, got {part!r}.")
        ids.append(int(part))
    return tuple(ids)


def parse_country_markups(name: str, value: Any) -> Mapping[str, Decimal]:
    """"TH:10,US:5" -> {"TH": Decimal("10"), "US": Decimal("5")} (percent per ISO country)."""
    if isinstance(value, Mapping):
        return MappingProxyType(dict(value))
    markups: dict[str, Decimal] = {}
    for part in str(value or "").split(","):
        if not part.strip():
            continue
        code, sep, percent = part.partition(":")
        code = code.strip().upper()
        if not sep or len(code) != 2 or not code.isalpha():
            raise ConfigError(f"{name} entries look like TH:10, got {part.strip()!r}.")
        markups[code] = _decimal(name, percent)
    return MappingProxyType(markups)


def _secret() -> Any:
    """A secret text setting: left out of the settings' repr, so a logged Settings never carries it."""
    return field(default="", repr=False)


def _setting(default: Any, parse: Any = None, env: bool = True) -> Any:
    """A field of Settings: its default, and a parser when its type alone does not say how to read it."""
    if isinstance(default, Mapping):  # a read-only mapping is still not a valid dataclass default
        return field(default_factory=lambda: default, metadata={"parse": parse, "env": env})
    return field(default=default, metadata={"parse": parse, "env": env})


@dataclass(frozen=True)
class Settings:
    """Every setting of the shop, parsed and typed; built once by `load_settings()` and never changed."""

    app_env: str = "development"
    telegram_bot_token: str = _secret()
    telegram_webhook_secret: str = _secret()
    telegram_api_url: str = "https://api.telegram.org"
    telegram_bot_username: str = ""  # e.g. esimsdata_bot: the outside-Telegram page links to t.me/<it>
    esimgo_api_key: str = _secret()
    esimgo_base_url: str = "https://api.esim-go.com/v2.4"
    public_base_url: str = ""
    data_dir: str = str(ROOT / "data")
    admin_token: str = _secret()
    admin_password: str = _secret()
    admin_telegram_ids: tuple[int, ...] = _setting((), parse_id_list)  # who gets the owner's alerts
    service_token: str = _secret()
    # Signed order events to the owner's backend (events.py, docs/events.md): off while the URL is empty.
    backend_webhook_url: str = ""
    backend_webhook_secret: str = _secret()
    events_retry_seconds: float = 10.0  # first retry of an undelivered event; doubled each time, at most 1 h
    metrics_token: str = _secret()  # GET /metrics from outside loopback (ADMIN_TOKEN works too)
    support_contact: str = "@esimsdata_support"
    # Pricing (SPEC §5); defaults are the earlier version's.
    markup: Decimal = Decimal("1.29")
    stars_markup: Decimal = Decimal("1.05")
    stars_fee: Decimal = Decimal("0.25")
    stars_usd_rate: Decimal = Decimal("0.013")
    # "TH:10,US:5" = +10 % for Thailand, +5 % for the USA
    country_markups: Mapping[str, Decimal] = _setting(MappingProxyType({}), parse_country_markups)
    # Catalogue cache (SPEC §5): refreshed daily; a failed refresh is retried sooner.
    catalogue_refresh_hours: float = 24.0
    catalogue_retry_seconds: float = 60.0
    catalogue_background: bool = True  # tests switch the thread off and load explicitly
    admin_warm_up: bool = True  # a web worker summarises the orders for the admin console soon after start
    # A starting worker waits this long for its plans before it serves (first start: one process fetches).
    catalogue_startup_wait_seconds: float = 45.0
    # Buyer auth (SPEC §4): initData older than this is refused.
    initdata_max_age_seconds: int = 86400
    storage_lock_timeout: float = 10.0
    # Purchase lifecycle (SPEC §6). An unpaid invoice expires; fulfilment retries with backoff.
    order_expiry_minutes: float = 60.0
    order_prune_days: float = 14.0  # invoices that expired unpaid are dropped after this (no money ever moved)
    invoices_per_minute: int = 10  # per buyer; more is a script, not a traveller
    fulfil_inline: bool = True  # settle a fresh payment in a thread of the web process (the worker is the backup)
    fulfil_inline_seconds: float = 90.0  # how long that thread keeps at it before leaving the rest to the worker
    fulfil_lease_seconds: float = 120.0  # longer than any one step (eSIM Go read timeout is 30 s)
    fulfil_backoff_seconds: float = 2.0  # first retry delay, doubled each time, at most 5 min
    fulfil_max_attempts: int = 6  # eSIM Go purchase attempts before the Stars are refunded
    # Wait after an unanswered purchase before deciding it did not happen: eSIM Go may still be finishing a
    # request our 30 s read gave up on, and deciding too early would buy a second eSIM.
    fulfil_reconcile_seconds: float = 60.0
    fulfil_processing_poll_seconds: float = 2.0
    fulfil_max_processing_seconds: float = 900.0  # eSIM Go says assignment can take up to 10 minutes
    fulfil_attention_minutes: float = 10.0  # a paid order not settled by then is flagged and the admins told
    worker_poll_seconds: float = 2.0
    # Demo mode's sandboxes (SPEC §8); a second checkout, or the tests, set other free ports.
    demo_esimgo_port: int = _setting(8101, parse_port)
    demo_telegram_port: int = _setting(8102, parse_port)
    # Follows from the keys alone (no key at all = demo): never read from the environment, so a DEMO_MODE in
    # .env can never open the demo routes, which sign buyers and play payments, in a shop with real keys.
    demo_mode: bool = _setting(False, env=False)

    @property
    def production(self) -> bool:
        return self.app_env == "production"


# The environment variable of each setting that is read from it.
VARIABLES = {f.name.upper(): f for f in fields(Settings) if f.metadata.get("env", True)}
_TYPES = get_type_hints(Settings)
_PARSERS: dict[Any, Any] = {
    bool: parse_flag,
    int: lambda name, value: _number(name, value, int),
    float: lambda name, value: _number(name, value, float),
    Decimal: _decimal,
    str: lambda name, value: str(value).strip(),
}

# Production refuses to start without these (SPEC §3).
PRODUCTION_REQUIRED = (
    "TELEGRAM_BOT_TOKEN",
    "TELEGRAM_WEBHOOK_SECRET",
    "ESIMGO_API_KEY",
    "PUBLIC_BASE_URL",
    "ADMIN_TOKEN",
    "SERVICE_TOKEN",
)


def _from_environment(env_file: Path) -> dict[str, str]:
    """`.env` values overlaid by the real environment (so PM2/systemd settings win over the file)."""
    values = {k: v for k, v in dotenv_values(env_file).items() if v is not None} if env_file.exists() else {}
    values.update({k: v for k, v in os.environ.items() if k in VARIABLES or k == "BOT_TOKEN"})
    return values


def _parse(name: str, value: Any) -> Any:
    spec = VARIABLES[name]
    parse = spec.metadata.get("parse") or _PARSERS[_TYPES[spec.name]]
    return parse(name, value)


def _given(name: str, value: Any) -> bool:
    """Whether a variable sets its setting: `NAME=` left empty in .env means the default (an empty text stays)."""
    return name in VARIABLES and (_TYPES[VARIABLES[name].name] is str or str(value).strip() != "")


def load_settings(overrides: Mapping[str, Any] | None = None, env_file: Path | None = None) -> Settings:
    """The shop's settings: defaults, then `.env`/environment, then `overrides` (tests), by variable name."""
    # ESIMSDATA_ENV_FILE lets tests (and unusual layouts) point away from the project's own .env.
    source: dict[str, Any] = _from_environment(env_file or Path(os.environ.get("ESIMSDATA_ENV_FILE") or ROOT / ".env"))
    if not source.get("TELEGRAM_BOT_TOKEN") and source.get("BOT_TOKEN"):
        source["TELEGRAM_BOT_TOKEN"] = source["BOT_TOKEN"]
    source.update(overrides or {})
    values = {VARIABLES[name].name: _parse(name, value) for name, value in source.items() if _given(name, value)}
    settings = Settings(**values)

    if settings.production:
        missing = [name for name in PRODUCTION_REQUIRED if not getattr(settings, name.lower())]
        if missing:
            raise ConfigError(
                "APP_ENV=production but these settings are empty: " + ", ".join(missing)
                + ". Set them in .env (see .env.example)."
            )
        short = [f"{name} (at least {length} characters)" for name, length in ADMIN_SECRET_LENGTHS.items()
                 if 0 < len(getattr(settings, name.lower())) < length]
        if short:  # the admin console guards every order: no guessable secret in a real shop
            raise ConfigError("APP_ENV=production but these are too short: " + ", ".join(short) + ".")
    if settings.backend_webhook_url and len(settings.backend_webhook_secret) < 16:
        raise ConfigError("BACKEND_WEBHOOK_URL is set, so BACKEND_WEBHOOK_SECRET must be too (16+ characters): "
                          "every event is signed with it.")
    if not settings.esimgo_api_key and not settings.telegram_bot_token:
        settings = _demo(settings)
    elif not settings.esimgo_api_key or not settings.telegram_bot_token:
        raise ConfigError(
            "Set both ESIMGO_API_KEY and TELEGRAM_BOT_TOKEN for a live shop, or neither for demo mode."
        )
    elif not settings.telegram_webhook_secret:
        # Whatever APP_ENV says: without the secret anyone could post a successful_payment and get an eSIM.
        raise ConfigError(
            "TELEGRAM_WEBHOOK_SECRET is empty: with a real bot token the webhook must check Telegram's secret "
            "header. Set it in .env (any 1-256 characters of A-Z, a-z, 0-9, _ and -), then run scripts/setup-bot."
        )
    return replace(
        settings,
        public_base_url=(settings.public_base_url or "http://127.0.0.1:8000").rstrip("/"),
        telegram_api_url=settings.telegram_api_url.rstrip("/"),
        esimgo_base_url=settings.esimgo_base_url.rstrip("/"),
        data_dir=str(Path(settings.data_dir)),
    )


def share_metrics(settings: Settings) -> Path:
    """Point the Prometheus client at the folder where every process of this shop (web workers and the order
    worker) writes its counts, so `/metrics` adds them up. Call before anything imports prometheus_client."""
    folder = Path(settings.data_dir) / "metrics"
    folder.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(folder))
    return Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])


def _demo(settings: Settings) -> Settings:
    if settings.production:  # unreachable: production already demanded both keys
        raise ConfigError("Demo mode is not allowed with APP_ENV=production.")
    return replace(
        settings,
        demo_mode=True,
        # The demo's console shows only sandbox orders; a real shop has no default password (login stays off).
        admin_password=settings.admin_password or DEMO_ADMIN_PASSWORD,
        esimgo_api_key=DEMO_ESIMGO_KEY,
        esimgo_base_url=f"http://127.0.0.1:{settings.demo_esimgo_port}/v2.4",
        telegram_bot_token=DEMO_BOT_TOKEN,
        telegram_api_url=f"http://127.0.0.1:{settings.demo_telegram_port}",
    )
