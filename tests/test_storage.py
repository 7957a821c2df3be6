"""The orders file (SPEC §2): locked read-modify-write, atomic replace, exact money, clear errors."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import time
from decimal import Decimal
from pathlib import Path

import pytest
from filelock import FileLock

from storage import OrderStore, StorageCorrupt, StorageLockTimeout

ROOT = Path(__file__).resolve().parent.parent


def add_order(store: OrderStore, user: int, order_id: str, **fields) -> None:
    with store.transaction() as data:
        data.setdefault(str(user), []).append({"id": order_id, "telegram_user_id": user, **fields})


def test_orders_are_keyed_by_user_id_string_oldest_first(tmp_path):
    store = OrderStore(tmp_path / "orders.json")
    add_order(store, 2515644, "ord_a", status="completed")
    add_order(store, 2515644, "ord_b", status="awaiting_payment")
    add_order(store, 42, "ord_c")
    on_disk = json.loads((tmp_path / "orders.json").read_text())
    assert list(on_disk) == ["2515644", "42"]
    assert [o["id"] for o in on_disk["2515644"]] == ["ord_a", "ord_b"]  # jq '.["2515644"][-1]' = newest
    assert [o["id"] for o in store.orders_for_user(2515644)] == ["ord_a", "ord_b"]


def test_lookups_by_id_reference_and_charge_id(tmp_path):
    store = OrderStore(tmp_path / "orders.json")
    add_order(store, 1, "ord_1", orderReference="ref-1", telegram_payment_charge_id="charge-1")
    add_order(store, 2, "ord_2", orderReference="ref-2")
    assert store.get("ord_2")["telegram_user_id"] == 2
    assert store.get_by_reference("ref-1")["id"] == "ord_1"
    assert store.get_by_charge_id("charge-1")["id"] == "ord_1"
    assert store.get("missing") is None and store.get_by_charge_id("nope") is None


def test_money_is_stored_as_exact_json_numbers_and_read_back_as_decimal(tmp_path):
    store = OrderStore(tmp_path / "orders.json")
    add_order(store, 1, "ord_1", price=Decimal("3.06"), cost=Decimal("2.26"), stars=314)
    text = (tmp_path / "orders.json").read_text()
    assert '"price": 3.06' in text and '"cost": 2.26' in text  # numbers, not strings, not 3.0600000001
    order = store.get("ord_1")
    assert order["price"] == Decimal("3.06") and isinstance(order["price"], Decimal)
    assert order["stars"] == 314


def test_an_exception_inside_a_transaction_keeps_the_file_as_it_was(tmp_path):
    store = OrderStore(tmp_path / "orders.json")
    add_order(store, 1, "ord_1")
    with pytest.raises(RuntimeError):
        with store.transaction() as data:
            data["1"].append({"id": "ord_2"})
            raise RuntimeError("boom")
    assert [o["id"] for o in store.orders_for_user(1)] == ["ord_1"]


def test_a_reader_sees_changes_written_by_another_process(tmp_path):
    path = tmp_path / "orders.json"
    reader = OrderStore(path)
    add_order(OrderStore(path), 1, "ord_1")
    assert reader.get("ord_1") is not None
    subprocess.run([sys.executable, "-c", textwrap.dedent(f"""
        import sys; sys.path.insert(0, {str(ROOT)!r})
        from storage import OrderStore
        with OrderStore({str(path)!r}).transaction() as data:
            data["1"][0]["status"] = "completed"
    """)], check=True)
    assert reader.get("ord_1")["status"] == "completed"


def test_a_corrupt_file_is_reported_and_never_reset(tmp_path):
    path = tmp_path / "orders.json"
    path.write_text('{"1": [{"id": "ord_1"')  # cut off mid-write by something else
    store = OrderStore(path)
    with pytest.raises(StorageCorrupt, match="not valid JSON"):
        store.get("ord_1")
    with pytest.raises(StorageCorrupt):
        with store.transaction() as data:
            data["2"] = []
    assert path.read_text() == '{"1": [{"id": "ord_1"'
    assert store.check()["ok"] is False


def test_a_file_of_the_wrong_shape_is_corrupt_too(tmp_path):
    path = tmp_path / "orders.json"
    path.write_text('[{"id": "ord_1"}]')
    with pytest.raises(StorageCorrupt, match="user id"):
        OrderStore(path).orders_for_user(1)


def test_a_held_lock_becomes_a_clear_timeout(tmp_path):
    store = OrderStore(tmp_path / "orders.json", lock_timeout=0.2)
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import time; from filelock import FileLock
        with FileLock({str(store.lock_path)!r}):
            print("held", flush=True); time.sleep(5)
    """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(StorageLockTimeout, match="orders.json.lock"):
            with store.transaction():
                pass
    finally:
        holder.kill()
        holder.wait()


def _writer(path: str, worker: int, count: int) -> None:
    store = OrderStore(path, lock_timeout=60)
    for i in range(count):
        with store.transaction() as data:
            data.setdefault(str(1000 + worker), []).append({"id": f"w{worker}-{i}", "price": Decimal("3.06")})


def test_concurrent_writers_in_several_processes_keep_every_order(tmp_path):
    path = str(tmp_path / "orders.json")
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(path, w, 50)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    data = json.loads(Path(path).read_text())
    assert sum(len(v) for v in data.values()) == 200
    for w in range(4):
        assert [o["id"] for o in data[str(1000 + w)]] == [f"w{w}-{i}" for i in range(50)]  # order kept per user
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]


def test_killing_a_writer_mid_write_leaves_a_valid_file(tmp_path):
    path = tmp_path / "orders.json"
    store = OrderStore(path)
    # A large file makes each write take a while, so the kill lands during writes.
    with store.transaction() as data:
        data["1"] = [{"id": f"seed-{i}", "note": "x" * 200} for i in range(5000)]
    writer = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys; sys.path.insert(0, {str(ROOT)!r})
        from storage import OrderStore
        store = OrderStore({str(path)!r})
        i = 0
        while True:
            with store.transaction() as data:
                data.setdefault("2", []).append({{"id": f"new-{{i}}"}})
            i += 1
            print(i, flush=True)
    """)], stdout=subprocess.PIPE, text=True)
    try:
        for _ in range(3):
            writer.stdout.readline()
        time.sleep(0.05)
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait()
    data = json.loads(path.read_text())  # whole and parseable
    assert len(data["1"]) == 5000
    assert [o["id"] for o in data["2"]] == [f"new-{i}" for i in range(len(data["2"]))]
    # The next writer is not blocked by the dead one's lock (the OS released it).
    with FileLock(str(store.lock_path), timeout=2):
        pass


def test_threads_of_one_worker_share_a_store_safely(tmp_path):
    import threading

    store = OrderStore(tmp_path / "orders.json")

    def write(user: int) -> None:
        for i in range(50):
            add_order(store, user, f"{user}-{i}")

    threads = [threading.Thread(target=write, args=(u,)) for u in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(len(store.orders_for_user(u)) for u in range(4)) == 200
