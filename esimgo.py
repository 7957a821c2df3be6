"""The eSIM Go v2.4 reseller API client: the one door to eSIM Go (../shared/reference/esimgo.md).

Every call goes through `EsimGoClient._request`: base URL, `X-API-Key`, `Accept: application/json`, a
(connect, read) timeout, urllib3 `Retry` with backoff for GETs only (429/5xx, honouring `Retry-After`),
and failures mapped to the `EsimGoError` hierarchy. An order-creating POST is never retried after it may
have reached eSIM Go. Public methods return dataclasses with `Decimal` money and `str` ICCIDs, and parse
the shapes eSIM Go really sends (catalogue envelope, float prices, null speed, CSV assignments, a flat or
listed organisation) rather than the ones its schema claims.
"""

from __future__ import annotations

import csv
import io
import logging
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

import metrics

log = logging.getLogger(__name__)


def one_line(text: str, limit: int = 200) -> str:
    """A vendor's body as one short line for logs and /healthz: tags dropped, whitespace folded, cut."""
    plain = " ".join(re.sub(r"<[^>]*>", " ", text).split())
    return plain if len(plain) <= limit else plain[: limit - 1] + "…"

TRANSIENT_STATUSES = (429, 500, 502, 503, 504)


# ---- errors ------------------------------------------------------------------------------------


