#!/usr/bin/env python3
"""Is the admin console fast with a long history? (issue 10: "a search or filter answers in ≤ 300 ms, the
page is usable in ≤ 2 s" with 50k orders)

For each history — 10k and 50k orders made over a year by many buyers (most with a @username), in several
countries, mostly delivered eSIMs with their ICCID, eSIM Go reference, charge id, cost and price, some expired
invoices, refunds and failures, a few invoices still open and a few orders that need the owner, every one with
the `history` the shop writes — it writes the data folder as the shop does (OrderStore, then orders.json),
starts the shop as operators run it (gunicorn, 2 workers, ADMIN_TOKEN set; both vendors as instant sandboxes
on 127.0.0.1) and measures over HTTP with `Authorization: Bearer <ADMIN_TOKEN>`:

- the first GET /api/admin/orders of each worker (cold: it builds that process's order summaries), taken on
  each worker in turn by pausing the other one (SIGSTOP) so the request cannot land on it;
- then, every worker warm, median and p95 of the list, searches, filters, one order, stats, buyers, CSV;
- "page usable": what /admin/orders.html asks on load, as admin.js asks it (the page; its two scripts and
  stylesheet together; /api/admin/session; then stats, needs-attention and the first orders page together),
  on a freshly started shop (cold) and again warm;
- the resident memory of a web worker with the orders loaded, then with the admin summaries built.

    .venv/bin/python bench/admin_bench.py                    # 10k and 50k orders
    .venv/bin/python bench/admin_bench.py --sizes 1k,10k --runs 10
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "bench")]

from report import markdown_table, ms, sized_arguments  # noqa: E402
from sandboxes.esimgo import EsimGoSandbox  # noqa: E402
from sandboxes.telegram import TelegramSandbox  # noqa: E402
from storage import OrderStore  # noqa: E402
from storage_bench import bench_setup, free_port, rss_mb  # noqa: E402

BOT_TOKEN = "123456789:BENCH-token"
ADMIN_TOKEN = "bench-admin-token-0123456789abcdef"
SIZES = {"1k": 1_000, "10k": 10_000, "50k": 50_000}
DAYS = 365
FIRST_USER = 100_000_000
PLANS = [  # bundle, area, area name, kind, cost, price, stars, MB, days; the first ones sell most
    ("esim_1GB_7D_TH_V2", "TH", "Thailand", "local", "2.26", "3.06", 314, 1000, 7),
    ("esim_5GB_30D_TH_V2", "TH", "Thailand", "local", "6.90", "9.34", 958, 5000, 30),
    ("esim_3GB_30D_TR_V2", "TR", "Turkey", "local", "4.10", "5.55", 570, 3000, 30),
    ("esim_5GB_30D_AE_V2", "AE", "United Arab Emirates", "local", "9.80", "13.27", 1361, 5000, 30),
    ("esim_3GB_15D_VN_V2", "VN", "Vietnam", "local", "3.20", "4.33", 444, 3000, 15),
    ("esim_2GB_15D_ID_V2", "ID", "Indonesia", "local", "2.90", "3.93", 403, 2000, 15),
    ("esim_10GB_30D_EU_V2", "europe", "Europe", "regional", "12.40", "16.79", 1722, 10000, 30),
    ("esim_3GB_30D_GE_V2", "GE", "Georgia", "local", "3.75", "5.08", 521, 3000, 30),
    ("esim_ULP_7D_GE_V2", "GE", "Georgia", "local", "15.00", "20.32", 2084, 0, 7),
    ("esim_5GB_30D_US_V2", "US", "United States", "local", "8.50", "11.51", 1181, 5000, 30),
    ("esim_3GB_15D_JP_V2", "JP", "Japan", "local", "5.10", "6.90", 708, 3000, 15),
    ("esim_5GB_30D_CN_V2", "CN", "China", "local", "7.20", "9.75", 1000, 5000, 30),
]
PLAN_WEIGHTS = [22, 8, 14, 8, 7, 7, 9, 6, 3, 5, 6, 5]
NAMES = ["Anna", "Ivan", "Maria", "Dmitry", "Olga", "Sergey", "Elena", "Alexey", "Aigerim", "Timur", "Nino", "Levan"]


# ---- the history ----------------------------------------------------------------------------------


@dataclass
class Probes:
    """Values from the made history that the searches use: an ICCID suffix, a @username, an order id."""

    iccid_tail: str = ""
    username: str = ""
    order_id: str = ""


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


def make_orders(count: int, days: float = DAYS, seed: int = 10) -> tuple[list[dict], Probes]:
    """`count` orders as the shop writes them, oldest first, over the last `days` days (sales growing over the
    year); about three per buyer, some buyers coming back often."""
    rng = random.Random(seed)
    now = datetime.now(UTC).replace(microsecond=0)
    buyers = max(1, count // 3)
    usernames = {n: (f"{rng.choice(NAMES).lower()}_{rng.randrange(10_000)}" if rng.random() < 0.65 else None)
                 for n in range(buyers)}
    # Sales grow over the year: creation times drawn with density rising toward today.
    ages = sorted((1 - rng.random() ** 0.7) * days * 86400 for _ in range(count - 5))
    ages = [a + 3600 for a in reversed(ages)] + [rng.uniform(60, 1500) for _ in range(5)]  # + open invoices
    # A few recent orders need the owner: stuck at eSIM Go, a refund Telegram refused, an undelivered eSIM.
    kinds = ("stuck", "refund_failed", "undelivered")
    attention_at = {n: kinds[k % 3] for k, n in enumerate(rng.sample(range(max(0, count - 400), count - 5),
                                                                     min(12, max(0, count - 5))))}
    made, probes, message_id = [], Probes(), 1000
    for i, age in enumerate(ages):
        created = now - timedelta(seconds=age)
        buyer = int(buyers * rng.random() ** 1.6)  # a few buyers come back often
        user, username = FIRST_USER + buyer, usernames[buyer]
        bundle, area, area_name, kind, cost, price, stars, mb, valid = rng.choices(PLANS, PLAN_WEIGHTS)[0]
        name = NAMES[buyer % len(NAMES)]
        lang = "en" if buyer % 5 == 0 else "ru"
        order = {
            "id": f"ord_{created:%Y%m%d}_{rng.getrandbits(40):010x}", "telegram_user_id": user, "status": "",
            "currency": "XTR", "payment_method": "telegram_stars", "source": "telegram_mini_app",
            "created_at": _iso(created), "updated_at": _iso(created), "telegram_username": username,
            "bundle_name": bundle, "provider_product_id": bundle, "country_code": area, "country_name": area_name,
            "plan_kind": kind, "data_mb": mb, "duration_days": valid, "unlimited": mb == 0,
            "price": Decimal(price), "cost": Decimal(cost), "stars": stars,
            "customer": {"first_name": name, "username": username, "language_code": lang}, "language": lang,
            "expires_at": _iso(created + timedelta(minutes=30)),
            "history": [{"at": _iso(created), "event": "created", "by": "shop", "detail": "awaiting_payment"}],
        }

        def event(at: datetime, name: str, detail: str, by: str = "shop", order: dict = order) -> None:
            order["history"].append({"at": _iso(at), "event": name, "by": by, "detail": detail})
            order["updated_at"] = _iso(at)

        if i >= count - 5:  # invoices still open
            order["status"] = "awaiting_payment"
            made.append(order)
            continue
        trouble = attention_at.get(i)
        roll = 0.5 if trouble else rng.random()
        if roll < 0.08:  # the buyer never paid
            order["status"] = "expired"
            event(created + timedelta(minutes=31), "status", "awaiting_payment → expired")
            made.append(order)
            continue
        paid = created + timedelta(seconds=rng.uniform(15, 240))
        order.update(status="paid", paid_at=_iso(paid), paid_stars=stars, provider_payment_charge_id="",
                     telegram_payment_charge_id=f"stxB{rng.getrandbits(120):030x}")
        event(paid, "status", "awaiting_payment → paid", "telegram")
        bought = paid + timedelta(seconds=rng.uniform(0.5, 3))
        order.update(status="provisioning", buy_attempts=1, esimgo_attempt_at=_iso(bought), esimgo_unsure=False)
        event(bought, "status", "paid → provisioning")
        if trouble == "stuck":  # eSIM Go kept failing: flagged for the owner
            order.update(buy_attempts=5, last_error="EsimGoUnavailable: 503 from eSIM Go",
                         needs_attention={"since": _iso(paid + timedelta(minutes=10)),
                                          "reason": "EsimGoUnavailable: 503 from eSIM Go"})
            made.append(order)
            continue
        if roll < 0.095 or trouble == "refund_failed":  # eSIM Go could not sell it: refunded (or the refund failed)
            failed = bought + timedelta(seconds=2)
            reason = "eSIM Go: insufficient balance"
            order.update(refund_reason=reason, last_error=reason, failed_at=_iso(failed))
            event(failed, "status", "provisioning → failed")
            order["status"] = "failed"
            if trouble:
                order.update(refund_attempts=3, refund_error="Bad Request: CHARGE_NOT_FOUND",
                             needs_attention={"since": _iso(failed + timedelta(minutes=10)), "reason": reason})
                event(failed + timedelta(seconds=5), "refund_failed", "Bad Request: CHARGE_NOT_FOUND")
            else:
                order.update(status="refunded", refunded_at=_iso(failed + timedelta(seconds=1)), refund_error=None)
                event(failed + timedelta(seconds=1), "status", "failed → refunded")
            made.append(order)
            continue
        completed = bought + timedelta(seconds=rng.uniform(2, 8))
        real_cost = (Decimal(cost) * Decimal(rng.choice(["1", "1", "1", "0.98", "1.02"]))).quantize(Decimal("0.01"))
        order.update(status="completed", orderReference=f"{rng.getrandbits(32):08x}-640c-4f33-8a78-"
                                                        f"{rng.getrandbits(48):012x}", cost=real_cost,
                     esimgo_status="Completed", bought_at=_iso(bought), iccid=f"894400000{rng.getrandbits(36):011d}",
                     matchingId=f"JQ-{rng.getrandbits(24):06X}-{rng.getrandbits(24):06X}",
                     smdpAddress="rsp.truphone.com", completed_at=_iso(completed), last_error=None)
        event(completed, "status", "provisioning → completed")
        if trouble == "undelivered":  # the buyer blocked the bot: the eSIM waits in the Mini App
            error = "Forbidden: bot was blocked by the user"
            order.update(delivery_attempts=1, delivery_error=error)
            event(completed + timedelta(seconds=1), "delivery_failed", error)
            made.append(order)
            continue
        message_id += 1 + rng.randrange(5)
        delivered = completed + timedelta(seconds=1)
        order.update(delivered_at=_iso(delivered), delivery_message_id=message_id, delivery_attempts=1,
                     next_attempt_at=None)
        event(delivered, "delivered", f"Telegram message {message_id}")
        if roll > 0.985:  # the owner refunded a delivered eSIM
            refunded = delivered + timedelta(hours=rng.uniform(1, 48))
            order.update(status="refunded", refunded_at=_iso(refunded), refund_reason="The eSIM did not connect")
            event(refunded, "refund", "The eSIM did not connect", "admin")
            event(refunded, "status", "completed → refunded", "admin")
        elif roll > 0.975:
            event(delivered + timedelta(hours=rng.uniform(1, 24)), "resent", f"Telegram message {message_id + 1}",
                  "admin")
        if order["status"] == "completed" and not probes.iccid_tail and i > count * 0.6:
            probes.iccid_tail = order["iccid"][-6:]
        made.append(order)
    # A buyer with a @username and several orders; an order in the middle of the history.
    counts: dict[str, int] = {}
    for order in made:
        if order["telegram_username"]:
            counts[order["telegram_username"]] = counts.get(order["telegram_username"], 0) + 1
    probes.username = sorted(counts, key=lambda u: (abs(counts[u] - 6), u))[0]
    probes.order_id = made[len(made) // 2]["id"]
    return made, probes


def write_data(orders: list[dict], data_dir: Path, catalogue: Path) -> int:
    """The data folder as the running shop leaves it: orders.json written by the store; its size in bytes."""
    store = OrderStore(data_dir / "orders.json", background=False)
    with store.transaction() as tx:
        for order in orders:
            tx.add(order)
    store.compact()
    store.close()
    for segment in (data_dir / "orders.journal").glob("*.jsonl"):  # folded into orders.json
        segment.unlink()
    shutil.copy(catalogue, data_dir / "catalogue.json")
    return (data_dir / "orders.json").stat().st_size


# ---- the shop -------------------------------------------------------------------------------------


class Shop:
    """gunicorn (2 workers, as in production) with ADMIN_TOKEN, on `data_dir`."""

    def __init__(self, data_dir: Path, esimgo: EsimGoSandbox, telegram: TelegramSandbox,
                 warm_up: bool = False) -> None:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "ESIMGO_", "FULFIL_", "ADMIN_"))}
        env.update(ESIMGO_API_KEY=esimgo.api_key, ESIMGO_BASE_URL=esimgo.url, TELEGRAM_BOT_TOKEN=BOT_TOKEN,
                   TELEGRAM_API_URL=telegram.url, TELEGRAM_WEBHOOK_SECRET="bench-webhook-secret",
                   DATA_DIR=str(data_dir), PUBLIC_BASE_URL="https://shop.example.test", BIND=f"127.0.0.1:{port}",
                   WEB_CONCURRENCY="2", ADMIN_TOKEN=ADMIN_TOKEN, ESIMSDATA_ENV_FILE=str(data_dir / "no.env"),
                   ADMIN_WARM_UP="1" if warm_up else "0")
        self.log = data_dir / f"gunicorn-{port}.log"
        with self.log.open("wb") as log:
            self.web = subprocess.Popen([sys.executable, "-m", "gunicorn", "app:create_app()"], cwd=ROOT, env=env,
                                        stdout=subprocess.DEVNULL, stderr=log)
        deadline = time.monotonic() + 180
        while not self._healthy():
            if self.web.poll() is not None:
                raise RuntimeError("gunicorn exited")
            if time.monotonic() > deadline:
                raise RuntimeError("not healthy within 180 s")
            time.sleep(0.05)
        while len(self.workers()) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        # Every worker has read the orders (as after a little shop traffic) before anything is measured.
        for pid in self.workers():
            with self.only(pid):
                requests.get(self.url + "/healthz", timeout=120).raise_for_status()

    def warmed_up(self, timeout: float = 180) -> list[float]:
        """Wait until every worker has summarised the orders in the background; the seconds each one took."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            took = [float(m) for m in re.findall(r"summarised for the console in ([\d.]+)s", self.log.read_text())]
            if len(took) >= 2:
                return took
            time.sleep(0.1)
        raise RuntimeError("the workers did not summarise the orders in time")

    def _healthy(self) -> bool:
        try:
            return requests.get(self.url + "/healthz", timeout=120).status_code == 200
        except requests.RequestException:
            return False

    def workers(self) -> list[int]:
        try:
            return sorted(int(p) for p in Path(f"/proc/{self.web.pid}/task/{self.web.pid}/children").read_text()
                          .split())
        except OSError:
            return []

    @contextlib.contextmanager
    def only(self, pid: int) -> Iterator[None]:
        """Within this block only worker `pid` takes new connections: the others are paused (SIGSTOP)."""
        others = [p for p in self.workers() if p != pid]
        for other in others:
            os.kill(other, signal.SIGSTOP)
        try:
            yield
        finally:
            for other in others:
                os.kill(other, signal.SIGCONT)

    def stop(self) -> None:
        for pid in self.workers():
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGCONT)
        self.web.send_signal(signal.SIGTERM)
        try:
            self.web.wait(30)
        except subprocess.TimeoutExpired:
            self.web.kill()


AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def get(url: str, session: requests.Session | None = None, auth: bool = True) -> requests.Response:
    response = (session or requests).get(url, headers=AUTH if auth else {}, timeout=120)
    response.raise_for_status()
    return response


def timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def page_load(shop: Shop) -> float:
    """What /admin/orders.html asks on load, as admin.js asks it, on new connections; the seconds until the
    last answer (the console then shows its sales, needs-attention list and first page of orders)."""
    started = time.perf_counter()
    html = get(shop.url + "/admin/orders.html", auth=False).text
    assets = re.findall(r'<(?:link rel="stylesheet" href|script src)="([^"]+)"', html)
    assert len(assets) == 3, assets  # admin.css, admin.js and settings.js (issue 12's views)
    with ThreadPoolExecutor(3) as pool:
        list(pool.map(lambda path: get(shop.url + path.replace("&amp;", "&"), auth=False), assets))
        get(shop.url + "/api/admin/session")
        list(pool.map(lambda path: get(shop.url + path), [
            "/api/admin/stats?days=30", "/api/admin/orders?attention=1&page=1&per_page=20",
            "/api/admin/orders?page=1&per_page=50"]))
    return time.perf_counter() - started


# ---- measuring ------------------------------------------------------------------------------------


@dataclass
class Result:
    label: str
    count: int
    file_mb: float = 0.0
    startup: float = 0.0
    cold_orders: list[float] = field(default_factory=list)  # the first GET /api/admin/orders of each worker
    warm: dict[str, list[float]] = field(default_factory=dict)
    totals: dict[str, int] = field(default_factory=dict)  # orders found by each request
    csv_mb: float = 0.0
    page_cold: float | None = None
    warm_up: list[float] = field(default_factory=list)  # each worker's background build, seconds
    page_after_warm_up: float | None = None
    page_warm: list[float] = field(default_factory=list)
    rss_loaded: float = 0.0
    rss_index: float = 0.0
    rss_end: float = 0.0
    error: str = ""


