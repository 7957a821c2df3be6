#!/usr/bin/env python3
"""Do promo codes and price changes stay fast as the shop grows? (issue 12, docs/settings.md)

A code's uses are counted from the orders sold with it (storage's `by_promo` index), so its cost grows with its
uses, not with the history. For each history — 10k and 50k orders over ten months (bench/history.py), with codes
made through the admin API and orders sold with them (mostly completed, some expired or refunded) carrying each
code's `promo_id` — it runs the shop in this process (`create_app` and Flask's test client, both vendors as
sandboxes on 127.0.0.1) and measures, each variant in turn within every round so they share the machine's noise:

- POST /api/telegram/stars/create-invoice without a code, and with codes of 0, 1,000, 5,000 and 10,000 uses (a
  code is left out where it does not fit beside the others; each timed checkout holds one use more); and how long
  the orders lock is held to count them;
- POST /api/promo/check with the same codes (read-only, outside the lock);
- GET /api/admin/promocodes with 20 codes (each code's orders decoded and tallied);
- GET /api/esimgo/bundles?country=TH as usual, and as the first request after PUT /api/admin/settings changed
  `country_markups` (it prices the whole catalogue again): on the sandbox's catalogue and on a synthetic one of
  5,000 bundles (about eSIM Go's real size).

    .venv/bin/python bench/promo_bench.py                     # 10k and 50k orders
    .venv/bin/python bench/promo_bench.py --sizes 10k --runs 30
"""

from __future__ import annotations

import json
import os
import random
import shutil
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "bench")]

from admin_bench import write_data  # noqa: E402

import extensions  # noqa: E402
import promo  # noqa: E402
from app import create_app  # noqa: E402
from auth import sign_init_data  # noqa: E402
from conftest import ADMIN_TOKEN, BOT_TOKEN, make_config  # noqa: E402
from durable import atomic_write  # noqa: E402
from history import make_history  # noqa: E402
from report import markdown_table, median_p95, ms, sized_arguments  # noqa: E402
from sandboxes.esimgo import EsimGoSandbox  # noqa: E402
from sandboxes.telegram import TelegramSandbox  # noqa: E402
from storage_bench import bench_setup, timed  # noqa: E402

SIZES = {"10k": 10_000, "50k": 50_000}
DAYS = 300
USES = (0, 1_000, 5_000, 10_000)  # the codes measured one by one, by their orders
CODES = 20  # in the admin list: the measured ones, the rest with SMALL_USES orders each
SMALL_USES = 100
WITH_CODES_MAX = 0.8  # at most this share of the history is sold with a code (else the largest codes are left out)
PERCENT_OFF = Decimal(10)
BUNDLE = "esim_1GB_7D_TH_V2"
SYNTHETIC_BUNDLES = 5_000
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
CENT = Decimal("0.01")


@dataclass
class Result:
    label: str
    count: int
    with_code: int = 0
    uses: tuple[int, ...] = ()  # the measured codes that fit this history
    invoice: dict[int | None, list[float]] = field(default_factory=dict)  # uses (None: no code) -> seconds
    lock: dict[int, list[float]] = field(default_factory=dict)
    check: dict[int, list[float]] = field(default_factory=dict)
    admin_list: list[float] = field(default_factory=list)
    listed: int = 0
    catalogues: dict[str, dict[str, list[float]]] = field(default_factory=dict)  # name -> normal/after/put
    error: str = ""


# ---- the data --------------------------------------------------------------------------------------


def code_name(uses: int) -> str:
    return f"BENCH{uses}"


def planned_uses(count: int) -> tuple[tuple[int, ...], list[int]]:
    """The measured codes that fit a history of `count` orders, and the uses of every listed code."""
    measured = list(USES)
    while sum(measured) + SMALL_USES * (CODES - len(measured)) > count * WITH_CODES_MAX:
        measured.pop()
    return tuple(measured), measured + [SMALL_USES] * (CODES - len(measured))


