#!/usr/bin/env python3
"""A realistic order history for benchmarks: records with the SPEC §6 field names (~950 bytes each), about
three orders per buyer, mostly delivered eSIMs with some expired invoices and refunds, spread evenly over
`days` up to now. Written as the earlier version wrote `orders.json` (indented), so reading it also
exercises the upgrade path.

    .venv/bin/python bench/history.py data/orders.json --orders 50000 --days 300
"""

from __future__ import annotations

import argparse
import json
import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

PLANS = [  # bundle, country code, country name, cost, price, stars, MB, days
    ("esim_1GB_7D_TH_V2", "TH", "Thailand", "2.26", "3.06", 314, 1000, 7),
    ("esim_3GB_30D_TR_V2", "TR", "Turkey", "4.10", "5.55", 570, 3000, 30),
    ("esim_5GB_30D_AE_V2", "AE", "United Arab Emirates", "9.80", "13.27", 1361, 5000, 30),
    ("esim_10GB_30D_EU_V2", "EU", "Europe", "12.40", "16.79", 1722, 10000, 30),
    ("esim_ULP_7D_GE_V2", "GE", "Georgia", "15.00", "20.32", 2084, 0, 7),
]
FIRST_USER = 100_000_000


def make_history(count: int, days: float, now: datetime | None = None, seed: int = 7) -> dict[str, list[dict]]:
    """`count` orders keyed by user id, each user's oldest first, created over the last `days` days."""
    rng = random.Random(seed)
    now = now or datetime.now(UTC)
    buyers = max(1, count // 3)
    start = now - timedelta(days=days)
    step = timedelta(days=days) / count
    data: dict[str, list[dict]] = {}
    for i in range(count):
        created = start + step * i
        user = FIRST_USER + rng.randrange(buyers)
        bundle, code, country, cost, price, stars, mb, valid = rng.choice(PLANS)
        roll = rng.random()
        status = "completed" if roll < 0.9 else "expired" if roll < 0.97 else "refunded"
        stamp = created.isoformat(timespec="seconds")
        order = {
            "id": f"ord_{created:%Y%m%d}_{i:010x}", "telegram_user_id": user, "telegram_username": f"traveller{user}",
            "bundle_name": bundle, "provider_product_id": bundle, "country_code": code, "country_name": country,
            "price": Decimal(price), "cost": Decimal(cost), "stars": stars, "currency": "XTR",
            "payment_method": "telegram_stars", "source": "telegram_mini_app",
            "customer": {"first_name": "Anna", "language_code": "ru"}, "language": "ru", "status": status,
            "data_mb": mb, "duration_days": valid, "unlimited": mb == 0, "created_at": stamp, "updated_at": stamp,
            "expires_at": (created + timedelta(minutes=30)).isoformat(timespec="seconds"),
            "invoice_link": f"https://t.me/$bench{i:012x}",
        }
        if status != "expired":
            order.update(
                telegram_payment_charge_id=f"stxBench{i:016x}", provider_payment_charge_id="", paid_stars=stars,
                paid_at=stamp, orderReference=f"{i:08x}-640c-4f33-8a78-9df5a10f479c",
                iccid=f"89440{i:014d}", matchingId=f"JQ-{i:06X}-BENCH", smdpAddress="rsp.truphone.com",
            )
        if status == "completed":
            order.update(delivered_at=stamp, delivery_message_id=i + 1)
        if status == "refunded":
            order.update(refund_reason="eSIM Go: insufficient balance", refunded_at=stamp,
                         last_error="insufficient balance")
        data.setdefault(str(user), []).append(order)
    return data


def write_earlier_layout(data: dict[str, list[dict]], path: Path) -> None:
    """orders.json as the earlier version wrote it: one indented JSON object."""
    text = json.dumps(data, ensure_ascii=False, indent=1, default=lambda d: float(d))
    path.write_text(text, encoding="utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", type=Path)
    parser.add_argument("--orders", type=int, default=50_000)
    parser.add_argument("--days", type=float, default=300)
    args = parser.parse_args()
    write_earlier_layout(make_history(args.orders, args.days), args.path)
    size = args.path.stat().st_size
    print(f"{args.orders} orders over {args.days:g} days: {args.path} ({size / 1e6:.1f} MB, "
          f"{size // args.orders} B/order)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