class EsimGoError(Exception):
    """Any failure talking to eSIM Go. `transient` says whether trying again later may succeed."""

    transient = False

    def __init__(self, message: str, status: int | None = None, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.retry_after = retry_after


class EsimGoAuthError(EsimGoError):
    """401/403: the API key is wrong or lacks permission (also eSIM Go's answer for a foreign eSIM)."""


class EsimGoBadRequest(EsimGoError):
    """400: eSIM Go refused the request as it stands (unknown bundle or ICCID, insufficient balance, ...)."""

    @property
    def insufficient_balance(self) -> bool:
        return "balance" in self.message.lower()


class EsimGoNotFound(EsimGoError):
    """404: no such bundle or order."""


class EsimGoRateLimited(EsimGoError):
    """429: over eSIM Go's rate limit; `retry_after` seconds says when to come back."""

    transient = True


class EsimGoServerError(EsimGoError):
    """5xx: eSIM Go failed; worth retrying later."""

    transient = True


class EsimGoProcessing(EsimGoServerError):
    """503: eSIM Go is still processing (e.g. assignments of a fresh order); come back later."""


class EsimGoUnavailable(EsimGoError):
    """No usable answer: connection refused, DNS, timeout. `maybe_sent` is True when the request may have
    reached eSIM Go (a read timeout), which matters for an order-creating POST."""

    transient = True

    def __init__(self, message: str, *, maybe_sent: bool) -> None:
        super().__init__(message)
        self.maybe_sent = maybe_sent


class EsimGoBadResponse(EsimGoError):
    """A 2xx answer we could not understand (not JSON, missing fields)."""


# ---- results -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class BundleCountry:
    iso: str
    name: str
    region: str


@dataclass(frozen=True)
class CatalogueBundle:
    """One bundle as eSIM Go sells it to us. `cost` is what we pay, never what the buyer pays."""

    name: str
    description: str
    countries: tuple[BundleCountry, ...]
    data_mb: int  # 1 GB = 1000 MB; for unlimited plans the daily high-speed quota (if any)
    duration_days: int
    speed: tuple[str, ...]
    unlimited: bool
    cost: Decimal
    groups: tuple[str, ...] = ()
    autostart: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "countries": [{"iso": c.iso, "name": c.name, "region": c.region} for c in self.countries],
            "dataAmount": self.data_mb,
            "duration": self.duration_days,
            "speed": list(self.speed),
            "unlimited": self.unlimited,
            "price": str(self.cost),
            "groups": list(self.groups),
            "autostart": self.autostart,
        }

    @classmethod
    def from_api(cls, raw: dict[str, Any]) -> CatalogueBundle:
        """Parse one catalogue item (the real API's shape, or our cache's `to_dict`)."""
        try:
            name = str(raw["name"])
            countries = tuple(
                BundleCountry(
                    iso=str(c.get("iso") or "").upper(),
                    name=str(c.get("name") or ""),
                    region=str(c.get("region") or ""),
                )
                for c in (raw.get("countries") or [])
                if isinstance(c, dict)
            )
            return cls(
                name=name,
                description=str(raw.get("description") or name),
                countries=countries,
                data_mb=int(raw.get("dataAmount") or 0),
                duration_days=int(raw.get("duration") or 0),
                speed=tuple(str(s) for s in (raw.get("speed") or ())),  # the real API sends null sometimes
                unlimited=bool(raw.get("unlimited")),
                cost=_money(raw.get("price")),
                groups=tuple(str(g) for g in (raw.get("groups") or ())),
                autostart=bool(raw.get("autostart", True)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise EsimGoBadResponse(f"catalogue item not understood: {exc}: {str(raw)[:200]}") from exc


@dataclass(frozen=True)
class Esim:
    """What a buyer needs to install an eSIM."""

    iccid: str
    matching_id: str
    smdp_address: str

    @property
    def lpa(self) -> str:
        return lpa_string(self.smdp_address, self.matching_id)


@dataclass(frozen=True)
class RecentOrders:
    """What GET /orders showed: the orders, and whether that was all of them (False: only the newest one)."""

    orders: tuple[Order, ...]
    complete: bool


@dataclass(frozen=True)
class Order:
    reference: str | None
    status: str
    total: Decimal
    currency: str
    esims: tuple[Esim, ...] = ()
    status_message: str = ""
    valid: bool | None = None  # for type=validate
    items: tuple[str, ...] = ()  # bundle names ordered
    created: str | None = None

    @property
    def completed(self) -> bool:
        return self.status.lower() == "completed" and bool(self.esims)


@dataclass(frozen=True)
class EsimDetails:
    iccid: str
    matching_id: str
    smdp_address: str
    profile_status: str
    first_installed: Any = None


@dataclass(frozen=True)
class BundleUsage:
    """One bundle assignment on an eSIM; quantities in bytes (1 GB = 10**9)."""

    name: str
    state: str  # lower-cased: processing, queued, active, depleted, expired, revoked, lapsed
    initial_bytes: int | None  # None when eSIM Go did not say (never taken for 0: that would read "used up")
    remaining_bytes: int | None
    unlimited: bool
    assigned_at: str | None = None
    reference: str | None = None  # the assignment's reference, as usage callbacks name the bundle


@dataclass(frozen=True)
class Balance:
    amount: Decimal
    currency: str
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


# ---- helpers -----------------------------------------------------------------------------------


def _money(value: Any) -> Decimal:
    # eSIM Go sends floats (6.9); str() first keeps 6.9 exact instead of 6.9000000000000003552...
    if value is None or isinstance(value, bool):
        raise ValueError("missing price")
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"price {value!r} is not a number") from None
    if not amount.is_finite() or amount < 0:
        raise ValueError(f"price {value!r} is not a valid amount")
    return amount


def strip_scheme(address: str) -> str:
    """SM-DP+ addresses are host names; the docs' examples sometimes carry http(s)://."""
    address = address.strip()
    for prefix in ("https://", "http://"):
        if address.lower().startswith(prefix):
            return address[len(prefix):].rstrip("/")
    return address


def lpa_string(smdp_address: str, matching_id: str) -> str:
    """The activation code a phone scans: LPA:1$<SM-DP+>$<Matching ID>."""
    return f"LPA:1${strip_scheme(smdp_address)}${matching_id.strip()}"


def _esim_from(raw: dict[str, Any]) -> Esim:
    try:
        return Esim(
            iccid=str(raw["iccid"]).strip(),
            matching_id=str(raw["matchingId"]).strip(),
            smdp_address=strip_scheme(str(raw["smdpAddress"])),
        )
    except (KeyError, TypeError) as exc:
        raise EsimGoBadResponse(f"eSIM entry without iccid/matchingId/smdpAddress: {str(raw)[:200]}") from exc


def parse_assignments_csv(text: str) -> list[Esim]:
    """Parse the CSV eSIM Go sends when it ignores Accept (columns ICCID, Matching ID, RSP URL, ...)."""
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    if not reader.fieldnames:
        return []
    columns = {name.strip().lower(): name for name in reader.fieldnames if name}
    try:
        iccid_col = columns["iccid"]
        matching_col = columns["matching id"]
        smdp_col = columns.get("rsp url") or columns["smdp address"]
    except KeyError as exc:
        raise EsimGoBadResponse(f"assignments CSV lacks column {exc}: {reader.fieldnames}") from None
    esims = []
    for row in reader:
        if not (row.get(iccid_col) or "").strip():
            continue
        esims.append(_esim_from({
            "iccid": row[iccid_col], "matchingId": row[matching_col], "smdpAddress": row[smdp_col],
        }))
    return esims


def parse_order(body: Any) -> Order:
    """Parse the transaction/validate/get-order shape (reference §1.3, §1.4)."""
    if not isinstance(body, dict):
        raise EsimGoBadResponse(f"order response is not an object: {str(body)[:200]}")
    esims: list[Esim] = []
    items: list[str] = []
    for item in body.get("order") or []:
        if isinstance(item, dict):
            items.append(str(item.get("item") or ""))
            esims.extend(_esim_from(e) for e in item.get("esims") or [] if isinstance(e, dict))
    try:
        total = _money(body.get("total", 0))
    except ValueError as exc:
        raise EsimGoBadResponse(f"order total not understood: {exc}") from None
    return Order(
        reference=body.get("orderReference"),
        status=str(body.get("status") or ("validated" if body.get("valid") is not None else "")),
        total=total,
        currency=str(body.get("currency") or "USD"),
        esims=tuple(esims),
        status_message=str(body.get("statusMessage") or ""),
        valid=body.get("valid"),
        items=tuple(items),
        created=body.get("createdDate"),
    )


# ---- the client --------------------------------------------------------------------------------


class EsimGoClient:
    """eSIM Go v2.4 over HTTPS (or a sandbox on 127.0.0.1)."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: tuple[float, float] = (3.05, 30.0),
        get_retries: int = 3,
        backoff: float = 0.5,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()
        self.session.headers.update({"X-API-Key": api_key, "Accept": "application/json",
                                     "User-Agent": "esimsdata/1.0"})
        retry = Retry(
            total=get_retries,
            connect=get_retries,  # a refused connection never reached eSIM Go, so any method may retry it
            read=get_retries,
            status=get_retries,
            backoff_factor=backoff,
            status_forcelist=TRANSIENT_STATUSES,
            allowed_methods=frozenset({"GET"}),  # read/status retries: GETs only, never an order POST
            respect_retry_after_header=True,
            raise_on_status=False,  # hand us the last answer so we can map it to our errors
        )
        adapter = HTTPAdapter(max_retries=retry)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)

    def close(self) -> None:
        self.session.close()

    # -- the one request method --

    def _request(self, method: str, path: str, *, params: dict[str, Any] | None = None,
                 json: Any = None, accept: str = "application/json") -> requests.Response:
        endpoint = metrics.esimgo_endpoint(method, path)
        started = time.perf_counter()
        outcome = "unreachable"
        try:
            response = self._send(method, path, params=params, json=json, accept=accept)
            outcome = "ok" if response.status_code < 400 else str(response.status_code)
        finally:
            metrics.ESIMGO.labels(endpoint, outcome).inc()
            metrics.ESIMGO_SECONDS.labels(endpoint).observe(time.perf_counter() - started)
        if response.status_code >= 400:
            raise self._error_for(method, path, response)
        return response

    def _send(self, method: str, path: str, *, params: dict[str, Any] | None, json: Any,
              accept: str) -> requests.Response:
        url = f"{self.base_url}/{path.lstrip('/')}"
        try:
            return self.session.request(method, url, params=params, json=json, timeout=self.timeout,
                                        headers={"Accept": accept})
        except requests.exceptions.ConnectTimeout as exc:
            raise EsimGoUnavailable(f"eSIM Go did not accept a connection: {exc}", maybe_sent=False) from exc
        except requests.exceptions.ConnectionError as exc:
            # A refused connection was never sent; a dropped one might have been.
            never_sent = any(s in str(exc) for s in ("Failed to establish a new connection", "Failed to resolve"))
            raise EsimGoUnavailable(f"eSIM Go unreachable: {exc}", maybe_sent=not never_sent) from exc
        except requests.exceptions.Timeout as exc:
            raise EsimGoUnavailable(f"eSIM Go timed out: {exc}", maybe_sent=True) from exc
        except requests.exceptions.RequestException as exc:
            raise EsimGoUnavailable(f"eSIM Go request failed: {exc}", maybe_sent=True) from exc

    @staticmethod
    def _error_for(method: str, path: str, response: requests.Response) -> EsimGoError:
        status = response.status_code
        try:
            message = one_line(str(response.json().get("message") or ""))
        except (ValueError, AttributeError):
            message = one_line(response.text)
        message = message or response.reason or f"HTTP {status}"
        retry_after = _retry_after(response)
        log.warning("eSIM Go %s %s -> %s %s", method, path, status, message)
        if status in (401, 403):
            cls: type[EsimGoError] = EsimGoAuthError
        elif status == 404:
            cls = EsimGoNotFound
        elif status == 429:
            cls = EsimGoRateLimited
        elif status == 503:
            cls = EsimGoProcessing
        elif status >= 500:
            cls = EsimGoServerError
        else:
            cls = EsimGoBadRequest
        return cls(message, status, retry_after=retry_after)

    def _json(self, response: requests.Response) -> Any:
        try:
            return response.json()
        except ValueError:
            raise EsimGoBadResponse(
                f"expected JSON from {response.request.method} {response.url}, got "
                f"{response.headers.get('Content-Type')}: {one_line(response.text)}", response.status_code
            ) from None

    # -- catalogue --

    def catalogue(self, per_page: int = 1000, **filters: str) -> list[CatalogueBundle]:
        """Every bundle, all pages (`filters`: countries, region, group, description)."""
        bundles: list[CatalogueBundle] = []
        page = 1
        while True:
            body = self._json(self._request("GET", "/catalogue", params={"page": page, "perPage": per_page,
                                                                         **filters}))
            if isinstance(body, list):  # the schema's claim; the real API wraps it
                items, page_count = body, page
            elif isinstance(body, dict) and isinstance(body.get("bundles"), list):
                items, page_count = body["bundles"], int(body.get("pageCount") or page)
            else:
                raise EsimGoBadResponse(f"catalogue envelope not understood: {str(body)[:200]}")
            bundles.extend(CatalogueBundle.from_api(item) for item in items if isinstance(item, dict))
            if page >= page_count or not items:
                return bundles
            page += 1

    def bundle(self, name: str) -> CatalogueBundle:
        body = self._json(self._request("GET", f"/catalogue/bundle/{requests.utils.quote(name, safe='')}"))
        if isinstance(body, dict) and isinstance(body.get("bundle"), dict):
            body = body["bundle"]
        if not isinstance(body, dict):
            raise EsimGoBadResponse(f"bundle response not understood: {str(body)[:200]}")
        return CatalogueBundle.from_api(body)

    # -- orders --

    def create_order(self, bundle_name: str, *, quantity: int = 1, iccids: Iterable[str] | None = None,
                     validate: bool = False) -> Order:
        """Buy (or with validate=True, only check) `quantity` of a bundle, assigned to new eSIMs or to `iccids`.

        Never retried here: a POST that may have reached eSIM Go raises EsimGoUnavailable(maybe_sent=True),
        and the caller must find out whether an order exists before buying again.
        """
        item: dict[str, Any] = {"type": "bundle", "quantity": quantity, "item": bundle_name,
                                "allowReassign": False}
        if iccids is not None:
            item["iccids"] = [str(i) for i in iccids]
            item["quantity"] = len(item["iccids"])
        body = {"type": "validate" if validate else "transaction", "assign": True, "order": [item]}
        return parse_order(self._json(self._request("POST", "/orders", json=body)))

    def get_order(self, reference: str) -> Order:
        return parse_order(self._json(self._request("GET", f"/orders/{requests.utils.quote(reference, safe='')}")))

    def recent_orders(self, since: datetime, limit: int = 100) -> RecentOrders:
        """Orders created at or after `since` (UTC), to find out whether an interrupted purchase went through."""
        stamp = since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        body = self._json(self._request("GET", "/orders", params={"createdAt": f"gte:{stamp}", "limit": limit,
                                                                  "includeIccids": "true"}))
        # The list envelope is not documented: {"orders": [...]} and a bare list are whole lists; the schema's
        # own example is a single order object, which shows only one order (so it proves nothing about others),
        # and an empty object, which then can only mean there is none.
        complete = True
        if isinstance(body, dict) and "orders" in body:
            items = body["orders"]
        elif isinstance(body, dict) and "orderReference" in body:
            items, complete = [body], False
        elif body == {}:
            items = []
        else:
            items = body
        if not isinstance(items, list):
            raise EsimGoBadResponse(f"order list not understood: {one_line(str(body))}")
        return RecentOrders(tuple(parse_order(i) for i in items if isinstance(i, dict)), complete)

    def assignments(self, reference: str) -> list[Esim]:
        """Install details of an order's eSIMs; JSON when eSIM Go honours Accept, CSV otherwise."""
        response = self._request("GET", "/esims/assignments", params={"reference": reference})
        content_type = response.headers.get("Content-Type", "").lower()
        if "json" in content_type:
            body = self._json(response)
            items = body if isinstance(body, list) else [body]
            return [_esim_from(item) for item in items if isinstance(item, dict)]
        return parse_assignments_csv(response.text)

    # -- eSIMs --

    def esim(self, iccid: str) -> EsimDetails:
        body = self._json(self._request("GET", f"/esims/{iccid}"))
        if not isinstance(body, dict):
            raise EsimGoBadResponse(f"eSIM response not understood: {str(body)[:200]}")
        esim = _esim_from(body)
        return EsimDetails(esim.iccid, esim.matching_id, esim.smdp_address,
                           str(body.get("profileStatus") or ""), body.get("firstInstalledDateTime"))

    def esim_bundles(self, iccid: str, include_used: bool = False) -> list[BundleUsage]:
        body = self._json(self._request("GET", f"/esims/{iccid}/bundles",
                                        params={"includeUsed": str(include_used).lower()}))
        usages = []
        for bundle in (body.get("bundles") if isinstance(body, dict) else None) or []:
            for a in bundle.get("assignments") or []:
                try:
                    usages.append(BundleUsage(
                        name=str(bundle.get("name") or ""),
                        state=str(a.get("bundleState") or "").lower(),  # eSIM Go mixes "Active"/"active"
                        initial_bytes=_quantity(a.get("initialQuantity")),
                        remaining_bytes=_quantity(a.get("remainingQuantity")),
                        unlimited=bool(a.get("unlimited")),
                        assigned_at=a.get("assignmentDateTime"),
                        reference=str(a.get("assignmentReference") or "") or None,
                    ))
                except (TypeError, ValueError) as exc:
                    raise EsimGoBadResponse(f"bundle assignment not understood: {exc}") from None
        return usages

    def compatible(self, iccid: str, bundle_name: str) -> bool:
        body = self._json(self._request("GET", f"/esims/{iccid}/compatible/{bundle_name}"))
        return bool(isinstance(body, dict) and body.get("compatible"))

    def balance(self) -> Balance:
        body = self._json(self._request("GET", "/organisation"))
        org = body
        if isinstance(body, dict) and isinstance(body.get("organisations"), list) and body["organisations"]:
            org = body["organisations"][0]
        if not isinstance(org, dict) or "balance" not in org:
            raise EsimGoBadResponse(f"organisation response not understood: {str(body)[:200]}")
        try:
            amount = _money(org["balance"])
        except ValueError as exc:
            raise EsimGoBadResponse(str(exc)) from None
        return Balance(amount=amount, currency=str(org.get("currency") or "USD"), raw=org)


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _quantity(value: Any) -> int | None:
    """A quantity of bytes as eSIM Go sends it, None if it sent none; TypeError/ValueError if not a number."""
    if value is None or value == "":
        return None
    number = int(value)
    if number < 0:
        raise ValueError(f"negative quantity {number}")
    return number
