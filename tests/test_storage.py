"""The orders store (SPEC §2, docs/storage.md): journalled changes, orders.json kept current, exact money,
loud faults, backups and restore — through real files, real processes and real locks."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from decimal import Decimal
from pathlib import Path

import pytest
from filelock import FileLock

import backups
import storage
from conftest import wait_on_disk
from storage import OrderStore, StorageCorrupt, StorageError, StorageLockTimeout

ROOT = Path(__file__).resolve().parent.parent


def add_order(store: OrderStore, user: int, order_id: str, **fields) -> None:
    with store.transaction() as tx:
        tx.add({"id": order_id, "telegram_user_id": user, **fields})


def ids_on_disk(data: dict, user: int | str) -> list[str]:
    return [o["id"] for o in data.get(str(user), [])]


def run_restore(data_dir: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "restore-orders"), "--data-dir", str(data_dir),
                           *args], capture_output=True, text=True, timeout=60)


@pytest.fixture
def store(tmp_path):
    store = OrderStore(tmp_path / "orders.json")
    yield store
    store.close()


def test_orders_are_keyed_by_user_id_string_oldest_first(store, tmp_path):
    add_order(store, 2515644, "ord_a", status="completed")
    add_order(store, 2515644, "ord_b", status="awaiting_payment")
    add_order(store, 42, "ord_c")
    on_disk = wait_on_disk(tmp_path / "orders.json", lambda d: "42" in d)
    assert list(on_disk) == ["2515644", "42"]
    assert ids_on_disk(on_disk, 2515644) == ["ord_a", "ord_b"]  # jq '.["2515644"][-1]' = newest
    assert [o["id"] for o in store.orders_for_user(2515644)] == ["ord_a", "ord_b"]


def test_orders_json_shows_a_change_within_two_seconds_without_being_asked(store, tmp_path):
    add_order(store, 1, "ord_1", status="awaiting_payment")
    wait_on_disk(tmp_path / "orders.json", lambda d: ids_on_disk(d, 1) == ["ord_1"], timeout=2.0)
    store.update("ord_1", lambda o: o.update(status="expired"))
    wait_on_disk(tmp_path / "orders.json", lambda d: d["1"][0]["status"] == "expired", timeout=2.0)


def test_a_change_is_one_fsynced_journal_line_not_a_rewrite(store, tmp_path):
    for i in range(200):
        add_order(store, i % 7, f"old_{i}", note="x" * 500)
    store.compact()
    size_before = (tmp_path / "orders.json").stat().st_size
    journal = sorted((tmp_path / "orders.journal").iterdir())[-1]
    lines_before = journal.read_bytes().count(b"\n")
    store.update("old_3", lambda o: o.update(status="completed"))
    assert journal.read_bytes().count(b"\n") == lines_before + 1
    last = json.loads(journal.read_bytes().splitlines()[-1])
    assert last["key"] == "old_3" and last["order"]["status"] == "completed" and last["user"] == "3"
    # The change is acknowledged before orders.json is rewritten (that happens in the background).
    assert (tmp_path / "orders.json").stat().st_size == size_before


def test_lookups_by_id_reference_charge_id_and_iccid(store):
    add_order(store, 1, "ord_1", orderReference="ref-1", telegram_payment_charge_id="charge-1", iccid="8944001")
    add_order(store, 2, "ord_2", orderReference="ref-2")
    assert store.get("ord_2")["telegram_user_id"] == 2
    assert store.get_by_reference("ref-1")["id"] == "ord_1"
    assert store.get_by_charge_id("charge-1")["id"] == "ord_1"
    assert store.get_by_iccid("8944001")["id"] == "ord_1"
    assert store.get("missing") is None and store.get_by_charge_id("nope") is None
    store.update("ord_2", lambda o: o.update(orderReference="ref-2b"))
    assert store.get_by_reference("ref-2") is None and store.get_by_reference("ref-2b")["id"] == "ord_2"


def test_an_iccid_leads_to_the_newest_order_on_it_even_after_the_older_one_is_saved_again(store):
    add_order(store, 1, "ord_esim", iccid="8944001", status="completed")
    add_order(store, 1, "ord_topup", iccid="8944001", top_up_of="8944001", status="paid")
    store.update("ord_esim", lambda o: o.update(usage={"used_mb": 10}))
    assert store.get_by_iccid("8944001")["id"] == "ord_topup"


def test_a_new_order_id_must_be_unique(store):
    add_order(store, 1, "ord_1")
    with pytest.raises(ValueError, match="already exists"):
        add_order(store, 2, "ord_1")
    assert store.orders_for_user(2) == []


def test_money_is_stored_as_exact_json_numbers_and_read_back_as_decimal(store, tmp_path):
    add_order(store, 1, "ord_1", price=Decimal("3.06"), cost=Decimal("2.26"), stars=314)
    wait_on_disk(tmp_path / "orders.json", lambda d: "1" in d)
    text = (tmp_path / "orders.json").read_text()
    assert '"price": 3.06' in text and '"cost": 2.26' in text  # numbers, not strings, not 3.0600000001
    order = OrderStore(tmp_path / "orders.json", background=False).get("ord_1")
    assert order["price"] == Decimal("3.06") and isinstance(order["price"], Decimal)
    assert order["stars"] == 314


def test_an_exception_inside_a_transaction_keeps_everything_as_it_was(store):
    add_order(store, 1, "ord_1", status="awaiting_payment")
    with pytest.raises(RuntimeError):
        with store.transaction() as tx:
            tx.get("ord_1")["status"] = "paid"
            tx.add({"id": "ord_2", "telegram_user_id": 1})
            raise RuntimeError("boom")
    assert [(o["id"], o["status"]) for o in store.orders_for_user(1)] == [("ord_1", "awaiting_payment")]


def test_a_reader_sees_changes_written_by_another_process(store, tmp_path):
    add_order(store, 1, "ord_1", status="paid")
    subprocess.run([sys.executable, "-c", textwrap.dedent(f"""
        import sys; sys.path.insert(0, {str(ROOT)!r})
        from storage import OrderStore
        store = OrderStore({str(tmp_path / "orders.json")!r}, background=False)
        store.update("ord_1", lambda o: o.update(status="completed"))
        with store.transaction() as tx:
            tx.add({{"id": "ord_2", "telegram_user_id": 1}})
    """)], check=True)
    assert store.get("ord_1")["status"] == "completed"
    assert [o["id"] for o in store.orders_for_user(1)] == ["ord_1", "ord_2"]


def test_a_file_of_the_earlier_version_is_read_as_it_is_and_kept_in_the_same_shape(tmp_path):
    path = tmp_path / "orders.json"
    legacy = {"2515644": [{"id": "ord_old", "telegram_user_id": 2515644, "price": 3.06, "status": "completed",
                           "delivered_at": "2026-01-01T00:00:00+00:00", "country_name": "Таиланд"}],
              "7": [{"id": "ord_7", "telegram_user_id": 7, "status": "awaiting_payment"}], "8": []}
    path.write_text(json.dumps(legacy, ensure_ascii=False, indent=2))  # the earlier, pretty layout
    store = OrderStore(path)
    try:
        assert store.get("ord_old")["price"] == Decimal("3.06")
        add_order(store, 7, "ord_new")
        on_disk = wait_on_disk(path, lambda d: ids_on_disk(d, 7) == ["ord_7", "ord_new"])
        assert list(on_disk) == ["2515644", "7", "8"] and on_disk["8"] == []
        assert on_disk["2515644"] == legacy["2515644"]
    finally:
        store.close()
    (kept,) = [b for b in backups.list_backups(tmp_path / "backups") if b.path.name.endswith("before-upgrade.json")]
    assert json.loads(kept.path.read_text()) == legacy
    assert OrderStore(path, background=False).get("ord_old")["country_name"] == "Таиланд"


@pytest.mark.parametrize("content, reason", [
    (b'{"1": [{"id": "ord_1"', "not valid JSON"),  # cut off mid-write by something else
    (b'{"1": [{"id": "ord_\xff\xfe"}]}', "not UTF-8"),
    (b'[{"id": "ord_1"}]', "user id"),
    (b'{"1": ["ord_1"]}', "not an order"),
    (b'{"1": ' + b"[" * 100_000, "not valid JSON"),  # nested too deep to parse
    (b'{"1": []} trailing', "not valid JSON"),
])
def test_a_corrupt_file_is_reported_and_never_reset(tmp_path, content, reason):
    path = tmp_path / "orders.json"
    path.write_bytes(content)
    store = OrderStore(path)
    with pytest.raises(StorageCorrupt, match=reason):
        store.get("ord_1")
    with pytest.raises(StorageCorrupt):
        add_order(store, 2, "ord_2")
    health = store.check()
    assert health["ok"] is False and reason in health["error"] and str(tmp_path) not in health["error"]
    assert path.read_bytes() == content


def test_a_held_lock_becomes_a_clear_timeout(tmp_path):
    store = OrderStore(tmp_path / "orders.json", lock_timeout=0.2, background=False)
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


def _history(path: Path, count: int) -> None:
    """A realistic history written as the shop writes it."""
    store = OrderStore(path, background=False)
    with store.transaction() as tx:
        for i in range(count):
            tx.add({"id": f"old_{i}", "telegram_user_id": 10_000 + i % 3000, "status": "completed",
                    "delivered_at": "2026-01-01T00:00:00+00:00", "price": Decimal("3.06"), "note": "x" * 600})
    store.compact()


def _writer(path: str, worker: int, threads: int, per_thread: int, acked: multiprocessing.Queue) -> None:
    store = OrderStore(path, lock_timeout=120)

    def write(t: int) -> None:
        for i in range(per_thread):
            order_id = f"w{worker}-{t}-{i}"
            add_order(store, 1000 + worker, order_id, price=Decimal("3.06"))
            acked.put(order_id)  # acknowledged: the transaction returned

    pool = [threading.Thread(target=write, args=(t,)) for t in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    store.close()


@pytest.mark.slow
def test_four_processes_of_fifty_writers_over_a_large_history_keep_every_acknowledged_order(tmp_path):
    path = tmp_path / "orders.json"
    _history(path, 50_000)
    ctx = multiprocessing.get_context("spawn")
    acked = ctx.Queue()
    procs = [ctx.Process(target=_writer, args=(str(path), w, 50, 2, acked)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(300)
        assert p.exitcode == 0
    written = {acked.get(timeout=5) for _ in range(400)}
    assert len(written) == 400
    on_disk = wait_on_disk(path, lambda d: sum(len(d.get(str(1000 + w), [])) for w in range(4)) == 400, timeout=10)
    for w in range(4):
        mine = ids_on_disk(on_disk, 1000 + w)
        assert set(mine) == {x for x in written if x.startswith(f"w{w}-")}
        for t in range(50):  # each thread's orders stay in the order they were made
            assert [x for x in mine if x.startswith(f"w{w}-{t}-")] == [f"w{w}-{t}-0", f"w{w}-{t}-1"]
    assert sum(len(v) for v in on_disk.values()) == 50_400
    assert OrderStore(path, background=False).count() == 50_400
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]


@pytest.mark.slow
def test_killing_writers_at_random_moments_loses_no_acknowledged_change(tmp_path):
    path = tmp_path / "orders.json"
    _history(path, 5_000)
    acked: list[str] = []
    for round_ in range(4):
        writer = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
            import sys; sys.path.insert(0, {str(ROOT)!r})
            from storage import OrderStore
            store = OrderStore({str(path)!r})
            i = 0
            while True:
                with store.transaction() as tx:
                    tx.add({{"id": f"r{round_}-{{i}}", "telegram_user_id": 2, "note": "y" * 300}})
                print(f"r{round_}-{{i}}", flush=True)
                i += 1
        """)], stdout=subprocess.PIPE, text=True)
        try:
            for _ in range(20 + round_ * 37):
                acked.append(writer.stdout.readline().strip())
        finally:
            writer.send_signal(signal.SIGKILL)  # lands mid-transaction or mid-compaction
            writer.wait()
    # The next process is not blocked by a dead one's lock, reads every acknowledged change and is whole.
    with FileLock(str(path) + ".lock", timeout=2):
        pass
    reader = OrderStore(path)
    try:
        mine = [o["id"] for o in reader.orders_for_user(2)]
        assert set(acked) <= set(mine)
        assert reader.count() == 5_000 + len(mine)
        data = wait_on_disk(path, lambda d: set(acked) <= set(ids_on_disk(d, 2)))
        assert len(data["2"]) == len(mine)
    finally:
        reader.close()


