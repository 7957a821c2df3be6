"""After the money: buy the eSIM at eSIM Go, collect its install details, deliver it to the buyer — or
refund the Stars (SPEC §6). Every paid order ends `completed` and delivered, or `refunded`.

`Fulfilment.advance(order_id)` does the next step of one order and says when the one after is due. It
runs under a lease written into the order (`lease_until`), so the web process's background thread and
the worker (`scripts/worker`) never work on the same order at once, and a process that died mid-step is
taken over when its lease runs out. The web process starts a thread right after a payment is recorded
(the happy path needs no worker); the worker retries with backoff, polls processing orders, finishes
what a dead process left, and expires unpaid orders (recovery needs no webhook redelivery).

Buying is the one step that must never repeat blindly: before a POST /orders the order is marked
`esimgo_unsure`; only an answer that proves nothing was bought (4xx, 429, refused connection) clears it.
An unsure order first looks for its purchase among eSIM Go's recent orders and adopts it.
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import events
import metrics
import orders
import usage
from botapi import BotApi, Button, TelegramError, TelegramPermanent, TelegramRetryable, app_button, link_button
from config import Settings
from esimgo import (
    Esim,
    EsimGoBadResponse,
    EsimGoClient,
    EsimGoError,
    EsimGoRateLimited,
    EsimGoUnavailable,
    Order,
)
from events import Outbox
from messages import admin_text, plan_title, t
from purchase import expire_unpaid, is_expired, prune_expired
from qr import ios_install_url, lpa_for, qr_png
from storage import OrderStore

log = logging.getLogger(__name__)

RECONCILE_LOOKBACK = timedelta(minutes=2)  # eSIM Go's clock vs ours, and the request's own duration


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds")


def needs_work(order: dict[str, Any]) -> bool:
    """Whether fulfilment has a step left for this order (regardless of when it is due)."""
    return orders.next_step(order) not in (None, orders.PAY)


def due_in(order: dict[str, Any], now: datetime) -> float | None:
    """Seconds until this order's next step may run (0 = now), or None if it has none."""
    if not needs_work(order):
        return None
    waits = [0.0]
    for field in ("lease_until", "next_attempt_at"):
        moment = orders.parse_time(order.get(field))
        if moment:
            waits.append((moment - now).total_seconds())
    return max(waits)


def _failure_kind(reason: str) -> str:
    """A few words for the failures metric (its labels must stay few): what kind of reason this is."""
    for words, kind in (("refused the order", "esimgo_refused"), ("failed", "esimgo_failed"),
                        ("still processing", "esimgo_processing")):
        if words in reason:
            return kind
    return "other"


ACTION_WORDS = {"retry": "retried", "refund": "refunded", "resend": "resent"}


class OwnerActionError(Exception):
    """An owner's action the order's state does not allow (or a vendor refused): an HTTP status and words."""

    def __init__(self, status: int, error: str, message: str) -> None:
        super().__init__(message)
        self.status, self.error, self.message = status, error, message