def sold_with(order: dict[str, Any], code: str, promo_id: str) -> None:
    """Make a history order one sold with `code` at PERCENT_OFF, with the fields purchase.new_order sets."""
    full_price, full_stars = order["price"], order["stars"]
    off = (full_price * PERCENT_OFF / 100).quantize(CENT, rounding=ROUND_HALF_UP)
    price = full_price - off
    stars = max(1, round(full_stars * price / full_price))
    order.update(promo_code=code, promo_id=promo_id, discount_usd=off, full_price=full_price, full_stars=full_stars,
                 price=price, stars=stars)
    if "paid_stars" in order:
        order["paid_stars"] = stars


def prepare(data_dir: Path, count: int, catalogue: Path, config: dict[str, Any]) -> tuple[dict[int, str], int]:
    """The data folder: the codes made through the admin API, then `count` orders of which some were sold with
    them; returns the measured codes by their uses, and how many orders carry a code."""
    measured, every = planned_uses(count)
    shutil.copy(catalogue, data_dir / "catalogue.json")
    app = create_app(config)
    client = app.test_client()
    names = [code_name(u) if u in measured else f"SMALL{n:02d}" for n, u in enumerate(every)]
    for name in names:
        answer = client.post("/api/admin/promocodes", json={"code": name, "percent_off": str(PERCENT_OFF)},
                             headers=AUTH)
        assert answer.status_code == 201, answer.get_json()
    extensions.store(app).close()
    stored = json.loads((data_dir / "settings.json").read_text(encoding="utf-8"))["promocodes"]
    ids = {name: stored[name.casefold()]["id"] for name in names}

    made = [order for orders in make_history(count, DAYS).values() for order in orders]
    chosen = iter(random.Random(12).sample(range(len(made)), sum(every)))
    for name, uses in zip(names, every, strict=True):
        for _ in range(uses):
            sold_with(made[next(chosen)], name, ids[name])
    write_data(made, data_dir, catalogue)
    return {u: code_name(u) for u in measured}, sum(every)


def synthetic_catalogue(sandbox: Path, size: int) -> bytes:
    """catalogue.json with `size` bundles: the sandbox's repeated under new names, each copy a little dearer."""
    raw = json.loads(sandbox.read_text(encoding="utf-8"))
    bundles = raw["bundles"]
    made = []
    for n in range(size):
        bundle = dict(bundles[n % len(bundles)])
        copy = n // len(bundles)
        if copy:
            bundle["name"] = f"{bundle['name']}_C{copy}"
            bundle["price"] = str((Decimal(bundle["price"]) * (1 + Decimal(copy) / 50)).quantize(CENT))
        made.append(bundle)
    return json.dumps({"fetched_at": raw["fetched_at"], "bundles": made}, ensure_ascii=False).encode()


# ---- measuring -------------------------------------------------------------------------------------


class Buyers:
    """A new Mini App buyer for every call: invoices and promo checks are limited per buyer."""

    def __init__(self, first: int = 900_000_000) -> None:
        self.next = first

    def header(self) -> dict[str, str]:
        self.next += 1
        user = {"id": self.next, "first_name": "Bench", "language_code": "en"}
        return {"Authorization": "tma " + sign_init_data(BOT_TOKEN, user)}


def call(client: Any, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None,
         expect: int = 200) -> Any:
    answer = client.open(path, method=method, json=body, headers=headers or {})
    if answer.status_code != expect:
        raise RuntimeError(f"{method} {path}: {answer.status_code} {answer.get_data(as_text=True)[:200]}")
    return answer.get_json()


