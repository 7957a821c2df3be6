"""A local stand-in for the eSIM Go v2.4 reseller API (../shared/reference/esimgo.md), served over real HTTP.

It owns a deterministic catalogue (built from `seed`: 225 countries x 9 local plans, 7 regions x 7 regional
plans, 4 Global plans), the organisation balance, orders, eSIMs with their bundle assignments, scripted
failures (`fail()`), and signed V3 usage callbacks (`send_usage_callback()`). Shapes follow what the real API
returns, not the OpenAPI schema where the two disagree (catalogue envelope, float prices, `organisations[0]`,
nanosecond `createdDate`, CSV assignments unless `Accept: application/json`, 400 for an unknown ICCID).

Provider rule (never served; decides `GET /esims/{iccid}/compatible/{bundle}` and top-ups): every local
(single-country) and regional bundle runs on provider "truphone" (eSIMs get smdpAddress `rsp.truphone.com`),
the Global bundles `esim_*_RGBS_V2` run on "idemia" (`rsp-3104.idemia.io`). A bundle fits an eSIM only when the
providers match, so an eSIM bought with `esim_1GB_7D_TH_V2` takes `esim_3GB_30D_TH_V2`, `esim_1GB_7D_RASIA_V2`
or `esim_1GB_7D_GB_V2`, but `esim_1GB_7D_RGBS_V2` is incompatible (400, or a new eSIM with allowReassign).

Bundle states: an assignment is "processing" while its order is, then "active"; a later assignment of the same
bundle on the same eSIM is "queued" behind an active one; used up is "depleted", past its end "expired". The
state is "Active"-capitalised on eSIMs whose ICCID ends in an odd digit, because the real API varies the case.
Rate-limit headers are sent on every API answer but the limit is never enforced; script a 429 with `fail()`.
"""

from __future__ import annotations

import argparse
import base64
import copy
import csv
import hashlib
import hmac
import io
import json
import math
import random
import re
import string
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import requests
from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException

from sandboxes.server import ServerThread, add_identity, serve_forever

API_PREFIX = "/v2.4"
CONTROL_PREFIX = "/_sandbox"
DEFAULT_PORT = 8101
DEFAULT_BALANCE = 1000.0
RATE_LIMIT = 10  # requests per second, the documented default

# Hidden providers and the SM-DP+ host each one hands out (host only, no scheme, like the real API).
LOCAL_PROVIDER = "truphone"
GLOBAL_PROVIDER = "idemia"
_SMDP_HOSTS = {LOCAL_PROVIDER: "rsp.truphone.com", GLOBAL_PROVIDER: "rsp-3104.idemia.io"}

REGION_CODES = {
    "Europe": "REUP",
    "Asia": "RASIA",
    "Africa": "RAFR",
    "North America": "RNA",
    "South America": "RLATAM",
    "Middle East": "RME",
    "Oceania": "ROC",
}
GLOBAL_CODE = "RGBS"

# ISO 3166-1 alpha-2 code -> English short name, grouped by the region the catalogue reports.
_REGIONS: dict[str, dict[str, str]] = {
    "Europe": {
        "AD": "Andorra", "AL": "Albania", "AT": "Austria", "AX": "Åland Islands", "BA": "Bosnia and Herzegovina",
        "BE": "Belgium", "BG": "Bulgaria", "BY": "Belarus", "CH": "Switzerland", "CY": "Cyprus",
        "CZ": "Czech Republic", "DE": "Germany", "DK": "Denmark", "EE": "Estonia", "ES": "Spain", "FI": "Finland",
        "FO": "Faroe Islands", "FR": "France", "GB": "United Kingdom", "GG": "Guernsey", "GI": "Gibraltar",
        "GR": "Greece", "HR": "Croatia", "HU": "Hungary", "IE": "Ireland", "IM": "Isle of Man", "IS": "Iceland",
        "IT": "Italy", "JE": "Jersey", "LI": "Liechtenstein", "LT": "Lithuania", "LU": "Luxembourg", "LV": "Latvia",
        "MC": "Monaco", "MD": "Moldova", "ME": "Montenegro", "MK": "North Macedonia", "MT": "Malta",
        "NL": "Netherlands", "NO": "Norway", "PL": "Poland", "PT": "Portugal", "RO": "Romania", "RS": "Serbia",
        "RU": "Russia", "SE": "Sweden", "SI": "Slovenia", "SK": "Slovakia", "SM": "San Marino", "TR": "Turkey",
        "UA": "Ukraine", "VA": "Vatican City",
    },
    "Asia": {
        "AF": "Afghanistan", "AM": "Armenia", "AZ": "Azerbaijan", "BD": "Bangladesh", "BN": "Brunei",
        "BT": "Bhutan", "CN": "China", "GE": "Georgia", "HK": "Hong Kong", "ID": "Indonesia", "IN": "India",
        "JP": "Japan", "KG": "Kyrgyzstan", "KH": "Cambodia", "KR": "South Korea", "KZ": "Kazakhstan", "LA": "Laos",
        "LK": "Sri Lanka", "MM": "Myanmar", "MN": "Mongolia", "MO": "Macao", "MV": "Maldives", "MY": "Malaysia",
        "NP": "Nepal", "PH": "Philippines", "PK": "Pakistan", "SG": "Singapore", "TH": "Thailand", "TJ": "Tajikistan",
        "TL": "Timor-Leste", "TM": "Turkmenistan", "TW": "Taiwan", "UZ": "Uzbekistan", "VN": "Vietnam",
    },
    "Middle East": {
        "AE": "United Arab Emirates", "BH": "Bahrain", "IL": "Israel", "IQ": "Iraq", "IR": "Iran", "JO": "Jordan",
        "KW": "Kuwait", "LB": "Lebanon", "OM": "Oman", "PS": "Palestine", "QA": "Qatar", "SA": "Saudi Arabia",
        "SY": "Syria", "YE": "Yemen",
    },
    "Africa": {
        "AO": "Angola", "BF": "Burkina Faso", "BI": "Burundi", "BJ": "Benin", "BW": "Botswana",
        "CD": "Democratic Republic of the Congo", "CF": "Central African Republic", "CG": "Congo",
        "CI": "Côte d'Ivoire", "CM": "Cameroon", "CV": "Cape Verde", "DJ": "Djibouti", "DZ": "Algeria",
        "EG": "Egypt", "ER": "Eritrea", "ET": "Ethiopia", "GA": "Gabon", "GH": "Ghana", "GM": "Gambia",
        "GN": "Guinea", "GQ": "Equatorial Guinea", "GW": "Guinea-Bissau", "KE": "Kenya", "KM": "Comoros",
        "LR": "Liberia", "LS": "Lesotho", "LY": "Libya", "MA": "Morocco", "MG": "Madagascar", "ML": "Mali",
        "MR": "Mauritania", "MU": "Mauritius", "MW": "Malawi", "MZ": "Mozambique", "NA": "Namibia", "NE": "Niger",
        "NG": "Nigeria", "RE": "Réunion", "RW": "Rwanda", "SC": "Seychelles", "SD": "Sudan", "SL": "Sierra Leone",
        "SN": "Senegal", "SO": "Somalia", "SS": "South Sudan", "ST": "Sao Tome and Principe", "SZ": "Eswatini",
        "TD": "Chad", "TG": "Togo", "TN": "Tunisia", "TZ": "Tanzania", "UG": "Uganda", "YT": "Mayotte",
        "ZA": "South Africa", "ZM": "Zambia", "ZW": "Zimbabwe",
    },
    "North America": {
        "AG": "Antigua and Barbuda", "AI": "Anguilla", "AW": "Aruba", "BB": "Barbados", "BM": "Bermuda",
        "BS": "Bahamas", "BZ": "Belize", "CA": "Canada", "CR": "Costa Rica", "CU": "Cuba", "CW": "Curaçao",
        "DM": "Dominica", "DO": "Dominican Republic", "GD": "Grenada", "GL": "Greenland", "GP": "Guadeloupe",
        "GT": "Guatemala", "HN": "Honduras", "HT": "Haiti", "JM": "Jamaica", "KN": "Saint Kitts and Nevis",
        "KY": "Cayman Islands", "LC": "Saint Lucia", "MQ": "Martinique", "MX": "Mexico", "NI": "Nicaragua",
        "PA": "Panama", "PR": "Puerto Rico", "SV": "El Salvador", "TC": "Turks and Caicos Islands",
        "TT": "Trinidad and Tobago", "US": "United States", "VC": "Saint Vincent and the Grenadines",
        "VG": "British Virgin Islands", "VI": "US Virgin Islands",
    },
    "South America": {
        "AR": "Argentina", "BO": "Bolivia", "BR": "Brazil", "CL": "Chile", "CO": "Colombia", "EC": "Ecuador",
        "GF": "French Guiana", "GY": "Guyana", "PE": "Peru", "PY": "Paraguay", "SR": "Suriname", "UY": "Uruguay",
        "VE": "Venezuela",
    },
    "Oceania": {
        "AS": "American Samoa", "AU": "Australia", "CK": "Cook Islands", "FJ": "Fiji", "FM": "Micronesia",
        "GU": "Guam", "KI": "Kiribati", "MH": "Marshall Islands", "MP": "Northern Mariana Islands",
        "NC": "New Caledonia", "NR": "Nauru", "NZ": "New Zealand", "PF": "French Polynesia",
        "PG": "Papua New Guinea", "PW": "Palau", "SB": "Solomon Islands", "TO": "Tonga", "TV": "Tuvalu",
        "VU": "Vanuatu", "WS": "Samoa",
    },
}  # fmt: skip