class Fulfilment:
    """Takes paid orders to a delivered eSIM or a refund; one instance per process."""

    def __init__(self, store: OrderStore, esimgo: EsimGoClient, bot: BotApi, settings: Settings,
                 outbox: Outbox | None = None) -> None:
        self.store = store
        self.outbox = outbox or Outbox("", "", "")
        self.esimgo = esimgo
        self.bot = bot
        self.inline = settings.fulfil_inline
        self.inline_seconds = settings.fulfil_inline_seconds
        self.public_url = settings.public_base_url
        self.admin_ids = settings.admin_telegram_ids
        self.lease = timedelta(seconds=settings.fulfil_lease_seconds)
        self.backoff = settings.fulfil_backoff_seconds
        self.max_attempts = settings.fulfil_max_attempts
        self.reconcile_wait = settings.fulfil_reconcile_seconds
        self.poll = settings.fulfil_processing_poll_seconds
        self.max_processing = settings.fulfil_max_processing_seconds
        self.attention_after = settings.fulfil_attention_minutes * 60
        self.prune_days = settings.order_prune_days
        self._lease_noted: dict[str, Any] = {}  # order id -> the lease last reported, to say it once
        self._threads: list[threading.Thread] = []  # settling threads this instance started
        self._next_prune = 0.0
        self._next_reminders = 0.0

    # ---- driving -----------------------------------------------------------------------------

    def start(self, order_id: str) -> threading.Thread | None:
        """Settle a freshly paid order in a background thread of this process (unless switched off)."""
        return self._in_thread(order_id) if self.inline else None

    def _in_thread(self, order_id: str) -> threading.Thread:
        thread = threading.Thread(target=self.settle, args=(order_id,), name=f"fulfil-{order_id}", daemon=True)
        thread.start()
        self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        return thread

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Wait for every settling thread this instance started; True when none is left running."""
        deadline = time.monotonic() + timeout
        for thread in list(self._threads):
            thread.join(max(0.0, deadline - time.monotonic()))
        return not any(t.is_alive() for t in self._threads)

    def settle(self, order_id: str) -> None:
        """Advance one order until it is settled or the inline budget is spent (the worker does the rest)."""
        deadline = time.monotonic() + self.inline_seconds
        while True:
            wait = self.advance(order_id)
            if wait is None or time.monotonic() + wait > deadline:
                return
            time.sleep(wait)

    def run_due(self) -> int:
        """The worker's round: expire unpaid orders, advance every order whose next step is due."""
        now = _now()
        snapshot = self.store.open_orders()  # never the whole history: its cost stays flat as sales grow
        if any(o.get("status") == orders.AWAITING_PAYMENT and is_expired(o, now) for o in snapshot):
            expire_unpaid(self.store, now)
        done = 0
        for order in snapshot:
            if due_in(order, now) == 0:
                self.advance(order["id"])
                done += 1
            else:
                self._leased_elsewhere(order, now)
        for order in snapshot:
            self._flag_if_overdue(order, now)
        open_ids = {o["id"] for o in snapshot}
        self._lease_noted = {k: v for k, v in self._lease_noted.items() if k in open_ids}
        if time.monotonic() >= self._next_prune:
            self._next_prune = time.monotonic() + 3600  # hourly is plenty for invoices kept for days
            prune_expired(self.store, timedelta(days=self.prune_days), now)
        if time.monotonic() >= self._next_reminders:
            self._next_reminders = time.monotonic() + 60  # "ends tomorrow" is not a matter of seconds
            usage.remind_due(self.store, self.bot, self.public_url, now)
        return done

    def _leased_elsewhere(self, order: dict[str, Any], now: datetime) -> bool:
        """Whether another process holds this order's lease; said once per lease in the log."""
        held = orders.parse_time(order.get("lease_until"))
        if not held or held <= now:
            return False
        taken = held - self.lease
        # A step takes seconds; a lease held much longer suggests its process died, which the operator should read.
        if (now - taken).total_seconds() >= 30 and self._lease_noted.get(order["id"]) != order["lease_until"]:
            self._lease_noted[order["id"]] = order["lease_until"]
            log.info("order %s: %s, leased until %s by another process; if that process died, this one takes "
                     "over then", order["id"], order.get("status"), order["lease_until"])
        return True

    def _flag_if_overdue(self, order: dict[str, Any], now: datetime) -> None:
        """A paid order still unsettled after the attention delay is flagged once, and the admins told why."""
        paid_at = orders.parse_time(order.get("paid_at"))
        if (order.get("needs_attention") or not needs_work(order) or paid_at is None
                or (now - paid_at).total_seconds() < self.attention_after):
            return
        reason = order.get("refund_error") or order.get("delivery_error") or order.get("last_error") \
            or f"still {order.get('status')}"
        flagged_here: list[bool] = []

        def mark(current: dict[str, Any]) -> None:  # under the lock: one worker flags it, once
            if needs_work(current) and not current.get("needs_attention"):
                current["needs_attention"] = {"since": orders.now_iso(), "reason": str(reason)[:300]}
                flagged_here.append(True)
        marked = self.store.update(order["id"], mark)
        if marked and flagged_here:
            flag = marked["needs_attention"]
            minutes = (now - paid_at).total_seconds() / 60
            log.error("order %s: paid %.0f min ago and still %s (%s); flagged for the admin", order["id"], minutes,
                      marked.get("status"), flag["reason"])
            self.alert_admins("stuck", order["id"], status=marked.get("status"), minutes=f"{minutes:.0f}",
                               reason=flag["reason"], user_id=order.get("telegram_user_id"), stars=order.get("stars"))

    def advance(self, order_id: str) -> float | None:
        """Do this order's next step if it is due and nobody else holds it. Returns seconds until the
        following step is due, or None when there is nothing left to do here (settled, or leased elsewhere)."""
        order, wait = self._claim(order_id)
        if order is None:
            return wait
        try:
            self._step(order)
        except Exception as exc:  # never leave a lease behind; the next round tries again
            log.exception("order %s: step failed unexpectedly", order_id)
            # Counted, so a step that keeps failing (eSIM Go's order list unreadable) backs off to 5 min.
            order["step_attempts"] = int(order.get("step_attempts") or 0) + 1
            self._save(order_id, last_error=f"internal: {exc}", next_attempt_at=self._later(order, "step"),
                       step_attempts=order["step_attempts"])
        current = self.store.get(order_id)
        return due_in(current, _now()) if current else None

    def _claim(self, order_id: str) -> tuple[dict[str, Any] | None, float | None]:
        now = _now()
        with self.store.transaction() as tx:
            order = tx.get(order_id)
            if order is None:
                return None, None
            wait = due_in(order, now)
            if wait is None:
                return None, None
            if wait > 0:
                # Leased by another process: it finishes the step, or (if it died) we take over after.
                return None, None if self._leased_elsewhere(order, now) else wait
            order["lease_until"] = _iso(now + self.lease)
            self._lease_noted.pop(order_id, None)
            return copy.deepcopy(order), 0.0

    def _save(self, order_id: str, status: str | None = None, keep_lease: bool = False,
              event: tuple[str, str] | None = None, emit: str | None = None, **fields: Any) -> dict[str, Any]:
        """Write step results (a forward status move, an event for the history) to the order, releasing the
        lease; `emit` queues an event for the owner's backend in the same change (not for a repeated move)."""
        def change(order: dict[str, Any]) -> None:
            moved = bool(status and status != order.get("status"))
            if moved:
                orders.move(order, status)
            if event:
                orders.record(order, *event)
            if emit and (moved or not status):
                self.outbox.add(order, emit)
            order.update(fields)
            order["updated_at"] = orders.now_iso()
            if not keep_lease:
                order.pop("lease_until", None)
        result = self.store.update(order_id, change)
        if result is None:
            raise RuntimeError(f"order {order_id} vanished from the store")
        return result

    def _later(self, order: dict[str, Any], kind: str) -> str:
        attempts = int(order.get(f"{kind}_attempts") or 0)
        delay = min(self.backoff * (2 ** max(attempts - 1, 0)), 300.0)
        return _iso(_now() + timedelta(seconds=delay))

    def _step(self, order: dict[str, Any]) -> None:
        step = orders.next_step(order)
        # Telegram refunded it elsewhere: nothing is bought or refunded any more (an interrupted purchase is still
        # looked for and collected, so that an eSIM bought meanwhile is on record for the owner).
        if order.get("refunded_elsewhere") and (
                step == orders.REFUND or (step == orders.BUY and not order.get("esimgo_unsure"))):
            self._refunded_elsewhere(order)
            return
        if step == orders.BUY:
            self._buy(order)
        elif step == orders.COLLECT:
            self._collect(order)
        elif step == orders.DELIVER:
            self._deliver(order)
        elif step == orders.REFUND:
            self._refund(order)

    # ---- buying ------------------------------------------------------------------------------

    def _buy(self, order: dict[str, Any]) -> None:
        oid = order["id"]
        if order.get("esimgo_unsure"):
            attempted = orders.parse_time(order.get("esimgo_attempt_at")) or _now()
            found = self._find_purchase(order, attempted)
            if found is not None:
                log.info("order %s: adopted eSIM Go order %s from an interrupted attempt", oid, found.reference)
                self._collect(self._save(oid, keep_lease=True, **self._bought_fields(found)), found.esims)
                return
            settle_at = attempted + timedelta(seconds=self.reconcile_wait)
            if _now() < settle_at:  # give eSIM Go a moment to show an order that is on its way
                self._save(oid, next_attempt_at=_iso(settle_at))
                return
        if int(order.get("buy_attempts") or 0) >= self.max_attempts:
            self._fail(order, f"eSIM Go failed {order.get('buy_attempts')} times: {order.get('last_error')}")
            return
        order = self._save(oid, orders.PROVISIONING, keep_lease=True, esimgo_unsure=True,
                           esimgo_attempt_at=_iso(_now()), buy_attempts=int(order.get("buy_attempts") or 0) + 1)
        iccids = [order["top_up_of"]] if order.get("top_up_of") else None
        try:
            result = self.esimgo.create_order(order["bundle_name"], iccids=iccids)
        except EsimGoError as exc:
            self._buy_failed(order, exc)
            return
        if not result.reference:  # something was answered with 2xx: it may well have been bought
            self._buy_failed(order, EsimGoBadResponse(f"order answer without a reference ({result.status})"))
            return
        log.info("order %s: eSIM Go order %s %s (%s USD)", oid, result.reference, result.status, result.total)
        self._collect(self._save(oid, keep_lease=True, **self._bought_fields(result)), result.esims)

    @staticmethod
    def _bought_fields(result: Order) -> dict[str, Any]:
        return {"orderReference": result.reference, "cost": result.total, "esimgo_unsure": False,
                "esimgo_status": result.status, "bought_at": orders.now_iso()}

    def _buy_failed(self, order: dict[str, Any], exc: EsimGoError) -> None:
        oid = order["id"]
        # Only an answer that proves nothing was bought lets the next attempt skip the reconciliation.
        if isinstance(exc, EsimGoUnavailable):
            unsure = exc.maybe_sent
        elif isinstance(exc, EsimGoBadResponse):  # a 2xx we could not read: treat as maybe bought
            unsure = True
        else:  # 5xx/503 may hide an order in progress; 429 and 4xx prove nothing was bought
            unsure = exc.transient and not isinstance(exc, EsimGoRateLimited)
        error = f"{type(exc).__name__}: {exc}"
        if not exc.transient and not unsure:
            self._save(oid, esimgo_unsure=False, last_error=error, keep_lease=True)
            self._fail(order, f"eSIM Go refused the order: {exc}")
            return
        log.warning("order %s: eSIM Go attempt %s failed (%s); will retry", oid, order.get("buy_attempts"), error)
        self._save(oid, esimgo_unsure=unsure, last_error=error, next_attempt_at=self._later(order, "buy"))

    def _find_purchase(self, order: dict[str, Any], attempted: datetime) -> Order | None:
        """An eSIM Go order for this bundle, made since our attempt, that no order of ours owns yet."""
        try:
            recent = self.esimgo.recent_orders(attempted - RECONCILE_LOOKBACK)
        except EsimGoError as exc:
            raise RuntimeError(f"cannot check eSIM Go for an earlier purchase: {exc}") from exc
        matches = [o for o in recent.orders if o.reference and self.store.get_by_reference(o.reference) is None
                   and order["bundle_name"] in o.items
                   and (not order.get("top_up_of") or any(e.iccid == order["top_up_of"] for e in o.esims)
                        or not o.esims)]
        matches.sort(key=lambda o: o.created or "")
        if not matches and not recent.complete:
            # eSIM Go showed only its newest order: ours may be behind it. Buying again could buy twice.
            raise RuntimeError("eSIM Go listed only its newest order, so whether this purchase went through "
                               "cannot be told; not buying again")
        return matches[0] if matches else None

    def _collect(self, order: dict[str, Any], from_order: tuple[Esim, ...] = ()) -> None:
        """Get the eSIM's install details (assignments) and complete the order."""
        oid = order["id"]
        esims: list[Esim] = []
        try:
            esims = self.esimgo.assignments(order["orderReference"])
        except EsimGoError as exc:
            log.info("order %s: assignments not ready (%s)", oid, exc)
            order["last_error"] = f"{type(exc).__name__}: {exc}"
        esims = esims or list(from_order)
        if order.get("top_up_of"):
            esims = [e for e in esims if e.iccid == order["top_up_of"]] or esims
        if not esims:
            bought = orders.parse_time(order.get("bought_at")) or _now()
            if (_now() - bought).total_seconds() > self.max_processing:
                self._fail(order, f"eSIM Go still processing {order['orderReference']} after "
                                  f"{self.max_processing:.0f}s")
                return
            self._save(oid, last_error=order.get("last_error"),
                       next_attempt_at=_iso(_now() + timedelta(seconds=self.poll)))
            return
        esim = esims[0]
        completed = self._save(oid, orders.COMPLETED, keep_lease=True, iccid=esim.iccid,
                               matchingId=esim.matching_id, smdpAddress=esim.smdp_address,
                               completed_at=orders.now_iso(), last_error=None)
        log.info("order %s: completed, ICCID %s", oid, esim.iccid)
        self._deliver(completed)

    # ---- delivery ----------------------------------------------------------------------------

    def _order_button(self, order: dict[str, Any], lang: str) -> Button:
        return app_button(t("open_esim", lang), f"{self.public_url}/esim/{order['id']}")

    def send_esim(self, order: dict[str, Any]) -> int:
        """Send the buyer the eSIM message (QR photo, codes, install buttons; a text for a top-up); its id."""
        oid = order["id"]
        lang = order.get("language") or "en"
        chat_id = int(order["telegram_user_id"])
        if order.get("top_up_of"):
            return self.bot.send_text(
                chat_id, t("topup_ready", lang, plan=plan_title(order, lang), iccid_tail=order["iccid"][-4:],
                           order_id=oid), [self._order_button(order, lang)], html=True)
        lpa = lpa_for(order)
        caption = t("esim_ready", lang, plan=plan_title(order, lang), smdp=order["smdpAddress"],
                    matching_id=order["matchingId"], lpa=lpa, order_id=oid)
        buttons = [link_button(t("install_iphone", lang), ios_install_url(lpa)), self._order_button(order, lang)]
        return self.bot.send_photo(chat_id, qr_png(lpa), f"esim-{oid}.png", caption, buttons)

    def _deliver(self, order: dict[str, Any]) -> None:
        oid = order["id"]
        if order.get("refunded_elsewhere"):  # bought while Telegram refunded it: not sent; the owner decides
            self._refunded_elsewhere(order)
            return
        try:
            message_id = self.send_esim(order)
        except TelegramError as exc:
            attempts = int(order.get("delivery_attempts") or 0) + 1
            permanent = isinstance(exc, TelegramPermanent)
            log.warning("order %s: delivery attempt %d failed: %s", oid, attempts, exc)
            if permanent or attempts >= self.max_attempts:
                # The eSIM stays available in the Mini App; the admin can resend it.
                self._save(oid, delivery_attempts=attempts, delivery_error=str(exc),
                           event=("delivery_failed", str(exc)))
                self.alert_admins("undelivered", oid, user_id=order["telegram_user_id"], error=exc)
            else:
                order["delivery_attempts"] = attempts
                self._save(oid, delivery_attempts=attempts, last_error=f"delivery: {exc}",
                           next_attempt_at=self._later(order, "delivery"))
            return
        self._save(oid, delivered_at=orders.now_iso(), delivery_message_id=message_id,
                   delivery_attempts=int(order.get("delivery_attempts") or 0) + 1, next_attempt_at=None,
                   event=("delivered", f"Telegram message {message_id}"), emit=events.ORDER_COMPLETED)
        metrics.COMPLETIONS.inc()
        log.info("order %s: eSIM delivered to %s (message %s)", oid, order["telegram_user_id"], message_id)

    def _refunded_elsewhere(self, order: dict[str, Any]) -> None:
        refunded = self._save(order["id"], orders.REFUNDED, refunded_at=orders.now_iso(), next_attempt_at=None,
                              emit=events.PAYMENT_REFUNDED)
        metrics.REFUNDS.labels("elsewhere").inc()
        log.warning("order %s: refunded outside the shop; settled as refunded%s", order["id"],
                    f" with eSIM {refunded['iccid']} bought" if refunded.get("iccid") else "")
        if refunded.get("iccid"):
            self.alert_admins("bought_though_refunded", order["id"], iccid=refunded["iccid"],
                              reference=refunded.get("orderReference"))

    # ---- the owner's actions (admin console) --------------------------------------------------

    def retry_now(self, order_id: str, answer_within: float = 15.0) -> dict[str, Any]:
        """Take a stuck or failed order's next steps now, through the same leased path as the worker (so an order
        that has an eSIM is never bought again). They run in a thread of their own, like a fresh payment's; the
        owner gets the order as it is after `answer_within` seconds, finished or not (the page can look again)."""
        order = self._owner_claimable(order_id, "retry")

        def clear(current: dict[str, Any]) -> None:
            current.pop("next_attempt_at", None)
            current.pop("step_attempts", None)
            if current.get("status") == orders.COMPLETED and not current.get("delivered_at"):
                current.pop("delivery_error", None)  # a failed delivery is tried again from the start
                current["delivery_attempts"] = 0
            orders.record(current, "retry", str(orders.attention(order) or current.get("last_error") or ""))
        self.store.update(order_id, clear)
        self._in_thread(order_id).join(answer_within)
        return self.store.get(order_id) or order

    def refund_now(self, order_id: str, reason: str) -> dict[str, Any]:
        """The owner's refund of a paid order: its Stars go back and the buyer is told. The order after."""
        claimed = self._owner_claim(order_id, "refund", reason)

        def owners(current: dict[str, Any]) -> None:
            current["refund_reason"] = f"refunded by the owner: {reason}" if reason else "refunded by the owner"
            current["refund_by_owner"] = True  # the buyer is told it was the shop's refund, not a failure
            if current["status"] == orders.PAID:  # paid, nothing bought: the refund step takes it from "failed"
                orders.move(current, orders.FAILED)
        self._refund(self.store.update(order_id, owners) or claimed)
        return self.store.get(order_id) or claimed

    def resend(self, order_id: str) -> dict[str, Any]:
        """Send a completed order's eSIM message to its buyer again. The order after."""
        order = self._owner_claim(order_id, "resend")
        try:
            message_id = self.send_esim(order)
        except TelegramError as exc:
            self._save(order_id, event=("resend_failed", str(exc)))
            raise OwnerActionError(502, "telegram_failed", f"Telegram did not take the message: {exc}") from exc
        first = not order.get("delivered_at")  # the delivery that had failed: now the order is complete
        if first:
            metrics.COMPLETIONS.inc()
        return self._save(order_id, event=("resent", f"Telegram message {message_id}"), delivery_error=None,
                          delivered_at=order.get("delivered_at") or orders.now_iso(),
                          emit=events.ORDER_COMPLETED if first else None)

    def _owner_claim(self, order_id: str, action: str, detail: str = "") -> dict[str, Any]:
        """Hold the order for an owner's action, as a step does (no other process touches it meanwhile), after
        checking again under the lock that the action is still allowed; records the action. Released by the
        action's `_save`."""
        self._owner_claimable(order_id, action)
        with self.store.transaction() as tx:
            current = tx.get(order_id)
            if current is None or orders.leased(current) or not orders.owner_actions(current)[action]:
                raise OwnerActionError(409, "busy", "The shop is working on this order right now. Try again in "
                                                    "a minute.")
            current["lease_until"] = _iso(_now() + self.lease)
            orders.record(current, action, detail)
            return copy.deepcopy(current)

    def _owner_claimable(self, order_id: str, action: str) -> dict[str, Any]:
        order = self.store.get(order_id)
        if order is None:
            raise OwnerActionError(404, "not_found", "No such order.")
        if not orders.owner_actions(order)[action]:
            status = orders.STATUS_TEXT.get(str(order.get("status")), "?")
            raise OwnerActionError(409, "not_allowed", f"This order cannot be {ACTION_WORDS[action]} now "
                                                       f"(it is {status}).")
        if orders.leased(order):
            raise OwnerActionError(409, "busy", "The shop is working on this order right now. Try again in a minute.")
        return order

    # ---- failure and refund ------------------------------------------------------------------

    def _fail(self, order: dict[str, Any], reason: str) -> None:
        log.error("order %s: cannot be fulfilled: %s; refunding", order["id"], reason)
        metrics.FAILURES.labels(_failure_kind(reason)).inc()
        failed = self._save(order["id"], orders.FAILED, keep_lease=True, refund_reason=reason, last_error=reason,
                            failed_at=orders.now_iso(), next_attempt_at=None)
        self._refund(failed)

    def _refund(self, order: dict[str, Any]) -> None:
        oid = order["id"]
        user_id = int(order["telegram_user_id"])
        try:
            if not self.bot.refund(user_id, order["telegram_payment_charge_id"]):
                log.info("order %s: Telegram says the charge was already refunded", oid)
        except TelegramError as exc:
            self._refund_failed(order, exc, transient=isinstance(exc, TelegramRetryable))
            return
        refunded = self._save(oid, orders.REFUNDED, refunded_at=orders.now_iso(), next_attempt_at=None,
                              refund_error=None, emit=events.PAYMENT_REFUNDED)
        metrics.REFUNDS.labels("owner" if order.get("refund_by_owner") else "shop").inc()
        log.info("order %s: %s Stars refunded to %s", oid, order.get("stars"), user_id)
        lang = order.get("language") or "en"
        self._notify(user_id, t("refunded_by_shop" if order.get("refund_by_owner") else "refunded", lang,
                                plan=plan_title(refunded, lang), stars=refunded.get("stars"), order_id=oid))
        username = f"@{order['telegram_username']}" if order.get("telegram_username") else ""
        self.alert_admins("refunded", oid, reason=order.get("refund_reason") or "", user_id=user_id,
                           username=username, bundle=order.get("bundle_name") or "-", stars=order.get("stars"))

    def _refund_failed(self, order: dict[str, Any], exc: Exception, transient: bool) -> None:
        attempts = int(order.get("refund_attempts") or 0) + 1
        log.error("order %s: refund attempt %d failed: %s", order["id"], attempts, exc)
        order["refund_attempts"] = attempts
        self._save(order["id"], refund_attempts=attempts, refund_error=str(exc),
                   next_attempt_at=self._later(order, "refund"), event=("refund_failed", str(exc)))
        if attempts == 1 or not transient:
            self.alert_admins("refund_failed", order["id"], stars=order.get("stars"),
                               user_id=order.get("telegram_user_id"), error=exc)

    # ---- messages ----------------------------------------------------------------------------

    def _notify(self, chat_id: int, text: str) -> None:
        try:
            self.bot.send_text(chat_id, text, html=True)
        except TelegramError as exc:
            log.warning("could not message %s: %s", chat_id, exc)

    def alert_admins(self, key: str, order_id: str, **values: Any) -> None:
        """Tell the shop's admins (ADMIN_TELEGRAM_IDS), with a link to the order in the admin console."""
        text = admin_text(key, order_id=order_id, link=f"{self.public_url}/admin/orders.html#order={order_id}",
                          **values)
        for admin_id in self.admin_ids:
            self._notify(admin_id, text)