def test_an_unfinished_journal_line_is_ignored_and_cut_off_by_the_next_writer(store, tmp_path):
    add_order(store, 1, "ord_1")
    journal = sorted((tmp_path / "orders.journal").iterdir())[-1]
    with open(journal, "ab") as fh:  # what a writer killed half-way through its write() leaves
        fh.write(b'{"seq": 2, "user": "1", "key": "ord_torn", "order": {"id": "ord_t')
    fresh = OrderStore(tmp_path / "orders.json", background=False)
    assert [o["id"] for o in fresh.orders_for_user(1)] == ["ord_1"]
    add_order(fresh, 1, "ord_2")
    assert [o["id"] for o in store.orders_for_user(1)] == ["ord_1", "ord_2"]
    assert b"ord_torn" not in journal.read_bytes()


def test_threads_of_one_worker_share_a_store_safely(store):
    def write(user: int) -> None:
        for i in range(50):
            add_order(store, user, f"{user}-{i}")

    threads = [threading.Thread(target=write, args=(u,)) for u in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [len(store.orders_for_user(u)) for u in range(4)] == [50] * 4


def test_the_journal_rolls_over_into_segments_that_every_reader_follows(tmp_path, monkeypatch):
    monkeypatch.setattr(storage, "SEGMENT_BYTES", 2_000)
    monkeypatch.setattr(storage, "SEGMENT_GRACE_SECONDS", 0.0)
    path = tmp_path / "orders.json"
    follower = OrderStore(path, background=False)
    writer = OrderStore(path, background=False)
    add_order(writer, 1, "ord_0", note="z" * 400)
    assert follower.get("ord_0") is not None  # loaded before most segments exist
    for i in range(1, 40):
        add_order(writer, 1, f"ord_{i}", note="z" * 400)
    assert len(list((tmp_path / "orders.journal").iterdir())) > 5
    assert [o["id"] for o in follower.orders_for_user(1)] == [f"ord_{i}" for i in range(40)]
    assert writer.compact()  # writes orders.json and the first backup, which covers the journal
    time.sleep(0.01)  # segment mtimes must be older than the (zero) grace period
    add_order(writer, 1, "ord_40")
    assert writer.compact()
    assert len(list((tmp_path / "orders.journal").iterdir())) <= 2
    assert len(OrderStore(path, background=False).orders_for_user(1)) == 41


def test_orders_json_deleted_while_running_is_reported_and_no_order_is_lost(store, tmp_path):
    path = tmp_path / "orders.json"
    add_order(store, 1, "ord_1", status="awaiting_payment")
    wait_on_disk(path, lambda d: "1" in d)
    path.unlink()
    health = store.check()
    assert health["ok"] is False and "orders.json is missing" in health["error"]
    # The order from before the deletion is still known, and a change to it is recorded safely.
    store.update("ord_1", lambda o: o.update(status="paid"))
    assert store.get("ord_1")["status"] == "paid"
    assert not store.compact() and not path.exists()  # never silently recreated as if nothing happened
    # A new process does not take the missing file for an empty shop.
    with pytest.raises(StorageError, match="orders.json is missing"):
        OrderStore(path, background=False).get("ord_1")
    result = run_restore(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 orders" in result.stdout
    assert json.loads(path.read_text())["1"][0]["status"] == "paid"
    assert store.check()["ok"] is True
    assert OrderStore(path, background=False).get("ord_1")["status"] == "paid"


def test_orders_json_changed_by_hand_is_never_overwritten_until_an_operator_decides(store, tmp_path):
    path = tmp_path / "orders.json"
    add_order(store, 1, "ord_1", status="awaiting_payment")
    wait_on_disk(path, lambda d: "1" in d)
    edited = json.loads(path.read_text())
    edited["1"][0]["note"] = "fixed by hand"
    path.write_text(json.dumps(edited))
    assert "changed outside the shop" in store.check()["error"]
    add_order(store, 1, "ord_2")
    assert not store.compact()
    assert "ord_2" not in path.read_text()
    result = run_restore(tmp_path, "--adopt", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert store.get("ord_1")["note"] == "fixed by hand"
    wait_on_disk(path, lambda d: True)
    assert store.check()["ok"] is True


def test_touching_orders_json_without_changing_it_is_not_an_alarm(store, tmp_path):
    path = tmp_path / "orders.json"
    add_order(store, 1, "ord_1")
    wait_on_disk(path, lambda d: "1" in d)
    os.utime(path)
    assert store.check()["ok"] is True


def test_backups_are_taken_and_restore_replays_the_journal_after_them(tmp_path):
    path = tmp_path / "orders.json"
    store = OrderStore(path, background=False)
    add_order(store, 1, "ord_1")
    assert store.compact()
    (first,) = backups.list_backups(tmp_path / "backups")
    assert json.loads(first.path.read_text())["1"][0]["id"] == "ord_1" and first.seq == 1
    add_order(store, 1, "ord_2")
    store.compact()  # no second backup within the hour
    assert len(backups.list_backups(tmp_path / "backups")) == 1
    path.write_bytes(b"\x00garbage")  # the disk ate it
    listing = run_restore(tmp_path, "--list")
    assert first.path.name in listing.stdout and "journal line 1" in listing.stdout
    result = run_restore(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert ids_on_disk(json.loads(path.read_text()), 1) == ["ord_1", "ord_2"]
    kept = [b for b in backups.list_backups(tmp_path / "backups") if b.seq is None]
    assert kept and kept[0].path.read_bytes() == b"\x00garbage"  # the replaced file is kept too


def test_old_backups_are_pruned_to_a_bounded_number(tmp_path):
    folder = tmp_path / "backups"
    folder.mkdir()
    for day in range(1, 29):
        for hour in range(0, 24, 3):
            (folder / f"orders-202610{day:02d}T{hour:02d}0000Z-s{day * 100 + hour:012d}.json").write_text("{}")
    backups.prune(folder)
    left = backups.list_backups(folder)
    assert len(left) <= backups.KEEP_HOURLY + backups.KEEP_DAILY
    assert left[-1].path.name.startswith("orders-20261028T21")  # the newest is kept
    assert left[0].path.name.startswith("orders-20261001T00")  # and the first of each day


def test_a_crash_between_naming_the_new_file_and_putting_it_in_place_loses_nothing(tmp_path, monkeypatch):
    path = tmp_path / "orders.json"
    store = OrderStore(path, background=False)
    add_order(store, 1, "ord_1")
    assert store.compact()
    add_order(store, 1, "ord_2")
    real_replace = os.replace

    def dies_before_the_rename(src, dst):
        if Path(dst) == path:
            raise OSError("process killed here")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", dies_before_the_rename)
    assert not store.compact()  # the meta file already names the new file; orders.json is still the old one
    monkeypatch.setattr(os, "replace", real_replace)
    fresh = OrderStore(path, background=False)
    assert [o["id"] for o in fresh.orders_for_user(1)] == ["ord_1", "ord_2"]
    assert fresh.check()["ok"] is True
    assert fresh.compact() and ids_on_disk(json.loads(path.read_text()), 1) == ["ord_1", "ord_2"]


def test_health_turns_red_when_orders_json_stops_keeping_up(tmp_path, monkeypatch):
    monkeypatch.setattr(storage, "LAG_ALARM_SECONDS", 0.0)
    store = OrderStore(tmp_path / "orders.json", background=False)  # nobody rewrites orders.json
    add_order(store, 1, "ord_1")
    assert store.compact() and store.check()["ok"] is True
    add_order(store, 1, "ord_2")
    health = store.check()
    assert health["ok"] is False and "1 changes behind" in health["error"] and health["unwritten_changes"] == 1


def test_a_removed_order_is_gone_everywhere_and_stays_gone(store, tmp_path):
    add_order(store, 1, "ord_keep", status="completed", delivered_at="x")
    add_order(store, 1, "ord_drop", status="expired", telegram_payment_charge_id=None, orderReference="ref-d")
    with store.transaction() as tx:
        tx.remove("ord_drop")
    assert store.get("ord_drop") is None and store.get_by_reference("ref-d") is None
    assert [o["id"] for o in store.orders_for_user(1)] == ["ord_keep"]
    assert OrderStore(tmp_path / "orders.json", background=False).get("ord_drop") is None  # replayed from the journal
    wait_on_disk(tmp_path / "orders.json", lambda d: ids_on_disk(d, 1) == ["ord_keep"])


def test_orders_containing_a_text_are_found_without_decoding_every_order(store):
    add_order(store, 1, "ord_a", telegram_username="anna_travels")
    add_order(store, 2, "ord_b", telegram_username="boris")
    assert [o["id"] for o in store.containing("anna_tr")] == ["ord_a"]
    assert store.containing("nobody") == []


def test_a_process_that_fell_behind_pruned_journal_lines_reloads_from_orders_json(tmp_path, monkeypatch):
    monkeypatch.setattr(storage, "SEGMENT_BYTES", 1_000)
    monkeypatch.setattr(storage, "SEGMENT_GRACE_SECONDS", 0.0)
    path = tmp_path / "orders.json"
    writer = OrderStore(path, background=False, backup_seconds=0)  # a backup every write: segments go at once
    add_order(writer, 1, "ord_0")
    asleep = OrderStore(path, background=False)
    assert asleep.get("ord_0") is not None  # then this process sleeps while the shop goes on
    writer.compact()
    for i in range(1, 30):
        add_order(writer, 1, f"ord_{i}", note="n" * 300)
    time.sleep(0.01)
    writer.compact()  # orders.json and a new backup cover every line; the old segments go
    time.sleep(0.01)
    add_order(writer, 1, "ord_30")
    writer.compact()
    assert not (tmp_path / "orders.journal" / "000000000001.jsonl").exists()
    assert len(asleep.orders_for_user(1)) == 31


def test_a_crash_after_the_very_first_write_before_its_meta_file_loses_nothing(tmp_path, monkeypatch):
    path = tmp_path / "orders.json"
    store = OrderStore(path, background=False)
    add_order(store, 1, "ord_1")
    add_order(store, 1, "ord_2")
    real_write = storage.atomic_write

    def dies_before_the_meta(target, data):
        if Path(target).name == "orders.meta.json":
            raise OSError("process killed here")
        return real_write(target, data)

    monkeypatch.setattr(storage, "atomic_write", dies_before_the_meta)
    assert not store.compact()
    monkeypatch.setattr(storage, "atomic_write", real_write)
    assert path.exists() and not (tmp_path / "orders.meta.json").exists()
    fresh = OrderStore(path, background=False)  # a file with no meta: read as it is, the journal replayed onto it
    assert [o["id"] for o in fresh.orders_for_user(1)] == ["ord_1", "ord_2"]
    assert fresh.check()["ok"] is True