def measure_promos(result: Result, client: Any, app: Any, codes: dict[int, str], runs: int) -> None:
    buyers = Buyers()
    store = extensions.store(app)
    ids = {u: extensions.shop(app).promocodes()[name.casefold()]["id"] for u, name in codes.items()}

    def invoice(code: str | None) -> None:
        body = {"bundle_name": BUNDLE, **({"promo_code": code} if code else {})}
        answer = call(client, "POST", "/api/telegram/stars/create-invoice", body, buyers.header())
        if code:
            assert Decimal(answer["discount_usd"]) > 0, answer

    def check(code: str) -> None:
        answer = call(client, "POST", "/api/promo/check", {"code": code, "bundle_name": BUNDLE}, buyers.header())
        assert answer["valid"], answer

    def counted(promo_id: str) -> None:  # what create-invoice does under the lock to count a code's uses
        with store.transaction() as tx:
            now = datetime.now(UTC)
            for sold in tx.sold_with_promo(promo_id):
                promo.holds_use(sold, now)

    # Every variant once a round, so they share the machine's ups and downs. Invoices first: they change the
    # orders, so the store rewrites orders.json behind them (every 0.75 s, in this process) as it does in a shop.
    invoices: list[tuple[dict, Any, Callable[[], None]]] = [(result.invoice, None, lambda: invoice(None))]
    invoices += [(result.invoice, uses, lambda name=name: invoice(name)) for uses, name in codes.items()]
    rounds(invoices, runs)
    settled(store)  # the reads below then run without that rewrite beside them
    reads: list[tuple[dict, Any, Callable[[], None]]] = []
    for uses, name in codes.items():
        reads += [(result.check, uses, lambda name=name: check(name)),
                  (result.lock, uses, lambda uses=uses: counted(ids[uses]))]
    rounds(reads, runs)
    call(client, "GET", "/api/admin/promocodes", headers=AUTH)
    for _ in range(runs):
        result.admin_list.append(timed(lambda: call(client, "GET", "/api/admin/promocodes", headers=AUTH)))
    result.listed = len(call(client, "GET", "/api/admin/promocodes", headers=AUTH)["promocodes"])


def rounds(variants: list[tuple[dict, Any, Callable[[], None]]], runs: int) -> None:
    """A warm-up call of each variant, then `runs` rounds of one timed call each, times kept by variant."""
    for _, _, fn in variants:
        fn()
    for _ in range(runs):
        for into, key, fn in variants:
            into.setdefault(key, []).append(timed(fn))


def settled(store: Any, timeout: float = 60) -> None:
    """Wait until orders.json holds every change (the store's background rewrite is done)."""
    deadline = time.monotonic() + timeout
    while store.check().get("unwritten_changes") and time.monotonic() < deadline:
        time.sleep(0.1)


def measure_repricing(client: Any, runs: int) -> dict[str, list[float]]:
    """GET bundles?country=TH as usual, PUT /api/admin/settings with a new TH markup, the next GET (reprices)."""
    got: dict[str, list[float]] = {"normal": [], "after": [], "put": []}
    path = "/api/esimgo/bundles?country=TH"
    call(client, "GET", path)
    for n in range(runs):
        got["normal"].append(timed(lambda: call(client, "GET", path)))
        markups = {"country_markups": {"TH": str(10 + n % 2)}}  # a change every time
        got["put"].append(timed(lambda body=markups: call(client, "PUT", "/api/admin/settings", body, AUTH)))
        got["after"].append(timed(lambda: call(client, "GET", path)))
    return got


