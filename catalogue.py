"""The plan catalogue: eSIM Go's bundles cached on disk and in memory, grouped for the shop (SPEC §5).

A background thread per process keeps the cache fresh: it loads `data/catalogue.json` at start, and
when that is missing or older than CATALOGUE_REFRESH_HOURS it fetches every page from eSIM Go — one
process at a time, under a file lock, so gunicorn workers do not all hit eSIM Go — and the others pick
the new file up from disk. A buyer's request only ever reads memory.

Groupings come from the bundles themselves: a bundle for one country is *local* to it; one spanning
countries of at most two regions is *regional* (named by its main region); wider is *global*.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from durable import atomic_write
from esimgo import CatalogueBundle, EsimGoClient, EsimGoError, one_line
from pricing import Price, PriceSettings, sale_price

log = logging.getLogger(__name__)

GLOBAL_MIN_REGIONS = 3  # a bundle covering this many regions or more is sold as "Global"


def flag(iso: str) -> str:
    """The flag emoji of an ISO 3166 alpha-2 code (regional indicator letters)."""
    if len(iso) != 2 or not iso.isalpha():
        return "🌐"
    return "".join(chr(0x1F1E6 + ord(ch) - ord("A")) for ch in iso.upper())


def slug(text: str) -> str:
    return "-".join("".join(ch if ch.isalnum() else " " for ch in text.lower()).split())


@dataclass(frozen=True)
class Plan:
    """A bundle as the shop sells it: what the buyer gets and pays. The cost stays inside."""

    bundle: CatalogueBundle
    kind: str  # "local" | "regional" | "global"
    area: str  # ISO code for local, region slug for regional, "global"
    area_name: str
    price: Price

    @property
    def name(self) -> str:
        return self.bundle.name

    def public(self) -> dict[str, Any]:
        b = self.bundle
        return {
            "name": b.name,
            "kind": self.kind,
            "area": self.area,
            "area_name": self.area_name,
            "unlimited": b.unlimited,
            "data_mb": b.data_mb,
            "data_gb": _gb(b.data_mb),
            "duration_days": b.duration_days,
            "speed": list(b.speed),
            "countries": len(b.countries),
            "price_usd": self.price.usd,
            "stars": self.price.stars,
        }


def _gb(mb: int) -> float | int:
    # 1 GB = 1000 MB, as eSIM Go counts (SPEC §5); whole numbers stay whole for display.
    value = mb / 1000
    return int(value) if value == int(value) else round(value, 2)


def classify(bundle: CatalogueBundle) -> tuple[str, str, str]:
    """(kind, area key, area display name) of a bundle, from its own country list."""
    countries = bundle.countries
    if len(countries) == 1:
        c = countries[0]
        return "local", c.iso, c.name
    regions = Counter(c.region for c in countries if c.region)
    if not countries or len(regions) >= GLOBAL_MIN_REGIONS:
        return "global", "global", "Global"
    region = regions.most_common(1)[0][0]
    return "regional", slug(region), region


def _plan_order(plan: Plan) -> tuple:
    b = plan.bundle
    return (b.unlimited, b.duration_days if b.unlimited else b.data_mb, b.duration_days, plan.price.usd, b.name)


class CatalogueIndex:
    """An immutable, priced and grouped view of one catalogue fetch."""

    def __init__(self, bundles: list[CatalogueBundle], prices: PriceSettings, fetched_at: str) -> None:
        self.fetched_at = fetched_at
        self.bundles = bundles
        self.prices = prices
        self.plans: dict[str, Plan] = {}
        self.by_area: dict[tuple[str, str], list[Plan]] = {}
        area_info: dict[tuple[str, str], dict[str, Any]] = {}
        for bundle in bundles:
            kind, area, area_name = classify(bundle)
            price = sale_price(bundle.cost, area if kind == "local" else None, prices)
            plan = Plan(bundle, kind, area, area_name, price)
            self.plans[bundle.name] = plan
            self.by_area.setdefault((kind, area), []).append(plan)
            info = area_info.setdefault((kind, area), {"name": area_name, "region": None})
            if kind == "local":
                info["region"] = bundle.countries[0].region
        for plans in self.by_area.values():
            plans.sort(key=_plan_order)
        self.areas = area_info

    def summary(self, kind: str, area: str) -> dict[str, Any]:
        plans = self.by_area[(kind, area)]
        cheapest = min(plans, key=lambda p: p.price.usd)
        info = self.areas[(kind, area)]
        entry: dict[str, Any] = {
            "name": info["name"],
            "plan_count": len(plans),
            "from_usd": cheapest.price.usd,
            "from_stars": cheapest.price.stars,
        }
        if kind == "local":
            entry.update(code=area, flag=flag(area), region=info["region"])
        else:
            entry.update(code=area, flag="🌍" if kind == "regional" else "🌐",
                         countries=max(len(p.bundle.countries) for p in plans))
        return entry

    def listing(self) -> dict[str, Any]:
        """Everything the catalogue screen needs, in one answer."""
        def entries(kind: str) -> list[dict[str, Any]]:
            keys = [area for (k, area) in self.by_area if k == kind]
            return sorted((self.summary(kind, a) for a in keys), key=lambda e: e["name"])
        global_entry = self.summary("global", "global") if ("global", "global") in self.by_area else None
        return {"countries": entries("local"), "regions": entries("regional"), "global": global_entry,
                "updated_at": self.fetched_at}


class Catalogue:
    """The process's catalogue: memory first, disk behind it, eSIM Go behind that.

    `prices` gives the price settings in force (the owner may change them at any time, `shop_settings.py`): the
    index is priced again when it gives different ones, by the first reader or background round to see them."""

    def __init__(self, client: EsimGoClient, cache_path: str | os.PathLike,
                 prices: PriceSettings | Callable[[], PriceSettings],
                 refresh_seconds: float = 86400, retry_seconds: float = 60) -> None:
        self.client = client
        self.cache_path = Path(cache_path)
        self.lock = FileLock(str(self.cache_path) + ".lock", timeout=0)
        self.prices: Callable[[], PriceSettings] = prices if callable(prices) else (lambda: prices)
        self._repricing = threading.Lock()
        self.refresh_seconds = refresh_seconds
        self.retry_seconds = retry_seconds
        self._index: CatalogueIndex | None = None
        self._loaded_mtime: float | None = None
        self.last_error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- reads (never touch the network) --

    @property
    def index(self) -> CatalogueIndex | None:
        """The catalogue at the prices in force (None before the first load)."""
        index = self._index
        if index is None:
            return None
        prices = self.prices()
        if index.prices is prices or index.prices == prices:
            return index
        with self._repricing:  # one thread reprices; the others wait for its result (~0.1 s for 5,000 plans)
            index = self._index
            if index is not None and index.prices != prices:
                started = time.monotonic()
                repriced = CatalogueIndex(index.bundles, prices, index.fetched_at)
                if self._index is index:  # a fresh catalogue loaded meanwhile is already priced: it stays
                    self._index = repriced
                    log.info("catalogue: %d plans repriced for the new price settings in %.3fs",
                             len(repriced.plans), time.monotonic() - started)
                index = self._index
            return index

    def plan(self, name: str) -> Plan | None:
        index = self.index
        return index.plans.get(name) if index else None

    def state(self) -> dict[str, Any]:
        index = self._index
        return {
            "ok": index is not None,
            "bundles": len(index.plans) if index else 0,
            "fetched_at": index.fetched_at if index else None,
            "last_error": self.last_error,
        }

    # -- loading --

    def load_from_disk(self) -> bool:
        """Load the disk cache if it changed since we last read it; True if memory holds a catalogue."""
        try:
            mtime = self.cache_path.stat().st_mtime
        except FileNotFoundError:
            return self._index is not None
        if mtime == self._loaded_mtime:
            return True
        try:
            raw = json.loads(self.cache_path.read_text(encoding="utf-8"))
            bundles = [CatalogueBundle.from_api(b) for b in raw["bundles"]]
            self._index = CatalogueIndex(bundles, self.prices(), raw["fetched_at"])
            self._loaded_mtime = mtime
            log.info("catalogue: %d bundles loaded from %s (fetched %s)", len(bundles), self.cache_path,
                     raw["fetched_at"])
        except (OSError, ValueError, KeyError, TypeError, EsimGoError) as exc:
            log.error("catalogue cache %s unreadable (%s); will fetch again", self.cache_path, exc)
            return self._index is not None
        return True

    def cache_age(self) -> float | None:
        try:
            return time.time() - self.cache_path.stat().st_mtime
        except FileNotFoundError:
            return None

    def refresh(self) -> bool:
        """Fetch the whole catalogue from eSIM Go and replace the cache. False if another process is on it
        or eSIM Go failed (the error is kept for /healthz); the old catalogue stays in use either way."""
        try:
            self.lock.acquire()
        except Timeout:
            return False
        try:
            started = time.monotonic()
            bundles = self.client.catalogue()
            if not bundles:
                raise EsimGoError("eSIM Go returned an empty catalogue")
            fetched_at = datetime.now(UTC).isoformat(timespec="seconds")
            self._write_cache({"fetched_at": fetched_at, "bundles": [b.to_dict() for b in bundles]})
            self._index = CatalogueIndex(bundles, self.prices(), fetched_at)
            self._loaded_mtime = self.cache_path.stat().st_mtime
            self.last_error = None
            log.info("catalogue: fetched %d bundles from eSIM Go in %.1fs", len(bundles),
                     time.monotonic() - started)
            return True
        except EsimGoError as exc:
            self.last_error = one_line(f"{type(exc).__name__}: {exc}")
            log.error("catalogue refresh failed: %s", self.last_error)
            return False
        finally:
            self.lock.release()

    def _write_cache(self, payload: dict[str, Any]) -> None:
        atomic_write(self.cache_path, json.dumps(payload, ensure_ascii=False).encode())

    def ensure_fresh(self) -> None:
        """One maintenance step: pick up a newer disk cache, fetch when missing or stale."""
        self.load_from_disk()
        age = self.cache_age()
        if age is None or age > self.refresh_seconds:
            if self.refresh() is False and self._index is None:
                # Another process may have just written it.
                self.load_from_disk()

    # -- background --

    def wait_until_loaded(self, timeout: float) -> bool:
        """Block until memory holds a catalogue (the disk cache, or the first fetch by any process), at most
        `timeout` s: a worker that starts serving has its plans, so no buyer meets "plans are loading"."""
        deadline = time.monotonic() + timeout
        while self._index is None and time.monotonic() < deadline:
            self._stop.wait(0.1)
        return self._index is not None

    def start_background(self, poll_seconds: float = 5.0) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, args=(poll_seconds,), name="catalogue", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self, poll_seconds: float) -> None:
        last_attempt = 0.0
        while not self._stop.is_set():
            try:
                age = self.cache_age()
                due = age is None or age > self.refresh_seconds
                # After a failure, wait retry_seconds before asking eSIM Go again.
                if due and time.monotonic() - last_attempt >= (self.retry_seconds if self.last_error else 0):
                    last_attempt = time.monotonic()
                    self.ensure_fresh()
                else:
                    self.load_from_disk()
                _ = self.index  # new price settings: repriced here rather than by a buyer's request
            except Exception:  # the thread must survive anything and keep the last good catalogue
                log.exception("catalogue maintenance failed")
            self._stop.wait(poll_seconds if self._index is not None else 1.0)
