"""The Telegram bot: its pyTelegramBotAPI instance, its handlers, and the webhook that feeds them (SPEC §4, §7).

`POST /api/telegram/webhook` checks Telegram's secret header, rejects malformed bodies with 400, and
handles each `update_id` once (a file-backed record shared by all workers). Handlers run inline
(`threaded=False`), so an error surfaces as a 500 and Telegram redelivers; payment handling is idempotent
on its own (`purchase.record_payment`), so a redelivery never buys twice.
"""

from __future__ import annotations

import hmac
import logging
from datetime import UTC, datetime

from flask import Blueprint, Flask, jsonify, request
from telebot import TeleBot, types

import extensions
import metrics
import orders
import usage
from botapi import BotApi, Button, TelegramError, app_button
from config import Settings
from errors import api_error
from messages import app_text, language_of, plan_title, t, usage_line
from purchase import answer_pre_checkout, record_outside_refund, record_payment
from storage import JsonStore

log = logging.getLogger(__name__)

bp = Blueprint("telegram", __name__, url_prefix="/api/telegram")

SEEN_UPDATES_KEPT = 5000  # Telegram keeps undelivered updates for 24 h; this covers far more than a day


def build_bot(settings: Settings) -> BotApi:
    """The Bot API door (TELEGRAM_API_URL: the real Bot API, a local Bot API server, or the sandbox), with this
    module's handlers registered on its dispatcher."""
    api = BotApi(settings.telegram_bot_token, settings.telegram_api_url)
    _register_handlers(api.telebot, api)
    return api


def get_bot(app: Flask | None = None) -> BotApi:
    return extensions.get("bot", app)


# ---- handlers ---------------------------------------------------------------------------------------


def _lang(user: types.User | None) -> str:
    return language_of(user.language_code if user else None)


def _shop_button(lang: str, path: str = "/", label_key: str = "open_shop") -> list[Button]:
    return [app_button(t(label_key, lang), extensions.settings().public_base_url + path)]


def _register_handlers(bot: TeleBot, api: BotApi) -> None:
    @bot.message_handler(commands=["start"])
    def start(message: types.Message) -> None:
        lang = _lang(message.from_user)
        api.send_text(message.chat.id, t("start", lang), _shop_button(lang), html=True)

    @bot.message_handler(commands=["help"])
    def help_(message: types.Message) -> None:
        lang = _lang(message.from_user)
        api.send_text(message.chat.id, t("help", lang, support=extensions.shop().support_contact()),
                      _shop_button(lang))

    @bot.message_handler(commands=["paysupport"])
    def paysupport(message: types.Message) -> None:
        lang = _lang(message.from_user)
        api.send_text(message.chat.id, t("paysupport", lang, support=extensions.shop().support_contact()))

    @bot.message_handler(commands=["myesims"])
    def my_esims(message: types.Message) -> None:
        lang = _lang(message.from_user)
        mine = [o for o in extensions.store().orders_for_user(message.from_user.id)
                if o.get("status") != orders.EXPIRED][-10:]
        if not mine:
            api.send_text(message.chat.id, t("no_esims", lang), _shop_button(lang))
            return
        lines = [t("my_esims_title", lang)]
        for order in reversed(mine):
            key, _ = orders.STATUS_LABELS.get(str(order.get("status")), (str(order.get("status")), ""))
            status = app_text(key, lang)
            left = usage_line(usage.for_buyer(order, extensions.store()), lang)
            lines.append(f"• {plan_title(order, lang)} — {status}{' · ' + left if left else ''} ({order['id']})")
        api.send_text(message.chat.id, "\n".join(lines), _shop_button(lang, "/my-esims", "open_my_esims"))

    @bot.pre_checkout_query_handler(func=lambda query: True)
    def pre_checkout(query: types.PreCheckoutQuery) -> None:
        with metrics.timed(metrics.PRE_CHECKOUT_SECONDS):  # from the update to Telegram having our answer
            try:
                ok, refusal, lang = answer_pre_checkout(extensions.store(), query)
            except Exception:  # storage trouble: refuse clearly rather than let Telegram time out
                log.exception("pre-checkout %s could not be checked", query.id)
                ok, refusal, lang = False, "pcq_unavailable", _lang(query.from_user)
            try:
                api.answer_pre_checkout(query.id, ok, None if ok else t(refusal, lang))
            except TelegramError as exc:  # e.g. the query is already too old: redelivery cannot help
                log.error("pre-checkout %s: answer not accepted by Telegram: %s", query.id, exc)
        # After answering (the 10 s clock is Telegram's): note the decision on the order for operators.
        decision = {"ok": ok, "reason": refusal, "at": orders.now_iso(), "query_id": query.id}
        try:
            extensions.store().update(query.invoice_payload, lambda o: o.update(pre_checkout=decision))
        except Exception:
            log.exception("pre-checkout %s: decision not recorded", query.id)

    # pyTelegramBotAPI gives a refunded_payment message no content type: matched by the field itself.
    @bot.message_handler(content_types=[None], func=lambda m: getattr(m, "refunded_payment", None) is not None)
    def refunded_elsewhere(message: types.Message) -> None:
        record_outside_refund(extensions.store(), extensions.fulfilment(), message.refunded_payment,
                              extensions.get("outbox"))

    @bot.message_handler(content_types=["successful_payment"])
    def paid(message: types.Message) -> None:
        payment = message.successful_payment
        if not payment.telegram_payment_charge_id:  # Telegram always sends one: this update is not Telegram's
            log.error("successful_payment for %r from user %s has no telegram_payment_charge_id; ignored (nothing "
                      "can be refunded or matched without it)", payment.invoice_payload, message.from_user.id)
            return
        outcome = record_payment(extensions.store(), message, extensions.get("outbox"))
        if outcome.new:
            metrics.PAYMENTS.inc()
            extensions.fulfilment().start(outcome.order_id)