# (GB, days) fixed plans and unlimited day counts, with price multipliers against the country's 1GB/7D price.
_FIXED_PLANS = {(1, 7): 1.0, (3, 30): 2.3, (5, 30): 3.4, (10, 30): 5.9, (20, 30): 10.2}
_UNLIMITED_PLANS = {1: 0.9, 3: 2.4, 7: 4.8, 15: 8.9}
_REGIONAL_UNLIMITED = (7, 15)
_GLOBAL_PLANS = {(1, 7): 1.0, (3, 30): 2.4, (10, 30): 6.1, (20, 30): 10.8}
# Places Global bundles do not reach, so Global covers "most" rather than every country.
_GLOBAL_EXCLUDED = {"AF", "CF", "CU", "ER", "IR", "LY", "SO", "SS", "SY", "YE"}
_TH_1GB_7D_PRICE = 2.26  # pinned: app tests quote this price
_SPEEDS = (["2G", "3G", "4G", "5G"], ["2G", "3G", "4G", "5G"], ["3G", "4G"], ["4G"], ["4G", "5G"])
_NULL_SPEED_SHARE = 0.04  # the real catalogue serves `speed: null` for a few bundles
_IMAGE_HOST = "https://esimgo-cms-images-prod.s3.eu-west-1.amazonaws.com"
_CENT = Decimal("0.01")
_MAX_BUNDLES_PER_ESIM = 30  # HELP-QUEUE: one eSIM holds up to 30 queued bundles
_USED_STATES = {"depleted", "expired", "revoked", "lapsed"}

_DEFAULT_MESSAGES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "api token is invalid",
    404: "Not Found",
    429: "Rate limit exceeded",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Processing - Please come back later",
    504: "Gateway Timeout",
}