def requests_for(probes: Probes) -> list[tuple[str, str]]:
    today = datetime.now(UTC).date()
    start, end = today - timedelta(days=90), today - timedelta(days=61)
    return [
        ("list, page 1", "/api/admin/orders"),
        ("search: ICCID suffix", f"/api/admin/orders?q={probes.iccid_tail}"),
        ("search: @username", f"/api/admin/orders?q=%40{probes.username}"),
        ("filter: completed in TH", "/api/admin/orders?status=completed&country=TH"),
        ("filter: 30 days from/to", f"/api/admin/orders?from={start}&to={end}"),
        ("filter: needs attention", "/api/admin/orders?attention=1"),
        ("list, page 100", "/api/admin/orders?page=100"),
        ("one order", f"/api/admin/orders/{probes.order_id}"),
        ("stats, 30 days", "/api/admin/stats?days=30"),
        ("buyers, page 1", "/api/admin/users"),
        ("CSV export, TH", "/api/admin/orders.csv?country=TH"),
    ]


def measure(label: str, runs: int, esimgo: EsimGoSandbox, telegram: TelegramSandbox, catalogue: Path,
            workdir: Path) -> Result:
    count = SIZES[label]
    result = Result(label, count)
    data_dir = workdir / label
    data_dir.mkdir(parents=True)
    made, probes = make_orders(count)
    result.file_mb = write_data(made, data_dir, catalogue) / 1e6
    del made
    shop = None
    try:
        started = time.monotonic()
        shop = Shop(data_dir, esimgo, telegram)
        result.startup = time.monotonic() - started
        workers = shop.workers()
        result.rss_loaded = max(rss_mb(pid) for pid in workers)
        for pid in workers:  # each worker's first request builds its own summaries
            with shop.only(pid):
                result.cold_orders.append(timed(lambda: get(shop.url + "/api/admin/orders")))
        result.rss_index = max(rss_mb(pid) for pid in workers)

        session = requests.Session()
        for name, path in requests_for(probes):
            response = get(shop.url + path, session)  # a first call of each (both workers are warm already)
            if path.startswith("/api/admin/orders?") or path == "/api/admin/orders":
                result.totals[name] = response.json()["total"]
            elif path.startswith("/api/admin/users"):
                result.totals[name] = response.json()["total"]
            elif ".csv" in path:
                result.csv_mb = len(response.content) / 1e6
                result.totals[name] = response.text.count("\n") - 1
            result.warm[name] = [timed(lambda path=path: get(shop.url + path, session)) for _ in range(runs)]
        result.page_warm = [page_load(shop) for _ in range(max(runs // 2, 5))]
        result.rss_end = max(rss_mb(pid) for pid in shop.workers())
        shop.stop()

        shop = Shop(data_dir, esimgo, telegram)  # a fresh start, no warm-up: the owner's page builds everything
        result.page_cold = page_load(shop)
        shop.stop()
        shop = Shop(data_dir, esimgo, telegram, warm_up=True)  # as it runs: summaries built a little after start
        result.warm_up = shop.warmed_up()
        result.page_after_warm_up = page_load(shop)
    except Exception as exc:  # report what was measured so far, with the reason
        result.error = f"{type(exc).__name__}: {exc}"[:300]
    finally:
        if shop is not None:
            shop.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
    return result


# ---- the table ------------------------------------------------------------------------------------


def table(results: list[Result], probes_names: list[str]) -> str:
    rows: list[tuple[str, Callable[[Result], str]]] = [
        ("orders in history", lambda r: f"{r.count:,}"),
        ("orders.json", lambda r: f"{r.file_mb:.0f} MB"),
        ("first GET /api/admin/orders per worker (cold: builds the summaries)",
         lambda r: " / ".join(ms([v]) for v in r.cold_orders) or "-"),
    ]
    for name in probes_names:
        def cell(r: Result, name: str = name) -> str:
            if name not in r.warm:
                return "-"
            found = r.totals.get(name)
            extra = f" ({found:,} found" + (f", {r.csv_mb:.1f} MB" if "CSV" in name else "") + ")" \
                if found is not None else ""
            return f"{ms(r.warm[name])} / {ms(r.warm[name], 0.95)}{extra}"
        rows.append((f"{name}, median / p95", cell))
    rows += [
        ("page usable, fresh start without the warm-up (cold)",
         lambda r: "-" if r.page_cold is None else ms([r.page_cold])),
        ("background warm-up per worker (starts 5 s after start)",
         lambda r: " / ".join(f"{v * 1000:,.0f} ms" for v in r.warm_up) or "-"),
        ("page usable, fresh start once warmed up",
         lambda r: "-" if r.page_after_warm_up is None else ms([r.page_after_warm_up])),
        ("page usable, warm, median / p95", lambda r: f"{ms(r.page_warm)} / {ms(r.page_warm, 0.95)}"),
        ("web worker resident: orders loaded → summaries built → after these runs",
         lambda r: f"{r.rss_loaded:.0f} → {r.rss_index:.0f} → {r.rss_end:.0f} MB"),
    ]
    errors = [f"- {r.label}: {r.error}" for r in results if r.error]
    return "\n".join(markdown_table(rows, results) + errors)


def main() -> int:
    args, labels = sized_arguments(__doc__, SIZES, "10k,50k", 30, "timed calls of each request (warm)")
    with bench_setup("admin") as (workdir, esimgo, telegram, catalogue):
        results = []
        for label in labels:
            print(f"... {label}", file=sys.stderr, flush=True)
            results.append(measure(label, args.runs, esimgo, telegram, catalogue, workdir))
        print(f"esimsdata admin console benchmark, {os.cpu_count()} cores, gunicorn with 2 workers; "
              f"orders over {DAYS} days; {args.runs} timed calls of each request")
        print(table(results, [name for name, _ in requests_for(Probes())]))
    return 0


if __name__ == "__main__":
    threading.excepthook = lambda args: None  # sandbox threads ending at exit are not news
    raise SystemExit(main())
