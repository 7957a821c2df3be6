"""The orders file `data/orders.json`: one JSON object keyed by Telegram user id (a string), each value
that user's orders, oldest first (SPEC §2).

Every change goes through `OrderStore.transaction()`, which holds one `FileLock` on the sidecar
`orders.json.lock` across read-modify-write and replaces the file atomically (temp file in the same
folder, fsync, `os.replace`). Readers never lock: an atomic replace means they always see a whole file,
and an unchanged file is not parsed again. Money is read back as `Decimal` (`parse_float=Decimal`) and
written as plain JSON numbers, never strings or binary floats. A corrupt file is reported, never reset.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

log = logging.getLogger(__name__)

Orders = dict[str, list[dict[str, Any]]]


class StorageError(RuntimeError):
    """The orders file could not be read or written; the message names the file and what to do."""


class StorageLockTimeout(StorageError):
    """Another process held the orders lock for longer than the timeout."""


class StorageCorrupt(StorageError):
    """The orders file is not the JSON object we expect; it is left untouched for an operator."""


def _encode_decimal(value: Any) -> Any:
    # A cent amount has far fewer than 15 significant digits, so float(value) prints back exactly the
    # same digits (shortest round-trip repr) and `parse_float=Decimal` reads the same Decimal back.
    if isinstance(value, Decimal):
        if len(value.as_tuple().digits) > 15:
            raise TypeError(f"{value} has too many digits to store exactly")
        return float(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def dumps(data: Any) -> str:
    """Serialise orders the way the file stores them (also used for API responses of stored orders)."""
    return json.dumps(data, ensure_ascii=False, indent=1, default=_encode_decimal)


@dataclass
class _Snapshot:
    """A parsed file plus indexes, valid while the file's (inode, mtime, size) stays the same."""

    stamp: tuple[int, int, int] | None
    data: Orders
    by_id: dict[str, dict[str, Any]] = field(default_factory=dict)
    by_reference: dict[str, dict[str, Any]] = field(default_factory=dict)
    by_charge: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def build(cls, stamp: tuple[int, int, int] | None, data: Orders) -> _Snapshot:
        snap = cls(stamp, data)
        for order in iter_orders(data):
            if order.get("id"):
                snap.by_id[str(order["id"])] = order
            if order.get("orderReference"):
                snap.by_reference[str(order["orderReference"])] = order
            if order.get("telegram_payment_charge_id"):
                snap.by_charge[str(order["telegram_payment_charge_id"])] = order
        return snap


def iter_orders(data: Orders) -> Iterator[dict[str, Any]]:
    """Every order in the file, user by user, oldest first."""
    for orders in data.values():
        if isinstance(orders, list):
            yield from (o for o in orders if isinstance(o, dict))


def find_order(data: Orders, order_id: str) -> dict[str, Any] | None:
    """The order with our id inside `data` (for use within a transaction)."""
    for order in iter_orders(data):
        if order.get("id") == order_id:
            return order
    return None


