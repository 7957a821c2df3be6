"""Counting attempts per caller across every process, through a small file: the admin console's logins
(`admin_auth.LoginThrottle`) and the buyers' promo code tries (`purchase`). Each attempt is a whole-second
timestamp kept for the window; the file forgets callers whose attempts are all past it and never holds more
than `kept` callers, whatever an attacker spreads his tries over."""

from __future__ import annotations

import time
from typing import Any

from storage import JsonStore


class Throttle:
    def __init__(self, store: JsonStore, allowed: int, window_seconds: int, kept: int = 5000) -> None:
        self.store = store
        self.allowed = allowed
        self.window = window_seconds
        self.kept = kept

    def attempt(self, key: str) -> int:
        """Count an attempt now, under the lock (so parallel tries are counted too); returns the seconds this
        caller must wait instead (0 = go ahead)."""
        with self.store.transaction() as data:
            now = time.time()
            for old in [k for k, v in data.items() if not self._recent(v, now)]:
                del data[old]
            recent = self._recent(data.get(key, []), now)
            if len(recent) >= self.allowed:
                return max(1, int(recent[0] + self.window - now))
            # Whole seconds: this file is read back with the store's JSON reading, which makes fractions Decimal.
            data[key] = [*recent, int(now)]
            if len(data) > self.kept:
                for old in sorted(data, key=lambda k: max(data[k]))[:len(data) - self.kept]:
                    del data[old]
            return 0

    def cleared(self, key: str) -> None:
        """Forget a caller's attempts (a right password)."""
        if key in self.store.read():
            with self.store.transaction() as data:
                data.pop(key, None)

    def _recent(self, times: Any, now: float | None = None) -> list[float]:
        since = (now or time.time()) - self.window
        return [t for t in times if isinstance(t, int) and t > since] if isinstance(times, list) else []