# ---- webhook ----------------------------------------------------------------------------------------


class SeenUpdates:
    """update_ids handled to the end, in `data/updates.json`, shared by every worker and kept across restarts.

    An update is marked only after it was handled, so one whose process died half-way is handled again when
    Telegram redelivers it. What makes a payment count once is its charge id (purchase.record_payment); this
    record only spares redeliveries of finished work, and the check before handling is a cached read.
    """

    def __init__(self, store: JsonStore) -> None:
        self.store = store

    def handled(self, update_id: int) -> bool:
        return str(update_id) in self.store.read().get("seen", {})

    def mark(self, update_id: int) -> None:
        with self.store.transaction() as data:
            seen = data.setdefault("seen", {})
            seen[str(update_id)] = datetime.now(UTC).isoformat(timespec="seconds")
            if len(seen) > SEEN_UPDATES_KEPT:
                for key in sorted(seen, key=seen.get)[: len(seen) - SEEN_UPDATES_KEPT]:
                    del seen[key]


@bp.post("/webhook")
def webhook():  # type: ignore[no-untyped-def]
    secret = extensions.settings().telegram_webhook_secret
    if secret and not hmac.compare_digest(
            request.headers.get("X-Telegram-Bot-Api-Secret-Token", "").encode(), secret.encode()):
        log.warning("webhook call without the right secret from %s", request.remote_addr)
        return api_error(403, "forbidden", "Wrong or missing X-Telegram-Bot-Api-Secret-Token.")
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or isinstance(body.get("update_id"), bool) \
            or not isinstance(body.get("update_id"), int):
        return api_error(400, "bad_update", "The body must be a Telegram Update object with an update_id.")
    try:
        update = types.Update.de_json(body)
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        log.warning("webhook: update %s not understood: %s", body.get("update_id"), exc)
        return api_error(400, "bad_update", f"The update could not be read: {exc}")
    seen: SeenUpdates = extensions.get("seen_updates")
    if seen.handled(update.update_id):
        log.info("webhook: update %s already handled", update.update_id)
        return jsonify(ok=True, duplicate=True)
    try:
        kind = next((k for k in ("pre_checkout_query", "message") if body.get(k)), "other")
        with orders.acting_as("telegram"), metrics.timed(metrics.WEBHOOK_SECONDS.labels(kind)):
            get_bot().telebot.process_new_updates([update])  # what it does to an order is Telegram's doing
    except Exception:
        log.exception("webhook: update %s failed; Telegram will redeliver it", update.update_id)
        return api_error(500, "update_failed", "The update could not be handled; please redeliver.")
    try:
        seen.mark(update.update_id)
    except Exception:  # handled already; a redelivery would only find its work done
        log.exception("webhook: update %s handled but not noted as handled", update.update_id)
    return jsonify(ok=True)


def init_app(app: Flask) -> None:
    """Build the bot and its webhook's update record onto the app (no network: TeleBot does not call getMe)."""
    settings = extensions.settings(app)
    seen = SeenUpdates(JsonStore(settings.data_dir + "/updates.json", lock_timeout=settings.storage_lock_timeout))
    extensions.init(app, bot=build_bot(settings), seen_updates=seen)
    app.register_blueprint(bp)