class JsonStore:
    """One JSON object in one file, shared safely by threads and processes: locked transactions, atomic
    replace, cached reads. `OrderStore` builds on it; the webhook's seen-updates file uses it as is."""

    def __init__(self, path: str | os.PathLike, lock_timeout: float = 10.0) -> None:
        self.path = Path(path)
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self.lock_timeout = lock_timeout
        # Thread-local by default: threads of one process exclude each other through separate flock()s.
        self._lock = FileLock(str(self.lock_path), timeout=lock_timeout)
        self._snapshot: _Snapshot | None = None
        self._snapshot_guard = threading.Lock()

    def _validate(self, data: Any) -> None:
        if not isinstance(data, dict):
            raise StorageCorrupt(f"{self.path} should hold a JSON object; it was left as it is.")

    def _stamp(self) -> tuple[int, int, int] | None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def _parse(self) -> dict[str, Any]:
        return self._parse_text(self._read_text())

    def _read_text(self) -> str | None:
        try:
            return self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StorageError(f"Cannot read {self.path}: {exc}") from exc

    def _parse_text(self, text: str | None) -> dict[str, Any]:
        if text is None:
            return {}
        try:
            data = json.loads(text, parse_float=Decimal)
        except ValueError as exc:
            raise StorageCorrupt(
                f"{self.path} is not valid JSON ({exc}); it was left as it is. "
                "Restore it from a backup or fix it by hand, then restart."
            ) from exc
        self._validate(data)
        return data

    def _current(self) -> _Snapshot:
        # Re-parse only when the file changed; the check is one stat() per read.
        with self._snapshot_guard:
            stamp = self._stamp()
            if self._snapshot is None or self._snapshot.stamp != stamp or stamp is None:
                self._snapshot = _Snapshot.build(stamp, self._parse())
            return self._snapshot

    def read(self) -> dict[str, Any]:
        """A private copy of the whole file's contents."""
        return copy.deepcopy(self._current().data)

    def check(self) -> dict[str, Any]:
        """Health of the file for /healthz: readable, and the error if not."""
        try:
            snap = self._current()
        except StorageError as exc:
            return {"ok": False, "path": str(self.path), "error": str(exc)}
        return {"ok": True, "path": str(self.path), "users": len(snap.data), "orders": len(snap.by_id)}

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        """Hold the lock, yield the parsed file for changes, then write it atomically.

        Raises StorageLockTimeout when the lock cannot be had, StorageCorrupt when the file is unreadable
        (nothing is written then). An exception inside the block discards the changes.
        """
        try:
            self._lock.acquire()
        except Timeout:
            raise StorageLockTimeout(
                f"Timed out after {self.lock_timeout:g}s waiting for {self.lock_path}; another process holds it."
            ) from None
        try:
            before = self._read_text()
            data = self._parse_text(before)
            yield data
            text = dumps(data)
            if text != before:  # a transaction that changed nothing writes nothing
                self._write(text)
        finally:
            with self._snapshot_guard:
                # Our own write is never answered from the old parse, even within one timestamp tick.
                self._snapshot = None
            self._lock.release()

    def _write(self, text: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            # A failed or interrupted write leaves the old file in place and no stray temp file.
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise
        _fsync_dir(self.path.parent)


class OrderStore(JsonStore):
    """`orders.json`: user id -> that user's orders, with lookups by our id, eSIM Go reference, charge id."""

    def _validate(self, data: Any) -> None:
        if not isinstance(data, dict) or not all(isinstance(v, list) for v in data.values()):
            raise StorageCorrupt(
                f"{self.path} should be an object of user id -> list of orders; it was left as it is."
            )

    def all_orders(self) -> Orders:
        """A private copy of the whole file's contents."""
        return self.read()

    def orders_for_user(self, user_id: int | str) -> list[dict[str, Any]]:
        """That user's orders, oldest first (a copy)."""
        return copy.deepcopy(self._current().data.get(str(user_id), []))

    def get(self, order_id: str) -> dict[str, Any] | None:
        """One order by our id (a copy), or None."""
        return copy.deepcopy(self._current().by_id.get(str(order_id)))

    def get_by_reference(self, order_reference: str) -> dict[str, Any] | None:
        """One order by its eSIM Go `orderReference` (a copy), or None."""
        return copy.deepcopy(self._current().by_reference.get(str(order_reference)))

    def get_by_charge_id(self, charge_id: str) -> dict[str, Any] | None:
        """One order by its `telegram_payment_charge_id` (a copy), or None."""
        return copy.deepcopy(self._current().by_charge.get(str(charge_id)))

    def update(self, order_id: str, change: Callable[[dict[str, Any]], Any]) -> dict[str, Any] | None:
        """Apply `change(order)` to one order under the lock; returns a copy of the result or None."""
        with self.transaction() as data:
            order = find_order(data, order_id)
            if order is None:
                return None
            change(order)
            return copy.deepcopy(order)


def _fsync_dir(folder: Path) -> None:
    # Makes the rename itself durable across a power cut (POSIX); harmless elsewhere.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