def measure(label: str, runs: int, esimgo: EsimGoSandbox, telegram: TelegramSandbox, catalogue: Path,
            workdir: Path) -> Result:
    result = Result(label, SIZES[label])
    data_dir = workdir / label
    data_dir.mkdir(parents=True)
    config = make_config(data_dir, esimgo, telegram, INVOICES_PER_MINUTE="1000")
    app = None
    try:
        codes, result.with_code = prepare(data_dir, result.count, catalogue, config)
        result.uses = tuple(codes)
        app = create_app(config)
        client = app.test_client()
        call(client, "GET", "/healthz")  # the orders read in, as after a little traffic
        measure_promos(result, client, app, codes, runs)
        index = extensions.catalogue(app).index
        result.catalogues[f"{len(index.plans):,}"] = measure_repricing(client, runs)
        atomic_write(data_dir / "catalogue.json", synthetic_catalogue(catalogue, SYNTHETIC_BUNDLES))
        extensions.catalogue(app).load_from_disk()  # as the background round picks up a new catalogue.json
        index = extensions.catalogue(app).index
        assert len(index.plans) == SYNTHETIC_BUNDLES, len(index.plans)
        result.catalogues[f"{SYNTHETIC_BUNDLES:,} (synthetic)"] = measure_repricing(client, runs)
    except Exception as exc:  # report what was measured so far, with the reason
        result.error = f"{type(exc).__name__}: {exc}"[:300]
    finally:
        if app is not None:
            extensions.fulfilment(app).wait_idle()
            extensions.store(app).close()
        shutil.rmtree(data_dir, ignore_errors=True)
    return result


# ---- the table -------------------------------------------------------------------------------------


def table(results: list[Result]) -> str:
    def uses_cell(into: str, uses: int | None) -> Callable[[Result], str]:
        return lambda r: median_p95(getattr(r, into).get(uses, []))

    rows: list[tuple[str, Callable[[Result], str]]] = [
        ("orders in the store", lambda r: f"{r.count:,} orders"),
        ("of them sold with one of the 20 codes",
         lambda r: f"{r.with_code:,}: codes of " + ", ".join(f"{u:,}" for u in r.uses) +
         f" uses and {CODES - len(r.uses)} of {SMALL_USES}"),
        ("create-invoice, no code, median / p95", uses_cell("invoice", None)),
    ]
    rows += [(f"create-invoice, code with {u:,} uses, median / p95", uses_cell("invoice", u)) for u in USES]
    counts = " / ".join(f"{u:,}" for u in USES)
    rows.append((f"orders lock held to count a code's uses, as create-invoice does ({counts} uses), median",
                 lambda r: " / ".join(ms(r.lock[u]) if u in r.lock else "-" for u in USES)))
    rows += [(f"POST /api/promo/check, code with {u:,} uses, median / p95", uses_cell("check", u)) for u in USES]
    rows.append(("GET /api/admin/promocodes, median / p95",
                 lambda r: f"{median_p95(r.admin_list)} ({r.listed} codes)" if r.admin_list else "-"))
    names = list(dict.fromkeys(name for r in results for name in r.catalogues))
    for name in names:
        def cell(r: Result, name: str = name, what: str = "") -> str:
            return median_p95(r.catalogues.get(name, {}).get(what, []))
        rows += [
            (f"GET bundles?country=TH, {name} bundles, median / p95", lambda r, c=cell: c(r, what="normal")),
            (f"PUT /api/admin/settings (TH markup), {name} bundles, median / p95", lambda r, c=cell: c(r, what="put")),
            (f"GET bundles?country=TH right after it (reprices), {name} bundles, median / p95",
             lambda r, c=cell: c(r, what="after")),
        ]
    errors = [f"- {r.label}: {r.error}" for r in results if r.error]
    return "\n".join(markdown_table(rows, results) + errors)


def main() -> int:
    args, labels = sized_arguments(__doc__, SIZES, "10k,50k", 40, "timed calls of each variant")
    with bench_setup("promo") as (workdir, esimgo, telegram, catalogue):
        results = []
        for label in labels:
            print(f"... {label}", file=sys.stderr, flush=True)
            started = time.monotonic()
            results.append(measure(label, args.runs, esimgo, telegram, catalogue, workdir))
            print(f"    {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)
        print(f"esimsdata promo code and price change benchmark, {os.cpu_count()} cores, in-process (Flask's test "
              f"client), vendors as sandboxes on 127.0.0.1; orders over {DAYS} days; {args.runs} timed calls of "
              "each variant")
        print(table(results))
    return 0


if __name__ == "__main__":
    threading.excepthook = lambda args: None  # sandbox threads ending at exit are not news
    raise SystemExit(main())
