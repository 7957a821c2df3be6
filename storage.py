"""The orders store: `data/orders.json` and the journal that makes each change cheap (SPEC §2,
`docs/storage.md`).

A committed change is one line appended to the journal (`orders.journal/<first seq>.jsonl`) and fsync'd
under the `orders.json.lock` file lock, so its cost does not grow with the number of orders. Every process
keeps the orders in memory — each as its compact JSON text, with indexes by id, charge id, eSIM Go reference
and ICCID — and replays the journal lines other processes appended before it reads or writes. A background
thread in every process rewrites `orders.json` from memory (atomic replace) at most about once a second
while changes arrive, records what it wrote in `orders.meta.json`, takes the hourly backups and drops
journal segments once a backup covers them. `orders.json` keeps its contract: one object keyed by user id,
each user's orders oldest first; a file of the earlier version is read as it is.

Faults are loud: an unreadable file or journal raises `StorageCorrupt`, a missing or hand-changed
`orders.json` holds the store (`check()` says why; nothing overwrites it) until `scripts/restore-orders`.
Money is `Decimal` in memory and a plain JSON number on disk.
"""

from __future__ import annotations

import atexit
import contextlib
import copy
import hashlib
import json
import logging
import os
import re
import secrets
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

import backups
from durable import atomic_write, fsync_dir, write_all, write_temp
from orders import is_settled

log = logging.getLogger(__name__)

SEGMENT_BYTES = 1 << 20  # a journal segment is closed at about 1 MiB (~900 changes)
SEGMENT_GRACE_SECONDS = 60.0  # a covered segment lingers this long so a slow process can still read it
COMPACT_MIN_SECONDS = 0.75  # orders.json is rewritten at most this often while changes keep arriving
LAG_ALARM_SECONDS = 15.0  # /healthz turns 503 when orders.json has lagged behind the journal this long
POLL_SECONDS = 0.25  # how often the background thread looks at other processes' changes
# What a promo code's uses, holds and revenue are counted from (promo.py), kept per order sold with a code.
PROMO_FIELDS = ("id", "telegram_user_id", "status", "expires_at", "price", "stars", "paid_stars",
                "discount_usd")
_USER_LINE = re.compile(rb'^("(?:[^"\\]|\\.)*"): \[$')


class StorageError(RuntimeError):
    """The orders could not be read or written; the message names the file and what to do."""


class StorageLockTimeout(StorageError):
    """Another process held the orders lock for longer than the timeout."""


class StorageCorrupt(StorageError):
    """A file is not what we wrote; it is left untouched for an operator."""


class JournalGap(StorageCorrupt):
    """The journal no longer holds the lines that follow what this process (or orders.json) has."""