class _ApiError(Exception):
    """Raised inside a view to answer `{"message": ...}` with `status`."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


@dataclass
class _Failure:
    path: str
    status: int
    times: int
    method: str | None
    message: str | None
    delay: float
    retry_after: int | None
    html: bool = False


@dataclass
class _Assignment:
    id: str
    reference: str
    bundle: str
    initial: int
    remaining: int
    assigned_at: datetime
    ends_at: datetime
    unlimited: bool
    ready_at: float  # time.monotonic() when the order stops processing


@dataclass
class _Esim:
    iccid: str
    matching_id: str
    smdp_address: str
    provider: str
    pin: str
    puk: str
    assignments: list[_Assignment] = field(default_factory=list)


@dataclass
class _Item:
    bundle: str
    quantity: int
    allow_reassign: bool
    price: Decimal
    iccids: list[str]


@dataclass
class _Order:
    reference: str
    assign: bool
    items: list[_Item]
    total: Decimal
    created: str
    ready_at: float


@dataclass
class _Line:
    """One parsed `order[]` entry of a POST /orders body."""

    bundle: str
    quantity: int
    iccids: list[str] | None
    allow_reassign: bool


def _money(value: float | Decimal) -> Decimal:
    return Decimal(value).quantize(_CENT, rounding=ROUND_HALF_UP)


def _nano_timestamp(moment: datetime) -> str:
    # The real API prints nanoseconds ("2024-05-02T10:57:30.858475018Z"), which datetime.fromisoformat rejects;
    # serving the same keeps client parsers honest.
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond:06d}{random.randrange(1000):03d}Z"


def _second_timestamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_timestamp(text: str) -> datetime:
    """Parses ISO-8601 with any number of fractional digits; raises ValueError."""
    match = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)?", text.strip())
    if not match:
        raise ValueError(text)
    head, fraction, zone = match.groups()
    moment = datetime.fromisoformat(head + (f".{fraction[:6].ljust(6, '0')}" if fraction else ""))
    if zone and zone != "Z":
        return moment.replace(tzinfo=datetime.fromisoformat(f"2000-01-01T00:00:00{zone}").tzinfo).astimezone(UTC)
    return moment.replace(tzinfo=UTC)


def _days_label(days: int) -> str:
    return "1 Day" if days == 1 else f"{days} Days"


def _build_catalogue(seed: int) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Returns (bundles as served, bundle name -> hidden provider), the same for the same seed."""
    rng = random.Random(seed)
    countries = sorted((iso, name, region) for region, table in _REGIONS.items() for iso, name in table.items())
    entries = {iso: {"name": name, "region": region, "iso": iso} for iso, name, region in countries}
    base = {iso: round(rng.uniform(0.8, 3.5), 2) for iso, _, _ in countries}
    base["TH"] = _TH_1GB_7D_PRICE
    bundles: list[dict[str, Any]] = []
    providers: dict[str, str] = {}

    def add(name: str, label: str, isos: list[str], gb: int | None, days: int, price: float, provider: str) -> None:
        unlimited = gb is None
        amount = 1000 if unlimited else gb * 1000  # MB, 1GB = 1000; unlimited plans state their daily quota
        size = "Unlimited Lite" if unlimited else f"{gb}GB"
        covered = [entries[iso] for iso in isos]
        speed = None if rng.random() < _NULL_SPEED_SHARE else list(rng.choice(_SPEEDS))
        image = re.sub(r"[^A-Za-z0-9]+", "_", label).strip("_")
        bundles.append(
            {
                "name": name,
                "description": f"eSIM, {size}, {_days_label(days)}, {label}, V2",
                "groups": ["Standard Unlimited Lite" if unlimited else "Standard Fixed"],
                "countries": covered,
                "roamingEnabled": list(covered) if len(covered) > 1 else [],
                "dataAmount": amount,
                "duration": days,
                "speed": speed,
                "autostart": True,
                "unlimited": unlimited,
                "imageUrl": f"{_IMAGE_HOST}/{image}_{rng.getrandbits(40):010x}.jpg",
                "price": float(_money(price)),
                "billingType": "FixedCost",
                "allowances": [
                    {
                        "type": "DATA",
                        "service": "ROAMING",
                        "description": f"ESIM_{'UL' if unlimited else f'{gb}GB'}_{days}D_ZONE{rng.choice('ABCDEF')}_U"
                        " (data)",
                        "amount": amount,
                        "unit": "MB",
                        "unlimited": unlimited,
                    }
                ],
            }
        )
        providers[name] = provider

    for iso, country, _ in countries:
        for (gb, days), factor in _FIXED_PLANS.items():
            # The 1GB/7D plan is the country's base price exactly (so TH stays 2.26); bigger plans jitter a little.
            price = base[iso] if factor == 1.0 else base[iso] * factor * rng.uniform(0.93, 1.07)
            add(f"esim_{gb}GB_{days}D_{iso}_V2", country, [iso], gb, days, price, LOCAL_PROVIDER)
        for days, factor in _UNLIMITED_PLANS.items():
            price = base[iso] * factor * rng.uniform(0.93, 1.07)
            add(f"esim_UL_{days}D_{iso}_V2", country, [iso], None, days, price, LOCAL_PROVIDER)

    for region, code in REGION_CODES.items():
        isos = sorted(_REGIONS[region])
        regional_base = sum(base[iso] for iso in isos) / len(isos) * 1.25
        for (gb, days), factor in _FIXED_PLANS.items():
            price = regional_base * factor * rng.uniform(0.95, 1.05)
            add(f"esim_{gb}GB_{days}D_{code}_V2", region, isos, gb, days, price, LOCAL_PROVIDER)
        for days in _REGIONAL_UNLIMITED:
            price = regional_base * _UNLIMITED_PLANS[days] * rng.uniform(0.95, 1.05)
            add(f"esim_UL_{days}D_{code}_V2", region, isos, None, days, price, LOCAL_PROVIDER)

    global_isos = [iso for iso, _, _ in countries if iso not in _GLOBAL_EXCLUDED]
    global_base = rng.uniform(5.5, 8.5)
    for (gb, days), factor in _GLOBAL_PLANS.items():
        price = global_base * factor * rng.uniform(0.95, 1.05)
        add(f"esim_{gb}GB_{days}D_{GLOBAL_CODE}_V2", "Global", global_isos, gb, days, price, GLOBAL_PROVIDER)

    # A seed could in theory draw no null speed at all; the app must always meet one.
    if all(bundle["speed"] is not None for bundle in bundles):
        bundles[len(bundles) // 2]["speed"] = None
    return bundles, providers


class EsimGoSandbox:
    """The eSIM Go v2.4 API on 127.0.0.1, with Python and HTTP (`/_sandbox/...`) controls for tests and demos."""

    def __init__(self, api_key: str = "sandbox-key", seed: int = 1, *, processing_seconds: float = 0.0) -> None:
        self.api_key = api_key
        self.seed = seed
        self._default_processing_seconds = float(processing_seconds)
        self._catalogue, self._providers = _build_catalogue(seed)
        self._bundles = {bundle["name"]: bundle for bundle in self._catalogue}
        # Precomputed filter keys: (bundle, isos, the one region all its countries share or None, groups, description)
        self._index = [
            (
                bundle,
                frozenset(c["iso"] for c in bundle["countries"]),
                regions.pop() if len(regions := {c["region"] for c in bundle["countries"]}) == 1 else None,
                frozenset(g.lower() for g in bundle["groups"]),
                bundle["description"].lower(),
            )
            for bundle in self._catalogue
        ]
        # Runtime identifiers come from the OS so two sandbox runs never hand out the same ICCID to one app store.
        self._ids = random.SystemRandom()
        self._issued_iccids: set[str] = set()
        self._lock = threading.RLock()
        self._server: ServerThread | None = None
        self.reset()
        self.app = self._build_app()

    # ----- Python control ---------------------------------------------------------------------------------------

    def start(self, port: int = 0) -> EsimGoSandbox:
        if self._server is not None:
            raise RuntimeError("sandbox already started")
        self._server = ServerThread(self.app, port=port).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    @property
    def origin(self) -> str:
        if self._server is None:
            raise RuntimeError("sandbox not started")
        return self._server.origin

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("sandbox not started")
        return self._server.port

    @property
    def url(self) -> str:
        """The API base URL a client uses as ESIMGO_BASE_URL."""
        return self.origin + API_PREFIX

    def reset(self) -> None:
        with self._lock:
            self._orders: list[_Order] = []
            self._orders_by_ref: dict[str, _Order] = {}
            self._esims: dict[str, _Esim] = {}
            self._assignments_by_ref: dict[str, tuple[_Esim, _Assignment]] = {}
            self._inventory: dict[str, int] = {}
            self._failures: list[_Failure] = []
            self._requests: list[dict[str, Any]] = []
            self._processing_seconds = self._default_processing_seconds
            self._balance = _money(DEFAULT_BALANCE)
            self._organisation_shape = "list"
            self._order_list_shape = "envelope"
            self._rate_window = 0
            self._rate_count = 0

    def fail(
        self,
        path: str,
        status: int,
        times: int = 1,
        method: str | None = None,
        message: str | None = None,
        delay: float = 0.0,
        retry_after: int | None = None,
        html: bool = False,
    ) -> None:
        """Scripts the next `times` matching requests (path prefix below /v2.4) to fail or, with status 0, be slow.
        With `html`, `message` is the whole body as text/html, as a proxy in front of eSIM Go answers."""
        if status != 0 and not 100 <= status <= 599:
            raise ValueError(f"status must be 0 or an HTTP status, not {status}")
        if times < 1 or delay < 0:
            raise ValueError("times must be >= 1 and delay >= 0")
        if path.startswith(API_PREFIX):
            path = path[len(API_PREFIX) :]
        path = "/" + path.lstrip("/")
        with self._lock:
            self._failures.append(
                _Failure(path, status, times, method.upper() if method else None, message, delay, retry_after, html)
            )

    def settings(
        self,
        *,
        processing_seconds: float | None = None,
        balance: float | None = None,
        organisation_shape: str | None = None,
        order_list_shape: str | None = None,
    ) -> None:
        if processing_seconds is not None and processing_seconds < 0:
            raise ValueError("processing_seconds must be >= 0")
        if balance is not None and balance < 0:
            raise ValueError("balance must be >= 0")
        if organisation_shape is not None and organisation_shape not in ("list", "flat"):
            raise ValueError("organisation_shape must be 'list' or 'flat'")
        # GET /orders: {"orders": [...]} (one client's reading), a bare list (one mock), or the v2.4 schema's
        # own example, a single order object (the newest).
        if order_list_shape is not None and order_list_shape not in ("envelope", "list", "object"):
            raise ValueError("order_list_shape must be 'envelope', 'list' or 'object'")
        with self._lock:
            if processing_seconds is not None:
                self._processing_seconds = float(processing_seconds)
            if balance is not None:
                self._balance = _money(balance)
            if organisation_shape is not None:
                self._organisation_shape = organisation_shape
            if order_list_shape is not None:
                self._order_list_shape = order_list_shape

    @property
    def balance(self) -> float:
        with self._lock:
            return float(self._balance)

    @property
    def orders(self) -> list[dict[str, Any]]:
        """Every transaction order, oldest first, with `allowReassign` per item and ICCIDs even while processing."""
        with self._lock:
            return [self._order_json(order, internal=True) for order in self._orders]

    @property
    def requests_log(self) -> list[dict[str, Any]]:
        with self._lock:
            return copy.deepcopy(self._requests)

    @property
    def catalogue(self) -> list[dict[str, Any]]:
        return copy.deepcopy(self._catalogue)

    def bundle(self, name: str) -> dict[str, Any]:
        """The catalogue entry as served; KeyError when there is none."""
        return copy.deepcopy(self._bundles[name])

    def provider(self, bundle_name: str) -> str:
        """The hidden provider of a bundle (see the module docstring)."""
        return self._providers[bundle_name]

    def send_usage_callback(
        self, url: str, iccid: str, percent: int, encoding: str = "hex", bundle_name: str | None = None
    ) -> requests.Response:
        """POSTs a signed V3 Utilisation callback for `iccid` at `percent` used, and records that usage."""
        if encoding not in ("hex", "base64"):
            raise ValueError("encoding must be 'hex' or 'base64'")
        if not 0 <= percent <= 100:
            raise ValueError("percent must be within 0..100")
        with self._lock:
            assignment = self._usage_assignment(iccid, bundle_name)
            assignment.remaining = assignment.initial * (100 - percent) // 100
            bundle = self._bundles[assignment.bundle]
            payload = {
                "iccid": iccid,
                "alertType": "Utilisation",
                "bundle": {
                    "id": assignment.id,
                    "reference": assignment.reference,
                    "name": assignment.bundle,
                    "description": bundle["description"],
                    "initialQuantity": assignment.initial,
                    "remainingQuantity": assignment.remaining,
                    "startTime": _second_timestamp(assignment.assigned_at),
                    "endTime": _second_timestamp(assignment.ends_at),
                    "unlimited": assignment.unlimited,
                },
            }
        raw = json.dumps(payload, separators=(",", ":")).encode()
        digest = hmac.new(self.api_key.encode(), raw, hashlib.sha256).digest()
        signature = digest.hex() if encoding == "hex" else base64.b64encode(digest).decode()
        return requests.post(
            url,
            data=raw,
            headers={"Content-Type": "application/json", "X-Signature-SHA256": signature},
            timeout=(3.05, 10),
        )

    # ----- state helpers (call with the lock held) ---------------------------------------------------------------

    def _usage_assignment(self, iccid: str, bundle_name: str | None) -> _Assignment:
        esim = self._esims.get(iccid)
        if esim is None:
            # A callback for an eSIM this sandbox never sold: invent the assignment so tests can still send one.
            if bundle_name is None or bundle_name not in self._bundles:
                raise KeyError(f"unknown eSIM {iccid}: pass bundle_name of a catalogue bundle")
            bundle = self._bundles[bundle_name]
            return self._new_assignment(bundle, f"{uuid.uuid4()}-0", time.monotonic())
        candidates = [a for a in esim.assignments if bundle_name in (None, a.bundle)]
        if not candidates:
            raise KeyError(f"eSIM {iccid} has no assignment of {bundle_name}")
        return candidates[-1]

    def _new_assignment(self, bundle: dict[str, Any], reference: str, ready_at: float) -> _Assignment:
        now = datetime.now(UTC).replace(microsecond=0)
        quantity = bundle["dataAmount"] * 1_000_000  # MB -> bytes, as usage is reported
        return _Assignment(
            id=str(self._ids.randrange(200_000_000, 299_999_999)),
            reference=reference,
            bundle=bundle["name"],
            initial=quantity,
            remaining=quantity,
            assigned_at=now,
            ends_at=now + timedelta(days=bundle["duration"]),
            unlimited=bundle["unlimited"],
            ready_at=ready_at,
        )

    def _new_esim(self, provider: str) -> _Esim:
        while True:
            iccid = "8944" + "".join(self._ids.choice(string.digits) for _ in range(15))
            if iccid not in self._issued_iccids:
                break
        self._issued_iccids.add(iccid)
        alphabet = string.ascii_uppercase + string.digits

        def chunk(size: int) -> str:
            return "".join(self._ids.choice(alphabet) for _ in range(size))

        # Each provider's activation codes look different in the wild: "JQ-1Z351U-1U6E44B" vs "E5VDM-X0LO3-...".
        if provider == LOCAL_PROVIDER:
            matching_id = f"JQ-{chunk(6)}-{chunk(7)}"
        else:
            matching_id = "-".join(chunk(5) for _ in range(4))
        esim = _Esim(
            iccid=iccid,
            matching_id=matching_id,
            smdp_address=_SMDP_HOSTS[provider],
            provider=provider,
            pin=f"{self._ids.randrange(10_000):04d}",
            puk=f"{self._ids.randrange(100_000_000):08d}",
        )
        self._esims[iccid] = esim
        return esim

    def _states(self, esim: _Esim) -> list[str]:
        now_wall = datetime.now(UTC)
        now = time.monotonic()
        states: list[str] = []
        active: set[str] = set()
        for assignment in esim.assignments:
            if now < assignment.ready_at:
                state = "processing"
            elif not assignment.unlimited and assignment.remaining <= 0:
                state = "depleted"
            elif now_wall >= assignment.ends_at:
                state = "expired"
            elif assignment.bundle in active:
                state = "queued"
            else:
                state = "active"
                active.add(assignment.bundle)
            states.append(state)
        if int(esim.iccid[-1]) % 2:
            return [state.capitalize() for state in states]
        return states

    def _esim_brief(self, iccid: str) -> dict[str, Any]:
        esim = self._esims[iccid]
        return {"iccid": esim.iccid, "matchingId": esim.matching_id, "smdpAddress": esim.smdp_address}

    def _order_json(self, order: _Order, internal: bool = False) -> dict[str, Any]:
        ready = time.monotonic() >= order.ready_at
        items = []
        for item in order.items:
            entry: dict[str, Any] = {}
            if ready and order.assign:
                entry["esims"] = [self._esim_brief(iccid) for iccid in item.iccids]
            entry.update(
                type="bundle",
                item=item.bundle,
                iccids=list(item.iccids) if ready or internal else [],
                quantity=item.quantity,
                subTotal=float(item.price * item.quantity),
                pricePerUnit=float(item.price),
            )
            if internal:
                entry["allowReassign"] = item.allow_reassign
            items.append(entry)
        assigned = sum(len(item.iccids) for item in order.items)
        result: dict[str, Any] = {
            "order": items,
            "total": float(order.total),
            "currency": "USD",
            "status": "completed" if ready else "processing",
            "statusMessage": f"Order completed: {assigned} eSIMs assigned" if ready else "Order is being processed",
            "orderReference": order.reference,
            "createdDate": order.created,
            "assigned": order.assign,
        }
        if internal:
            result["type"] = "transaction"
        return result

    def _organisation(self) -> dict[str, Any]:
        return {
            "name": "esimsdata sandbox",
            "currency": "USD",
            "balance": float(self._balance),
            "testCredit": 0,
            "testCreditExpiry": None,
            "callbackUrl": "",
            "callbackVersion": "V3",
            "groups": ["Standard Fixed Bundles", "Standard Unlimited Lite"],
            "users": [],
        }

    # ----- HTTP --------------------------------------------------------------------------------------------------

    def _build_app(self) -> Flask:
        app = Flask(__name__)
        # Keep keys in the vendor's order and non-ASCII names as UTF-8, as the real API serves them.
        app.json.sort_keys = False
        app.json.ensure_ascii = False
        routes = [
            ("/catalogue", "GET", self._get_catalogue),
            ("/catalogue/bundle/<name>", "GET", self._get_bundle),
            ("/orders", "POST", self._post_order),
            ("/orders", "GET", self._list_orders),
            ("/orders/<reference>", "GET", self._get_order),
            ("/esims/assignments", "GET", self._get_assignments),
            ("/esims/<iccid>", "GET", self._get_esim),
            ("/esims/<iccid>/bundles", "GET", self._get_esim_bundles),
            ("/esims/<iccid>/compatible/<name>", "GET", self._get_compatible),
            ("/organisation", "GET", self._get_organisation),
        ]
        for rule, method, view in routes:
            app.add_url_rule(API_PREFIX + rule, f"{method} {rule}", view, methods=[method])
        controls = [
            ("/reset", ["POST"], self._control_reset),
            ("/fail", ["POST"], self._control_fail),
            ("/settings", ["GET", "POST"], self._control_settings),
            ("/orders", ["GET"], self._control_orders),
            ("/requests", ["GET"], self._control_requests),
            ("/usage", ["POST"], self._control_usage),
        ]
        for rule, methods, view in controls:
            app.add_url_rule(CONTROL_PREFIX + rule, f"control {rule}", view, methods=methods)
        add_identity(app, "esimgo")
        app.before_request(self._before_request)
        app.after_request(self._after_request)
        app.register_error_handler(_ApiError, self._api_error)
        app.register_error_handler(HTTPException, self._http_error)
        return app

    @staticmethod
    def _error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
        response = Response(json.dumps({"message": message}), status=status, mimetype="application/json")
        response.headers.update(headers or {})
        return response

    def _api_error(self, error: _ApiError) -> Response:
        return self._error(error.status, error.message, error.headers)

    def _http_error(self, error: HTTPException) -> Response:
        status = error.code or 500
        return self._error(status, _DEFAULT_MESSAGES.get(status, error.name))

    def _before_request(self) -> Response | None:
        """Logs API requests, plays scripted failures, then checks the key (before routing, so 404s need one too)."""
        path = request.path
        if path.startswith(CONTROL_PREFIX + "/"):
            return None
        sub = (path[len(API_PREFIX) :] or "/") if path.startswith(API_PREFIX) else path
        with self._lock:
            self._requests.append(
                {
                    "method": request.method,
                    "path": sub,
                    "query": request.args.to_dict(),
                    "headers": dict(request.headers),
                    "body": request.get_data(as_text=True),
                }
            )
            failure = self._take_failure(sub, request.method)
        if failure is not None:
            if failure.delay:
                time.sleep(failure.delay)  # outside the lock: a slow answer must not stall other requests
            if failure.status:
                return self._failure_response(failure, sub)
        if not path.startswith(API_PREFIX + "/"):
            return None  # routing answers 404
        if request.headers.get("X-API-Key") != self.api_key:
            if request.method == "POST" and sub == "/orders":
                return Response(b"", status=401, content_type="text/plain")
            return self._error(403, "api token is invalid")
        return None

    def _take_failure(self, sub: str, method: str) -> _Failure | None:
        for failure in self._failures:
            if sub.startswith(failure.path) and failure.method in (None, method):
                failure.times -= 1
                if failure.times <= 0:
                    self._failures.remove(failure)
                return failure
        return None

    def _failure_response(self, failure: _Failure, sub: str) -> Response:
        status = failure.status
        if status == 401 and request.method == "POST" and sub == "/orders":
            return Response(b"", status=401, content_type="text/plain")
        headers = {}
        if status == 429:
            headers["Retry-After"] = str(failure.retry_after or 1)
        elif failure.retry_after is not None:
            headers["Retry-After"] = str(failure.retry_after)
        if failure.html:
            return Response(failure.message or "", status=status, content_type="text/html", headers=headers)
        return self._error(status, failure.message or _DEFAULT_MESSAGES.get(status, "Error"), headers)

    def _after_request(self, response: Response) -> Response:
        if request.path.startswith(CONTROL_PREFIX + "/"):
            return response
        now = time.time()
        with self._lock:
            window = int(now)
            if window != self._rate_window:
                self._rate_window, self._rate_count = window, 0
            self._rate_count += 1
            remaining = max(0, RATE_LIMIT - self._rate_count)
        reset = datetime.fromtimestamp(window + 1, UTC)
        response.headers["X-Ratelimit-Limit"] = str(RATE_LIMIT)
        response.headers["X-Ratelimit-Remaining"] = str(remaining)
        response.headers["X-Ratelimit-Reset"] = reset.strftime("%Y-%m-%dT%H:%M:%S.000Z")
        response.headers["X-Ratelimit-Cost"] = "1"
        return response

    @staticmethod
    def _int_arg(name: str, default: int, minimum: int = 1) -> int:
        raw = request.args.get(name)
        if raw is None or raw == "":
            return default
        try:
            value = int(raw)
        except ValueError:
            raise _ApiError(400, f"{name} must be an integer") from None
        if value < minimum:
            raise _ApiError(400, f"{name} must be at least {minimum}")
        return value

    def _json_body(self) -> dict[str, Any]:
        body = request.get_json(force=True, silent=True)
        if not isinstance(body, dict):
            raise _ApiError(400, "Request body must be a JSON object")
        return body

    # ----- API views ---------------------------------------------------------------------------------------------

    def _get_catalogue(self) -> Any:
        page = self._int_arg("page", 1)
        per_page = min(self._int_arg("perPage", 50), 1000)
        wanted = {c.strip().upper() for c in request.args.get("countries", "").split(",") if c.strip()}
        region = request.args.get("region", "").strip().lower()
        group = request.args.get("group", "").strip().lower()
        text = request.args.get("description", "").strip().lower()
        rows = [
            bundle
            for bundle, isos, bundle_region, groups, description in self._index
            if (not wanted or wanted & isos)
            and (not region or (bundle_region or "").lower() == region)
            and (not group or group in groups)
            and (not text or text in description)
        ]
        order_by = request.args.get("orderBy")
        if order_by in ("name", "price", "dataAmount", "duration", "description"):
            rows.sort(key=lambda b: b[order_by], reverse=request.args.get("direction", "asc").lower() == "desc")
        start = (page - 1) * per_page
        return {
            "bundles": rows[start : start + per_page],
            "pageCount": math.ceil(len(rows) / per_page),
            "rows": len(rows),
            "pageSize": per_page,
        }

    def _get_bundle(self, name: str) -> Any:
        bundle = self._bundles.get(name)
        if bundle is None:
            raise _ApiError(404, "Bundle not found")
        return bundle

    def _parse_line(self, index: int, raw: Any, assign: bool) -> _Line:
        where = f"order[{index}]"
        if not isinstance(raw, dict):
            raise _ApiError(400, f"{where} must be an object")
        if raw.get("type", "bundle") != "bundle":
            raise _ApiError(400, f"{where}.type must be 'bundle'")
        name = raw.get("item")
        if not isinstance(name, str) or name not in self._bundles:
            raise _ApiError(400, f"{where}.item: bundle '{name}' not found")
        quantity = raw.get("quantity")
        if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 1:
            raise _ApiError(400, f"{where}.quantity must be a whole number of at least 1")
        allow = raw.get("allowReassign", raw.get("AllowReassign", False))
        if not isinstance(allow, bool):
            raise _ApiError(400, f"{where}.allowReassign must be true or false")
        iccids = raw.get("iccids")
        if iccids is not None:
            if not isinstance(iccids, list) or not all(isinstance(i, (str, int)) for i in iccids):
                raise _ApiError(400, f"{where}.iccids must be a list of ICCIDs")
            if not assign:
                raise _ApiError(400, f"{where}.iccids may only be given with assign: true")
            if len(iccids) != quantity:
                raise _ApiError(400, f"{where}: quantity ({quantity}) must equal the number of iccids ({len(iccids)})")
            iccids = [str(i) for i in iccids]
        return _Line(name, quantity, iccids, allow)

    def _post_order(self) -> Any:
        body = self._json_body()
        kind = body.get("type")
        if kind not in ("validate", "transaction"):
            raise _ApiError(400, "type must be 'validate' or 'transaction'")
        assign = body.get("assign", False)
        if not isinstance(assign, bool):
            raise _ApiError(400, "assign must be true or false")
        raw_lines = body.get("order")
        if not isinstance(raw_lines, list) or not raw_lines:
            raise _ApiError(400, "order must be a non-empty list")
        lines = [self._parse_line(index, raw, assign) for index, raw in enumerate(raw_lines)]
        with self._lock:
            for line in lines:
                for iccid in line.iccids or []:
                    esim = self._esims.get(iccid)
                    if esim is None:
                        raise _ApiError(400, f"eSIM not found: {iccid}")
                    compatible = esim.provider == self._providers[line.bundle]
                    if not compatible and not line.allow_reassign:
                        raise _ApiError(400, "Bundle is not compatible with eSIM")
                    if compatible and len(esim.assignments) >= _MAX_BUNDLES_PER_ESIM:
                        raise _ApiError(400, f"eSIM {iccid} already holds {_MAX_BUNDLES_PER_ESIM} bundles")
            prices = [_money(self._bundles[line.bundle]["price"]) for line in lines]
            total = sum((price * line.quantity for price, line in zip(prices, lines, strict=True)), Decimal("0"))
            # validate "runs all the same checks as a real order" (DOC-QS), the balance included.
            if total > self._balance:
                raise _ApiError(400, "Insufficient balance")
            created = _nano_timestamp(datetime.now(UTC))
            if kind == "validate":
                return {
                    "order": [
                        {
                            "type": "bundle",
                            "item": line.bundle,
                            "quantity": line.quantity,
                            "subTotal": float(price * line.quantity),
                            "pricePerUnit": float(price),
                            "AllowReassign": line.allow_reassign,
                        }
                        for price, line in zip(prices, lines, strict=True)
                    ],
                    "total": float(total),
                    "valid": True,
                    "currency": "USD",
                    "createdDate": created,
                    "assigned": assign,
                }
            order = self._create_order(lines, prices, total, assign, created)
            return self._order_json(order)

    def _create_order(
        self, lines: list[_Line], prices: list[Decimal], total: Decimal, assign: bool, created: str
    ) -> _Order:
        reference = str(uuid.uuid4())
        ready_at = time.monotonic() + self._processing_seconds
        items: list[_Item] = []
        slot = 0
        for line, price in zip(lines, prices, strict=True):
            bundle = self._bundles[line.bundle]
            provider = self._providers[line.bundle]
            iccids: list[str] = []
            if assign:
                for target in line.iccids or [None] * line.quantity:
                    esim = self._esims.get(target) if target else None
                    if esim is None or esim.provider != provider:
                        esim = self._new_esim(provider)  # new order, or an allowed reassignment
                    assignment = self._new_assignment(bundle, f"{reference}-{slot}", ready_at)
                    esim.assignments.append(assignment)
                    self._assignments_by_ref[assignment.reference] = (esim, assignment)
                    iccids.append(esim.iccid)
                    slot += 1
            else:
                self._inventory[line.bundle] = self._inventory.get(line.bundle, 0) + line.quantity
            items.append(_Item(line.bundle, line.quantity, line.allow_reassign, price, iccids))
        order = _Order(reference, assign, items, total, created, ready_at)
        self._balance -= total
        self._orders.append(order)
        self._orders_by_ref[reference] = order
        return order

    def _list_orders(self) -> Any:
        page = self._int_arg("page", 1)
        limit = min(self._int_arg("limit", 50), 1000)
        checks = {
            "eq": lambda a, b: a == b,
            "lt": lambda a, b: a < b,
            "lte": lambda a, b: a <= b,
            "gt": lambda a, b: a > b,
            "gte": lambda a, b: a >= b,
        }
        bounds = []
        for raw in request.args.getlist("createdAt"):  # e.g. createdAt=gte:2024-03-01T00:00:00.000Z
            op, _, stamp = raw.partition(":")
            if op not in checks:
                op, stamp = "eq", raw
            try:
                bounds.append((op, _parse_timestamp(stamp)))
            except ValueError:
                raise _ApiError(400, f"createdAt is not a timestamp: {raw}") from None
        with self._lock:
            # Newest first, as order histories are usually read.
            found = [
                order
                for order in reversed(self._orders)
                if all(checks[op](_parse_timestamp(order.created), when) for op, when in bounds)
            ]
            start = (page - 1) * limit
            shown = [self._order_json(o) for o in found[start : start + limit]]
            if self._order_list_shape == "list":
                return shown
            if self._order_list_shape == "object":
                return shown[0] if shown else {}
            return {"orders": shown, "rows": len(found)}

    def _get_order(self, reference: str) -> Any:
        with self._lock:
            order = self._orders_by_ref.get(reference)
            if order is None:
                raise _ApiError(404, "Order not found")
            return self._order_json(order)

    def _get_assignments(self) -> Any:
        references = [r.strip() for r in request.args.get("reference", "").split(",") if r.strip()]
        if not references:
            raise _ApiError(400, "reference is required")
        rows: list[tuple[_Esim, str, str]] = []  # (eSIM, bundle name, reference asked for)
        now = time.monotonic()
        with self._lock:
            for reference in references:
                order = self._orders_by_ref.get(reference)
                if order is not None:
                    ready_at = order.ready_at
                    found = [(self._esims[i], item.bundle, reference) for item in order.items for i in item.iccids]
                elif reference in self._assignments_by_ref:
                    esim, assignment = self._assignments_by_ref[reference]
                    ready_at = assignment.ready_at
                    found = [(esim, assignment.bundle, reference)]
                else:
                    raise _ApiError(400, f"Reference not found: {reference}")
                if now < ready_at:
                    raise _ApiError(503, "Processing - Please come back later", {"Retry-After": "1"})
                rows.extend(found)
        if "application/json" in request.headers.get("Accept", ""):
            details = []
            for esim, _, _ in rows:
                entry = {**self._esim_brief(esim.iccid), "profileStatus": "Released"}
                if "appleInstallUrl" in request.args.get("additionalFields", ""):
                    entry["appleInstallUrl"] = self._apple_url(esim)
                details.append(entry)
            # One eSIM comes back as a bare object, several as a list.
            return details[0] if len(details) == 1 else details
        # CSV is the real default, also for `Accept: */*` which is what `requests` sends on its own.
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["ICCID", "Matching ID", "RSP URL", "Bundle", "Reference"])
        for esim, bundle, reference in rows:
            writer.writerow([esim.iccid, esim.matching_id, esim.smdp_address, bundle, reference])
        return Response(out.getvalue(), mimetype="text/csv")

    @staticmethod
    def _apple_url(esim: _Esim) -> str:
        return (
            "https://esimsetup.apple.com/esim_qrcode_provisioning?carddata="
            f"LPA:1%24{esim.smdp_address}%24{esim.matching_id}"
        )

    def _esim_or_400(self, iccid: str) -> _Esim:
        esim = self._esims.get(iccid)
        if esim is None:
            # The real API answers 400, not 404, for an ICCID it does not know or that belongs to someone else.
            raise _ApiError(400, f"eSIM not found or not accessible: {iccid}")
        return esim

    def _get_esim(self, iccid: str) -> Any:
        with self._lock:
            esim = self._esim_or_400(iccid)
            result: dict[str, Any] = {
                "iccid": esim.iccid,
                "matchingId": esim.matching_id,
                "smdpAddress": esim.smdp_address,
                "profileStatus": "Released",
                "pin": esim.pin,
                "puk": esim.puk,
                "firstInstalledDateTime": None,
                "customerRef": None,
            }
            if "appleInstallUrl" in request.args.get("additionalFields", ""):
                result["appleInstallUrl"] = self._apple_url(esim)
            return result

    def _get_esim_bundles(self, iccid: str) -> Any:
        include_used = request.args.get("includeUsed", "false").lower() == "true"
        limit = min(self._int_arg("limit", 15), 200)
        with self._lock:
            esim = self._esim_or_400(iccid)
            grouped: dict[str, list[dict[str, Any]]] = {}
            for assignment, state in zip(esim.assignments, self._states(esim), strict=True):
                if state.lower() in _USED_STATES and not include_used:
                    continue
                grouped.setdefault(assignment.bundle, []).append(
                    {
                        "id": assignment.id,
                        "assignmentReference": assignment.reference,
                        "callTypeGroup": "data",
                        "initialQuantity": assignment.initial,
                        "remainingQuantity": assignment.remaining,
                        "assignmentDateTime": _second_timestamp(assignment.assigned_at),
                        "bundleState": state,
                        "unlimited": assignment.unlimited,
                    }
                )
            bundles = [
                {"name": name, "description": self._bundles[name]["description"], "assignments": assignments}
                for name, assignments in grouped.items()
            ]
            return {"bundles": bundles[:limit]}

    def _get_compatible(self, iccid: str, name: str) -> Any:
        with self._lock:
            esim = self._esim_or_400(iccid)
            if name not in self._bundles:
                raise _ApiError(404, "Bundle not found")
            return {"compatible": esim.provider == self._providers[name]}

    def _get_organisation(self) -> Any:
        with self._lock:
            organisation = self._organisation()
            return organisation if self._organisation_shape == "flat" else {"organisations": [organisation]}

    # ----- control views (no API key: loopback only, for demo mode and scripts) -------------------------------

    def _control_reset(self) -> Any:
        self.reset()
        return {"ok": True}

    def _control_fail(self) -> Any:
        body = self._json_body()
        allowed = {"path", "status", "times", "method", "message", "delay", "retry_after", "html"}
        unknown = set(body) - allowed
        if unknown:
            raise _ApiError(400, f"unknown fields: {', '.join(sorted(unknown))}")
        if not isinstance(body.get("path"), str) or not isinstance(body.get("status"), int):
            raise _ApiError(400, "path (string) and status (integer) are required")
        try:
            self.fail(**body)
        except (TypeError, ValueError) as error:
            raise _ApiError(400, str(error)) from None
        return {"ok": True}

    def _control_settings(self) -> Any:
        if request.method == "POST":
            body = self._json_body()
            unknown = set(body) - {"processing_seconds", "balance", "organisation_shape", "order_list_shape"}
            if unknown:
                raise _ApiError(400, f"unknown fields: {', '.join(sorted(unknown))}")
            try:
                self.settings(**body)
            except (TypeError, ValueError) as error:
                raise _ApiError(400, str(error)) from None
        with self._lock:
            return {
                "processing_seconds": self._processing_seconds,
                "balance": float(self._balance),
                "organisation_shape": self._organisation_shape,
                "order_list_shape": self._order_list_shape,
            }

    def _control_orders(self) -> Any:
        return {"orders": self.orders}

    def _control_requests(self) -> Any:
        return {"requests": self.requests_log}

    def _control_usage(self) -> Any:
        body = self._json_body()
        try:
            response = self.send_usage_callback(
                body["url"],
                str(body["iccid"]),
                int(body["percent"]),
                encoding=body.get("encoding", "hex"),
                bundle_name=body.get("bundle_name"),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise _ApiError(400, f"cannot send usage callback: {error}") from None
        except requests.RequestException as error:
            raise _ApiError(502, f"callback delivery failed: {error}") from None
        return {"status": response.status_code, "body": response.text[:2000]}


def main(argv: list[str] | None = None) -> int:
    """`python -m sandboxes.esimgo --port 8101 [--api-key K] [--processing-seconds S] [--seed N]`."""
    parser = argparse.ArgumentParser(description="Run the eSIM Go v2.4 sandbox on 127.0.0.1 (base URL .../v2.4).")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--api-key", default="sandbox-key")
    parser.add_argument("--processing-seconds", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    sandbox = EsimGoSandbox(api_key=args.api_key, seed=args.seed, processing_seconds=args.processing_seconds)
    return serve_forever(sandbox.app, "esimgo", args.port, [])


if __name__ == "__main__":
    raise SystemExit(main())