def _encode_decimal(value: Any) -> Any:
    # A cent amount has far fewer than 15 significant digits, so float(value) prints back exactly the
    # same digits (shortest round-trip repr) and `parse_float=Decimal` reads the same Decimal back.
    if isinstance(value, Decimal):
        if len(value.as_tuple().digits) > 15:
            raise TypeError(f"{value} has too many digits to store exactly")
        return float(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def dumps(data: Any) -> str:
    """Serialise stored data readably (small files such as the seen-updates file)."""
    return json.dumps(data, ensure_ascii=False, indent=1, default=_encode_decimal)


def encode_order(order: dict[str, Any]) -> bytes:
    """One order as the single line of JSON that orders.json and the journal hold."""
    return json.dumps(order, ensure_ascii=False, default=_encode_decimal).encode()


def decode_order(raw: bytes) -> dict[str, Any]:
    return json.loads(raw, parse_float=Decimal)


# ---- small JSON files ------------------------------------------------------------------------------


class JsonStore:
    """One small JSON object in one file, shared by threads and processes: locked transactions, atomic
    replace, cached reads. For bounded files only (the webhook's seen-updates file): every change rewrites it."""

    def __init__(self, path: str | os.PathLike, lock_timeout: float = 10.0,
                 before_replace: Callable[[str], None] | None = None) -> None:
        self.path = Path(path)
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self.lock_timeout = lock_timeout
        self.before_replace = before_replace  # given the file's previous text when a change replaces it (a backup)
        # Thread-local by default: threads of one process exclude each other through separate flock()s.
        self._lock = FileLock(str(self.lock_path), timeout=lock_timeout)
        self._cached: tuple[tuple[int, int, int], dict[str, Any]] | None = None

    def _read(self) -> tuple[str | None, dict[str, Any]]:
        text = _read_text(self.path)
        if text is None:
            return None, {}
        data = _parse_json(self.path, text)
        if not isinstance(data, dict):
            raise StorageCorrupt(f"{self.path} should hold a JSON object; it was left as it is.")
        return text, data

    def read(self) -> dict[str, Any]:
        """The file's contents, parsed again only when the file changed (do not modify the result)."""
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return {}
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        cached = self._cached
        if cached is None or cached[0] != stamp:
            cached = self._cached = (stamp, self._read()[1])
        return cached[1]

    @contextmanager
    def transaction(self) -> Iterator[dict[str, Any]]:
        """Hold the lock, yield the parsed file for changes, then write it atomically (if it changed)."""
        with _locked(self._lock, self.lock_timeout):
            before, data = self._read()
            yield data
            text = dumps(data)
            if text != before:
                if before is not None and self.before_replace:
                    self.before_replace(before)
                atomic_write(self.path, text.encode())


# ---- the orders ------------------------------------------------------------------------------------


@dataclass
class _State:
    """Every order of the shop as of journal line `seq`, each kept as its JSON line, with lookups."""

    seq: int = 0
    generation: str = ""
    raw: dict[str, bytes] = field(default_factory=dict)  # key (the order id) -> JSON line
    user_of: dict[str, str] = field(default_factory=dict)
    users: dict[str, list[str]] = field(default_factory=dict)  # user id -> keys, oldest first
    by_charge: dict[str, str] = field(default_factory=dict)
    by_reference: dict[str, str] = field(default_factory=dict)
    by_iccid: dict[str, str] = field(default_factory=dict)
    # promo code id -> key -> what its uses are counted from (PROMO_FIELDS) of each order sold with it
    by_promo: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    open: set[str] = field(default_factory=set)  # keys of orders with a step left

    def put(self, user: str, key: str, order: dict[str, Any], raw: bytes) -> None:
        new = key not in self.raw
        if new:
            self.users.setdefault(user, []).append(key)
            self.user_of[key] = user
        self.raw[key] = raw
        for index, name in ((self.by_charge, "telegram_payment_charge_id"),
                            (self.by_reference, "orderReference"), (self.by_iccid, "iccid")):
            value = order.get(name)
            # The newest order holding a value keeps it (a top-up shares its eSIM's ICCID): saving an
            # older order again does not take it back.
            if value and (new or str(value) not in index):
                index[str(value)] = key
        if order.get("promo_id"):  # set when the order is made, never changed
            self.by_promo.setdefault(str(order["promo_id"]), {})[key] = {f: order.get(f) for f in PROMO_FIELDS}
        if is_settled(order):
            self.open.discard(key)
        else:
            self.open.add(key)

    def find(self, index: dict[str, str], name: str, value: Any) -> str | None:
        """The key an index gives for `value`, if that order still holds it."""
        key = index.get(str(value))
        if key is None or key not in self.raw or decode_order(self.raw[key]).get(name) != value:
            return None
        return key

    def remove(self, key: str) -> None:
        if self.raw.pop(key, None) is not None:
            self.users[self.user_of.pop(key)].remove(key)
            self.open.discard(key)
            for sold in self.by_promo.values():
                sold.pop(key, None)

    def add_user(self, user: str) -> None:
        self.users.setdefault(user, [])

    def frozen(self) -> _State:
        """A copy that later changes do not touch, enough to render (the JSON lines themselves are shared)."""
        return _State(seq=self.seq, generation=self.generation, raw=dict(self.raw),
                      users={u: list(keys) for u, keys in self.users.items()})

    def render(self) -> list[bytes]:
        """orders.json's bytes, in pieces: one user per block, one order per line."""
        parts = [b"{\n"]
        last = len(self.users) - 1
        for i, (user, keys) in enumerate(self.users.items()):
            parts.append(json.dumps(user, ensure_ascii=False).encode() + b": [\n")
            if keys:
                parts.append(b",\n".join(self.raw[k] for k in keys))
                parts.append(b"\n")
            parts.append(b"]\n" if i == last else b"],\n")
        parts.append(b"}\n")
        return parts


class Transaction:
    """The orders as seen under the lock. Orders handed out here are written back, if changed, when the
    `with` block ends without an exception."""

    def __init__(self, state: _State) -> None:
        self._state = state
        self._touched: dict[str, tuple[str, dict[str, Any] | None]] = {}  # None: to be removed

    def _take(self, key: str | None) -> dict[str, Any] | None:
        if key is None:
            return None
        if key not in self._touched:
            if key not in self._state.raw:
                return None
            self._touched[key] = (self._state.user_of[key], decode_order(self._state.raw[key]))
        return self._touched[key][1]

    def remove(self, order_id: Any) -> None:
        """Drop an order for good (unpaid invoices long expired); nothing else is ever removed."""
        key = str(order_id)
        if key in self._state.raw:
            self._touched[key] = (self._state.user_of[key], None)

    def get(self, order_id: Any) -> dict[str, Any] | None:
        return self._take(str(order_id))

    def get_by_charge_id(self, charge_id: Any) -> dict[str, Any] | None:
        return self._take(self._state.find(self._state.by_charge, "telegram_payment_charge_id", charge_id))

    def get_by_reference(self, reference: Any) -> dict[str, Any] | None:
        return self._take(self._state.find(self._state.by_reference, "orderReference", reference))

    def orders_for_user(self, user_id: Any) -> list[dict[str, Any]]:
        return [self._take(k) for k in self._state.users.get(str(user_id), [])]  # type: ignore[misc]

    def open_orders(self) -> list[dict[str, Any]]:
        """Orders with a step left (awaiting payment, paid, provisioning, failed, undelivered)."""
        return [self._take(k) for k in sorted(self._state.open)]  # type: ignore[misc]

    def sold_with_promo(self, promo_id: Any) -> list[dict[str, Any]]:
        """The orders sold with this promo code (its `promo_id`), as of the lock, each as its PROMO_FIELDS only
        (read-only; `get()` an order to change it): its uses are counted from these without reading whole orders."""
        return list(self._state.by_promo.get(str(promo_id), {}).values())

    def add(self, order: dict[str, Any]) -> dict[str, Any]:
        """Append a new order to its buyer's list (`telegram_user_id`); its `id` must be new."""
        key = str(order["id"])
        if key in self._state.raw or key in self._touched:
            raise ValueError(f"order {key} already exists")
        self._touched[key] = (str(order["telegram_user_id"]), order)
        return order

    def changes(self) -> list[tuple[str, str, bytes | None]]:
        """(user, key, JSON line, or None to remove) of every order that is new, changed or removed."""
        out = []
        for key, (user, order) in self._touched.items():
            raw = None if order is None else encode_order(order)
            if self._state.raw.get(key) != raw:
                out.append((user, key, raw))
        return out


@dataclass
class _Reader:
    """Where this process stands in the journal: the open segment and the offset after its last whole line."""

    path: Path | None = None
    handle: Any = None
    offset: int = 0

    def close(self) -> None:
        if self.handle is not None:
            self.handle.close()
        self.path, self.handle, self.offset = None, None, 0


class OrderStore:
    """`orders.json`: user id -> that user's orders; lookups by id, eSIM Go reference, charge id, ICCID.

    Reads answer from memory after replaying any new journal lines (two `stat`s when there are none).
    `transaction()` holds the file lock, so at most one change is being made at a time across processes.
    """

    def __init__(self, path: str | os.PathLike, lock_timeout: float = 10.0, *, background: bool = True,
                 backup_seconds: float = 3600.0) -> None:
        self.path = Path(path)
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self.meta_path = self.path.with_name(self.path.stem + ".meta.json")
        self.journal_dir = self.path.with_name(self.path.stem + ".journal")
        self.backup_dir = self.path.parent / "backups"
        self.lock_timeout = lock_timeout
        self.backup_seconds = backup_seconds
        self._lock = FileLock(str(self.lock_path), timeout=lock_timeout)
        self._compact_lock = FileLock(str(self.path.with_name(self.path.name + ".compact.lock")))
        self._mem = threading.RLock()
        self._state: _State | None = None
        self._load_error: StorageError | None = None
        self._meta_stamp: int | None = None
        self._load_tried = 0.0
        self._reader = _Reader()
        self._held: str | None = None  # why orders.json may not be rewritten now
        self._journal_error: str | None = None  # the last journal write failed (cleared by a success)
        self._file_error: str | None = None  # the last rewrite of orders.json failed (likewise)
        self._last_compact = 0.0
        self._background = background
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()

    # ---- reading -----------------------------------------------------------------------------

    def get(self, order_id: Any) -> dict[str, Any] | None:
        """One order by our id (a copy), or None."""
        with self._mem:
            raw = self._fresh().raw.get(str(order_id))
        return decode_order(raw) if raw is not None else None

    def get_by_reference(self, order_reference: Any) -> dict[str, Any] | None:
        """One order by its eSIM Go `orderReference` (a copy), or None."""
        return self._lookup("by_reference", "orderReference", order_reference)

    def get_by_charge_id(self, charge_id: Any) -> dict[str, Any] | None:
        """One order by its `telegram_payment_charge_id` (a copy), or None."""
        return self._lookup("by_charge", "telegram_payment_charge_id", charge_id)

    def get_by_iccid(self, iccid: Any) -> dict[str, Any] | None:
        """The latest order on this ICCID (a copy), or None."""
        return self._lookup("by_iccid", "iccid", iccid)

    def _lookup(self, index: str, name: str, value: Any) -> dict[str, Any] | None:
        with self._mem:
            state = self._fresh()
            key = state.find(getattr(state, index), name, value)
            return decode_order(state.raw[key]) if key else None

    def orders_for_user(self, user_id: Any) -> list[dict[str, Any]]:
        """That user's orders, oldest first (copies)."""
        with self._mem:
            state = self._fresh()
            lines = [state.raw[k] for k in state.users.get(str(user_id), [])]
        return [decode_order(raw) for raw in lines]

    def open_orders(self) -> list[dict[str, Any]]:
        """Copies of the orders with a step left; the worker's round reads these, never the whole history."""
        with self._mem:
            state = self._fresh()
            lines = [state.raw[k] for k in sorted(state.open)]
        return [decode_order(raw) for raw in lines]

    def sold_with_promo(self, promo_id: Any) -> list[dict[str, Any]]:
        """The orders sold with this promo code (its `promo_id`), each as its PROMO_FIELDS only (read-only)."""
        with self._mem:
            return list(self._fresh().by_promo.get(str(promo_id), {}).values())

    def containing(self, text: str) -> list[dict[str, Any]]:
        """Copies of the orders whose stored JSON contains `text` (a byte search: ~10 ms over 50,000 orders)."""
        needle = text.encode()
        with self._mem:
            lines = [raw for raw in self._fresh().raw.values() if needle in raw]
        return [decode_order(raw) for raw in lines]

    def lines(self) -> dict[str, bytes]:
        """Every order's stored JSON line by id: a snapshot of the dict (the lines are shared, never copied), for
        read-only reports such as the admin console's, which keep their own summaries of each line."""
        with self._mem:
            return dict(self._fresh().raw)

    def count(self) -> int:
        with self._mem:
            return len(self._fresh().raw)

    # ---- writing -----------------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """Hold the lock and yield the orders for changes; the changed ones are journalled (fsync'd) before
        the block returns. An exception inside the block discards the changes.

        Raises StorageLockTimeout when the lock cannot be had, StorageCorrupt or StorageError when the
        orders cannot be read or the change cannot be written (nothing is acknowledged then).
        """
        with self._mem:
            self._fresh()
        with _locked(self._lock, self.lock_timeout):
            with self._mem:
                state = self._fresh()
            tx = Transaction(state)
            yield tx
            changes = tx.changes()
            if changes:
                self._append(changes)
        if changes:
            self._wake.set()

    def update(self, order_id: str, change: Callable[[dict[str, Any]], Any]) -> dict[str, Any] | None:
        """Apply `change(order)` to one order under the lock; returns a copy of the result or None."""
        with self.transaction() as tx:
            order = tx.get(order_id)
            if order is None:
                return None
            change(order)
            return copy.deepcopy(order)

    def _append(self, changes: list[tuple[str, str, bytes | None]]) -> None:
        """Journal `changes` and apply them. Called with the file lock held (nobody else can append now);
        readers in this process wait only while the lines are applied, not during the fsync."""
        with self._mem:
            state = self._fresh()
            seq = state.seq
            path, offset = self._reader.path, self._reader.offset
            if path is None or not path.exists() or path.stat().st_size >= SEGMENT_BYTES:
                path, offset = self._segment(seq + 1), None
        lines = []
        for user, key, raw in changes:
            seq += 1
            lines.append(b'{"seq": %d, "user": %s, "key": %s, "order": %s}\n' % (
                seq, json.dumps(user).encode(), json.dumps(key, ensure_ascii=False).encode(), raw or b"null"))
        try:
            if not path.parent.is_dir():
                path.parent.mkdir(parents=True, exist_ok=True)
                fsync_dir(path.parent.parent)
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            # A segment this write starts may be new, or made by a writer that died before syncing its name.
            created = os.fstat(fd).st_size == 0
            try:
                if offset is not None and os.fstat(fd).st_size > offset:
                    # The tail of a write that died half-way (never acknowledged): cut it off.
                    log.warning("journal %s: dropping an unfinished line left by a crashed writer", path.name)
                    os.ftruncate(fd, offset)
                write_all(fd, b"".join(lines))
                os.fsync(fd)
            finally:
                os.close(fd)
            if created:
                fsync_dir(path.parent)
        except OSError as exc:
            self._journal_error = f"cannot write the orders journal: {exc.strerror or exc}"
            raise StorageError(f"Cannot write {path}: {exc}. Is the data folder writable and the disk not full?"
                               ) from exc
        self._journal_error = None
        with self._mem:
            if self._fresh().seq != seq:
                raise StorageCorrupt(f"{path}: wrote up to line {seq} but read back {self._state.seq}")

    # ---- loading and following the journal --------------------------------------------------

    def _fresh(self) -> _State:
        """The state, loaded if need be and caught up with the journal. Call with `_mem` held."""
        if self._state is None:
            # A failed load is retried at most once a second, so a restored file is picked up.
            if self._load_error is not None and time.monotonic() - self._load_tried < 1.0:
                raise self._load_error
            self._load_tried = time.monotonic()
            try:
                self._state = self._load()
            except StorageError as exc:
                self._load_error = exc
                raise
            self._load_error = None
            self._start_background()
        elif self._meta_changed():
            self._reload()  # scripts/restore-orders wrote a new orders.json: start from it
        try:
            self._catch_up()
        except JournalGap:
            # This process fell so far behind that the lines it needs were folded into orders.json and pruned:
            # start again from the file (a gap that remains after that is real, and raised).
            log.warning("orders: this process fell behind the journal; reloading from %s", self.path.name)
            self._reload()
        return self._state

    def _meta_changed(self) -> bool:
        """Whether the meta file names another generation than the one in memory (one stat when it does not)."""
        try:
            stamp = self.meta_path.stat().st_mtime_ns
        except FileNotFoundError:
            stamp = None
        if stamp == self._meta_stamp:
            return False
        try:
            generation = str(self._read_meta().get("generation", ""))
        except StorageError:
            return False  # a meta file being replaced right now: look again next time
        self._meta_stamp = stamp
        return generation != self._state.generation

    def _load(self) -> _State:
        meta = self._read_meta()
        problem = self._file_problem(meta)
        if problem:
            raise StorageError(problem)
        record = self._matching(meta) or {}
        state = _read_orders_file(self.path)
        state.seq, state.generation = int(record.get("seq", 0)), str(meta.get("generation", ""))
        self._reader.close()
        self._state = state
        try:
            self._catch_up()
        except StorageError:
            self._state = None  # never half-loaded: the next use loads again from the start
            self._reader.close()
            raise
        log.info("orders loaded: %d orders of %d users (journal at line %d)", len(state.raw), len(state.users),
                 state.seq)
        return state

    def _segment(self, first_seq: int) -> Path:
        return self.journal_dir / f"{first_seq:012d}.jsonl"

    def _segments(self) -> list[tuple[int, Path]]:
        try:
            names = os.listdir(self.journal_dir)
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise StorageError(f"Cannot read the orders journal {self.journal_dir}: {exc}") from exc
        return sorted((int(n[:-6]), self.journal_dir / n) for n in names
                      if n.endswith(".jsonl") and n[:-6].isdigit())

    def _catch_up(self) -> None:
        """Apply the journal lines appended since this process last looked."""
        state, reader = self._state, self._reader
        assert state is not None
        while True:
            if reader.handle is None:
                listed = self._segments()  # one listing: a segment created meanwhile must not look like a gap
                segments = [s for s in listed if s[0] <= state.seq + 1]
                if not segments:
                    if listed:
                        raise JournalGap(
                            f"The orders journal {self.journal_dir} starts at line {listed[0][0]} but line "
                            f"{state.seq + 1} is needed after {self.path.name}; run scripts/restore-orders.")
                    return
                reader.path = segments[-1][1]
                try:
                    # Unbuffered: a buffer could hold a crashed writer's tail after the next writer cut it off.
                    reader.handle = open(reader.path, "rb", buffering=0)  # noqa: SIM115 (kept open)
                except FileNotFoundError:  # pruned just now by another process: look again
                    reader.close()
                    continue
                except OSError as exc:
                    reader.close()
                    raise StorageError(f"Cannot read the orders journal {reader.path}: {exc}") from exc
                reader.offset = 0
            st = os.fstat(reader.handle.fileno())
            size = st.st_size
            if size > reader.offset:
                reader.handle.seek(reader.offset)
                chunk = reader.handle.read(size - reader.offset)
                whole = chunk.rfind(b"\n") + 1  # an unfinished last line waits for its newline
                for line in chunk[:whole].splitlines():
                    if line.strip():
                        self._apply(line, reader.path)
                reader.offset += whole
            following = self._segment(state.seq + 1)
            if following != reader.path and following.exists():
                reader.close()
                continue
            if st.st_nlink == 0:
                # Our segment was pruned, which happens only once a later one exists; if the one that follows
                # is gone too, this process slept past lines now only in orders.json.
                raise JournalGap(f"lines after {state.seq} were pruned from the journal before this process read "
                                 "them")
            return

    def _apply(self, line: bytes, path: Path | None) -> None:
        state = self._state
        assert state is not None
        try:
            entry = json.loads(line, parse_float=Decimal)
            seq, user, key, order = int(entry["seq"]), str(entry["user"]), str(entry["key"]), entry["order"]
            if order is not None and not isinstance(order, dict):
                raise ValueError("order is neither an object nor null (removed)")
        except (ValueError, KeyError, TypeError) as exc:
            raise StorageCorrupt(f"{path} has an unreadable line ({exc}); it was left as it is. "
                                 "Run scripts/restore-orders.") from exc
        if seq <= state.seq:
            return  # already in orders.json (the snapshot was written after this line)
        if seq != state.seq + 1:
            raise StorageCorrupt(f"{path}: line {seq} follows line {state.seq}; journal lines are missing. "
                                 "Run scripts/restore-orders.")
        if order is None:
            state.remove(key)
        else:
            state.put(user, key, order, encode_order(order))
        state.seq = seq

    # ---- orders.json, meta, health -----------------------------------------------------------

    def _read_meta(self) -> dict[str, Any]:
        text = _read_text(self.meta_path)
        if text is None:
            return {}
        meta = _parse_json(self.meta_path, text)
        if not isinstance(meta, dict):
            raise StorageCorrupt(f"{self.meta_path} should hold a JSON object; it was left as it is.")
        return meta

    def _file_problem(self, meta: dict[str, Any], settle: bool = True) -> str | None:
        """Why orders.json is not the file this shop last wrote, or None when it is (or there is none yet).

        With `settle`, a mismatch must last a second: another process's background write replaces the file
        a few milliseconds before it records the new one in the meta file, and that is not a fault.
        """
        problem = self._compare(meta)
        deadline = time.monotonic() + (1.0 if settle else 0.0)
        while problem is not None and time.monotonic() < deadline:
            time.sleep(0.05)
            problem = self._compare(self._read_meta())
        return problem

    def _matching(self, meta: dict[str, Any]) -> dict[str, Any] | None:
        """The meta record (the file last written, or the one before it) that orders.json is; None if neither.

        The meta file names the new file before it replaces the old one, so a crash in between leaves an
        orders.json that matches `previous`, with the journal line it really holds."""
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        records = [r for r in (meta, meta.get("previous")) if r and r.get("size") == st.st_size]
        for record in records:
            if record.get("mtime_ns") == st.st_mtime_ns:
                return record
        digest = _sha256(self.path) if records else None
        return next((r for r in records if r.get("sha256") == digest), None)  # copied or touched: same bytes

    def _seq_on_disk(self, meta: dict[str, Any]) -> int:
        """The journal line orders.json includes (-1: unknown, e.g. not written by this version yet)."""
        record = self._matching(meta) if meta else None
        return int(record["seq"]) if record else -1

    def _compare(self, meta: dict[str, Any]) -> str | None:
        if not meta:
            return None  # never written by this version: whatever is there is read as it is
        if self._matching(meta) is not None:
            return None
        if not self.path.exists():
            return (f"{self.path.name} is missing (the shop had written {meta.get('orders', '?')} orders to it). "
                    "Run scripts/restore-orders to rebuild it from the backups and the journal.")
        return (f"{self.path.name} was changed outside the shop; it is left as it is. Run "
                "scripts/restore-orders to rebuild it from the backups and the journal, or "
                "scripts/restore-orders --adopt orders.json to keep the changed file.")

    def check(self) -> dict[str, Any]:
        """Health for /healthz: short states and reasons, no paths."""
        try:
            with self._mem:
                state = self._fresh()
                orders_count, seq = len(state.raw), state.seq
            meta = self._read_meta()
            problem = self._file_problem(meta)
        except StorageError as exc:
            return {"ok": False, "error": self._public(str(exc))}
        if not os.access(self.path.parent, os.W_OK):
            problem = "the data folder is not writable"  # the cause first: a missing or stale file may follow
        problem = problem or self._journal_error or self._file_error or self._lagging(meta, seq)
        body: dict[str, Any] = {"ok": problem is None, "orders": orders_count,
                                "unwritten_changes": max(0, seq - max(self._seq_on_disk(meta), 0))}
        last = backups.newest(self.backup_dir)
        body["last_backup"] = last.taken.isoformat(timespec="seconds") if last else None
        if problem:
            body["error"] = self._public(problem)
        return body

    def _lagging(self, meta: dict[str, Any], seq: int) -> str | None:
        """A reason when orders.json has had unwritten changes for longer than the background thread needs."""
        written = meta.get("written_at")
        on_disk = self._seq_on_disk(meta)
        if not written or seq <= on_disk:
            return None
        age = (datetime.now(UTC) - datetime.fromisoformat(written)).total_seconds()
        if age < LAG_ALARM_SECONDS:
            return None
        return (f"orders.json is {seq - on_disk} changes behind the journal and was last written "
                f"{age:.0f}s ago; is any shop process running its background thread?")

    def _public(self, text: str) -> str:
        """A reason fit for a public health check: one short line, no folder paths."""
        return " ".join(text.replace(str(self.path.parent) + os.sep, "").split())[:300]

    # ---- writing orders.json (background) ----------------------------------------------------

    def compact(self, wait: float = 0.0) -> bool:
        """Rewrite orders.json from memory if the journal is ahead of it; True if it was written.

        Only one process at a time does this (its own lock; `wait` s for it, else another process is on it);
        writers are never blocked by it.
        """
        try:
            self._compact_lock.acquire(timeout=wait)
        except Timeout:
            return False
        try:
            return self._compact_locked()
        finally:
            self._compact_lock.release()

    def _compact_locked(self) -> bool:
        meta = self._read_meta()
        with self._mem:
            state = self._fresh()
            problem = self._file_problem(meta, settle=False)  # we hold the lock: nobody else writes it
            if problem != self._held:
                (log.error if problem else log.warning)("%s", problem or "orders.json is written again")
                self._held = problem
            if problem:
                return False
            if meta and (self._seq_on_disk(meta) >= state.seq or meta.get("generation", "") != state.generation):
                return False  # nothing new, or a restore this process has not loaded yet
            snapshot = state.frozen()
            if self._reader.handle is not None:
                # Other processes' lines can be read before their writer's fsync returns: make them durable
                # before orders.json (and the meta file) can claim them.
                os.fsync(self._reader.handle.fileno())
        started = time.monotonic()
        try:
            if not meta and self.path.exists():
                # The first rewrite of a file this version did not write (the earlier version's): keep it as it was.
                backups.take(self.path, self.backup_dir, None, note="before-upgrade")
            meta = self._write_file(snapshot, self._matching(meta) if meta else None)
        except OSError as exc:
            self._file_error = f"cannot write {self.path.name}: {exc.strerror or exc}"
            log.error("orders.json not written: %s", exc)
            return False
        log.debug("orders.json written: %d orders, line %d, %.0f ms", len(snapshot.raw), snapshot.seq,
                  (time.monotonic() - started) * 1000)
        self._file_error = None
        self._after_write(meta, snapshot.seq)
        return True

    def _after_write(self, meta: dict[str, Any], seq: int) -> None:
        """Hourly backup of the file just written, then drop the journal segments a backup covers."""
        newest = backups.newest(self.backup_dir)
        if newest is None or (datetime.now(UTC) - newest.taken).total_seconds() >= self.backup_seconds:
            try:
                newest = backups.take(self.path, self.backup_dir, int(meta["seq"]))
                backups.prune(self.backup_dir)
            except OSError as exc:
                log.error("backup of orders.json failed: %s", exc)
        if newest is None:
            return
        covered = min(seq, newest.seq)
        try:
            segments = self._segments()
        except StorageError as exc:
            log.error("journal segments not pruned: %s", exc)
            return
        for (_, path), (next_first, next_path) in zip(segments, segments[1:], strict=False):
            if next_first - 1 > covered:
                break
            with contextlib.suppress(FileNotFoundError):
                if time.time() - next_path.stat().st_mtime > SEGMENT_GRACE_SECONDS:
                    path.unlink()

    def _reload(self) -> None:
        self._state = None
        self._reader.close()
        self._fresh()

    # ---- the background thread ---------------------------------------------------------------

    def _start_background(self) -> None:
        if not self._background or self._thread is not None:
            return
        self._thread = threading.Thread(target=_background, args=(weakref.ref(self), self._wake, self._stop),
                                        name="orders-compactor", daemon=True)
        self._thread.start()
        # A clean exit (pm2 stop, a gunicorn worker retiring) leaves orders.json current, not for the next start.
        atexit.register(_close_at_exit, weakref.ref(self))

    def _background_round(self) -> None:
        with self._mem:
            state = self._fresh()
            seq, generation = state.seq, state.generation
        meta = self._read_meta()
        behind = not meta or self._seq_on_disk(meta) < seq or meta.get("generation", "") != generation
        if behind and time.monotonic() - self._last_compact >= COMPACT_MIN_SECONDS:
            self._last_compact = time.monotonic()
            self.compact()

    def close(self) -> None:
        """Stop the background thread after writing orders.json once more."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(10)
        with contextlib.suppress(StorageError):
            # Wait for whoever is writing it now: their copy may lack this process's last changes.
            self.compact(wait=30.0)
        with self._mem:
            self._reader.close()

    # ---- restoring ---------------------------------------------------------------------------

    def restore(self, source: Path, seq: int | None) -> dict[str, Any]:
        """Make `source` the orders file: replay the journal after its line `seq` onto it, or (seq None)
        take it as the whole truth as of the journal's end. Running processes reload it.

        Raises StorageCorrupt when the journal no longer reaches back to line `seq`.
        """
        with _locked(self._lock, self.lock_timeout), _locked(self._compact_lock, 60), self._mem:
            state = _read_orders_file(source)
            self._reader.close()
            try:
                if seq is None:
                    state.seq = max([0] + [_last_seq_in(path) for _, path in self._segments()])
                else:
                    state.seq = seq
                    self._state = state
                    self._catch_up()
                state.generation = secrets.token_hex(8)
                before = None
                if self.path.exists():
                    before = backups.take(self.path, self.backup_dir, None, note="before-restore").path
                self._write_file(state, None, restored_from=str(source))
                # A backup of what was restored, so backup + journal stays the whole shop from here on.
                backups.take(self.path, self.backup_dir, state.seq)
            finally:
                self._state = None  # the next use loads what is on disk now
                self._reader.close()
        return {"orders": len(state.raw), "journal_line": state.seq, "previous_saved_as": before}

    def _write_file(self, state: _State, previous: dict[str, Any] | None, **extra: Any) -> dict[str, Any]:
        """Write orders.json from `state` so that whichever file a crash leaves is recognised: replacing a file
        the meta file knows (`previous`), the meta names both before the rename; with none known yet (the first
        write, a restore), the file comes first — a file without its meta is read as it is, and the whole
        journal, idempotent, is replayed onto it."""
        data = b"".join(state.render())
        tmp, stamp = write_temp(self.path, data)
        record = {"seq": state.seq, "orders": len(state.raw), "size": len(data), "mtime_ns": stamp.st_mtime_ns,
                  "sha256": hashlib.sha256(data).hexdigest()}
        meta = {**record, "generation": state.generation, "written_at": datetime.now(UTC).isoformat(timespec="seconds"),
                **extra, "previous": {k: previous[k] for k in record if k in previous} if previous else None}
        try:
            if previous is not None:
                atomic_write(self.meta_path, json.dumps(meta, indent=1).encode())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        fsync_dir(self.path.parent)
        if previous is None:
            atomic_write(self.meta_path, json.dumps(meta, indent=1).encode())
        return meta


def _last_seq_in(path: Path) -> int:
    last = 0
    with open(path, "rb") as fh:
        for line in fh:
            if line.endswith(b"\n") and line.strip():
                last = max(last, int(json.loads(line)["seq"]))
    return last


def _close_at_exit(ref: weakref.ref) -> None:
    store = ref()
    if store is not None and not store._stop.is_set():
        store.close()


def _background(ref: weakref.ref, wake: threading.Event, stop: threading.Event) -> None:
    # Holds the store only weakly, so a store nobody uses any more (tests build many) lets its thread end.
    while not stop.is_set():
        wake.wait(POLL_SECONDS)
        wake.clear()
        store = ref()
        if store is None or stop.is_set():
            return
        try:
            store._background_round()
        except StorageError as exc:
            log.debug("orders background round: %s", exc)
        except Exception:  # never let the thread die: orders.json would stop being written
            log.exception("orders background round failed")
        del store


# ---- file helpers ----------------------------------------------------------------------------------


def _read_orders_file(path: Path) -> _State:
    """Load an orders file: our one-order-per-line layout line by line (little memory), any other valid
    layout (the earlier version's) with one full parse."""
    try:
        with open(path, "rb") as fh:
            state = _read_line_layout(fh)
            if state is not None:
                return state
            fh.seek(0)
            text = fh.read()
    except FileNotFoundError:
        return _State()
    except OSError as exc:
        raise StorageError(f"Cannot read {path}: {exc}") from exc
    state = _State()
    try:
        for user, user_orders in _object_items(path, text.decode("utf-8")):
            if not isinstance(user_orders, list):
                raise StorageCorrupt(f"{path} should be an object of user id -> list of orders; "
                                     "it was left as it is.")
            state.add_user(user)
            for n, order in enumerate(user_orders):
                if not isinstance(order, dict):
                    raise StorageCorrupt(f"{path}: user {user}'s entry {n} is not an order object; left as it is.")
                _load_order(state, user, order, encode_order(order), n)
    except UnicodeDecodeError as exc:
        raise StorageCorrupt(f"{path} is not UTF-8 text ({exc}); it was left as it is. "
                             "Run scripts/restore-orders.") from exc
    return state


def _object_items(path: Path, text: str) -> Iterator[tuple[str, Any]]:
    """The members of the JSON object in `text`, one value parsed at a time: a 50 MB file of the earlier
    layout is read without holding all of its orders as Python objects at once."""
    decoder = json.JSONDecoder(parse_float=Decimal)
    size = len(text)

    def skip(i: int) -> int:
        while i < size and text[i] in " \t\r\n":
            i += 1
        return i

    def bad(i: int, why: str) -> StorageCorrupt:
        return StorageCorrupt(f"{path} is not valid JSON ({why} at char {i}); it was left as it is. "
                              "Restore it from a backup (scripts/restore-orders) or fix it by hand, then restart.")

    i = skip(0)
    if i >= size or text[i] != "{":
        raise StorageCorrupt(f"{path} should be an object of user id -> list of orders; it was left as it is.")
    i = skip(i + 1)
    if i < size and text[i] == "}":
        i += 1
    else:
        while True:
            try:
                key, i = decoder.raw_decode(text, i)
                i = skip(i)
                if not isinstance(key, str) or i >= size or text[i] != ":":
                    raise bad(i, "expected a key and ':'")
                value, i = decoder.raw_decode(text, skip(i + 1))
            except (ValueError, RecursionError) as exc:
                raise bad(i, str(exc)) from exc
            yield key, value
            i = skip(i)
            if i < size and text[i] == ",":
                i = skip(i + 1)
                continue
            if i < size and text[i] == "}":
                i += 1
                break
            raise bad(i, "expected ',' or '}'")
    if skip(i) != size:
        raise bad(i, "extra data after the object")


def _read_line_layout(fh: Any) -> _State | None:
    """Read the layout `_State.render` writes; None if the file is laid out otherwise (the caller then
    parses it whole)."""
    if fh.readline() != b"{\n":
        return None
    state = _State()
    user = None
    n = 0
    closed = False
    for line in fh:
        if closed or not line.endswith(b"\n"):
            return None
        body = line[:-1]
        if user is None:
            if body == b"}":
                closed = True
                continue
            match = _USER_LINE.match(body)
            if not match:
                return None
            try:
                user = json.loads(match.group(1))
            except ValueError:
                return None
            state.add_user(user)
            n = 0
        elif body in (b"]", b"],"):
            user = None
        else:
            raw = body[:-1] if body.endswith(b",") else body
            try:
                order = decode_order(raw)
            except ValueError:
                return None
            if not isinstance(order, dict):
                return None
            _load_order(state, user, order, raw, n)
            n += 1
    return state if closed else None


def _load_order(state: _State, user: str, order: dict[str, Any], raw: bytes, n: int) -> None:
    key = str(order["id"]) if order.get("id") else f"{user}#{n}"
    if key in state.raw:
        log.warning("orders.json: a second order with id %s (user %s) is kept but cannot be looked up", key, user)
        key = f"{key}#{user}#{n}"
    state.put(user, key, order, raw)


def _read_text(path: Path) -> str | None:
    try:
        return path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        return None
    except UnicodeDecodeError as exc:
        raise StorageCorrupt(f"{path} is not UTF-8 text ({exc}); it was left as it is.") from exc
    except OSError as exc:
        raise StorageError(f"Cannot read {path}: {exc}") from exc


def _parse_json(path: Path, text: str) -> Any:
    try:
        return json.loads(text, parse_float=Decimal)
    except (ValueError, RecursionError) as exc:
        raise StorageCorrupt(
            f"{path} is not valid JSON ({exc}); it was left as it is. "
            "Restore it from a backup (scripts/restore-orders) or fix it by hand, then restart."
        ) from exc


@contextmanager
def _locked(lock: FileLock, timeout: float) -> Iterator[None]:
    try:
        lock.acquire(timeout=timeout)
    except Timeout:
        raise StorageLockTimeout(
            f"Timed out after {timeout:g}s waiting for {lock.lock_file}; another process holds it.") from None
    except OSError as exc:
        raise StorageError(f"Cannot take the lock {lock.lock_file}: {exc}. Is the data folder writable?") from exc
    try:
        yield
    finally:
        lock.release()


def _sha256(path: Path) -> str | None:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    except OSError:
        return None
    return digest.hexdigest()
