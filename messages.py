"""What the bot says to buyers and admins, in English and Russian (SPEC §1, §7).

Buyer texts are short and say what happens next; nothing from eSIM Go's error messages reaches a buyer.
Texts sent with parse_mode=HTML escape every value that comes from data.
"""

from __future__ import annotations

import functools
from html import escape
from typing import Any

from babel import Locale

from assets import translations

TEXTS: dict[str, dict[str, str]] = {
    "start": {
        "en": "👋 Welcome to <b>esimsdata</b>!\n\nTravel eSIMs for 190+ countries, regions and the whole world. "
              "Pay with Telegram Stars and get your eSIM instantly: QR code, activation code and a one-tap "
              "iPhone install link.\n\nTap the button below to open the shop.",
        "ru": "👋 Добро пожаловать в <b>esimsdata</b>!\n\neSIM для путешествий: 190+ стран, регионы и весь мир. "
              "Оплата Telegram Stars — eSIM приходит сразу: QR-код, код активации и установка на iPhone "
              "в одно касание.\n\nНажмите кнопку ниже, чтобы открыть магазин.",
    },
    "open_shop": {"en": "🛒 Open the shop", "ru": "🛒 Открыть магазин"},
    "open_my_esims": {"en": "📱 My eSIMs", "ru": "📱 Мои eSIM"},
    "open_esim": {"en": "📖 eSIM page & install help", "ru": "📖 Страница eSIM и инструкция"},
    "install_iphone": {"en": "📲 Install on iPhone", "ru": "📲 Установить на iPhone"},
    "help": {
        "en": "How it works:\n1. Open the shop and pick a country, region or global plan.\n"
              "2. Pay with Telegram Stars.\n3. Your eSIM arrives here and in the app: scan the QR code or tap "
              "“Install on iPhone”.\n\n/myesims — your eSIMs\n/paysupport — help with a payment\n"
              "Support: {support}",
        "ru": "Как это работает:\n1. Откройте магазин и выберите страну, регион или глобальный тариф.\n"
              "2. Оплатите Telegram Stars.\n3. eSIM придёт сюда и в приложение: отсканируйте QR-код или нажмите "
              "«Установить на iPhone».\n\n/myesims — ваши eSIM\n/paysupport — помощь с оплатой\n"
              "Поддержка: {support}",
    },
    "paysupport": {
        "en": "Payment support: if you paid and did not get your eSIM within a few minutes, your Stars are "
              "refunded automatically. For anything else write to {support} with your order number "
              "(see /myesims). Refunds for an eSIM that was already issued are possible only if it was not "
              "installed.",
        "ru": "Помощь с оплатой: если вы оплатили, но не получили eSIM в течение нескольких минут, Stars "
              "возвращаются автоматически. По другим вопросам напишите {support}, указав номер заказа "
              "(см. /myesims). Возврат за уже выданную eSIM возможен, только если она не была установлена.",
    },
    "no_esims": {"en": "You have no eSIMs yet. Open the shop to get one.",
                 "ru": "У вас пока нет eSIM. Откройте магазин, чтобы купить."},
    "my_esims_title": {"en": "Your eSIMs:", "ru": "Ваши eSIM:"},
    # pre-checkout refusals, shown by Telegram in the payment sheet
    "pcq_unknown": {"en": "We could not find this order. Please start again from the shop.",
                    "ru": "Заказ не найден. Пожалуйста, оформите его заново в магазине."},
    "pcq_expired": {"en": "This invoice has expired. Please start again from the shop.",
                    "ru": "Срок действия счёта истёк. Пожалуйста, оформите заказ заново."},
    "pcq_not_awaiting": {"en": "This order is already paid or closed. Check /myesims.",
                         "ru": "Этот заказ уже оплачен или закрыт. Проверьте /myesims."},
    "pcq_wrong_buyer": {"en": "This invoice was made for another Telegram account.",
                        "ru": "Этот счёт выставлен другому аккаунту Telegram."},
    "pcq_amount": {"en": "The price has changed. Please start again from the shop.",
                   "ru": "Цена изменилась. Пожалуйста, оформите заказ заново."},
    "pcq_unavailable": {"en": "The shop is busy right now. Please try again in a minute; you were not charged.",
                        "ru": "Магазин сейчас занят. Попробуйте через минуту — оплата не списана."},
    "esim_ready": {
        "en": "✅ <b>Your eSIM is ready</b> — {plan}\n\n"
              "Scan this QR code in Settings → Mobile Data → Add eSIM (from another screen), or tap "
              "“Install on iPhone”.\n\n"
              "Manual setup:\nSM-DP+ address: <code>{smdp}</code>\nActivation code: <code>{matching_id}</code>\n\n"
              "Full code: <code>{lpa}</code>\n\nOrder {order_id}",
        "ru": "✅ <b>Ваша eSIM готова</b> — {plan}\n\n"
              "Отсканируйте QR-код в Настройки → Сотовая связь → Добавить eSIM (с другого экрана) или нажмите "
              "«Установить на iPhone».\n\n"
              "Ручная установка:\nАдрес SM-DP+: <code>{smdp}</code>\nКод активации: <code>{matching_id}</code>\n\n"
              "Полный код: <code>{lpa}</code>\n\nЗаказ {order_id}",
    },
    "topup_ready": {
        "en": "✅ <b>Top-up added</b> — {plan} is now on your eSIM …{iccid_tail}. Nothing to install.\n\n"
              "Order {order_id}",
        "ru": "✅ <b>Пополнение добавлено</b> — {plan} теперь на вашей eSIM …{iccid_tail}. Ничего "
              "устанавливать не нужно.\n\nЗаказ {order_id}",
    },
    "refunded": {
        "en": "😔 We could not issue your eSIM ({plan}). Your {stars} ⭐ have been refunded. "
              "Please try again later or pick another plan. Order {order_id}",
        "ru": "😔 Не удалось выпустить eSIM ({plan}). Ваши {stars} ⭐ возвращены. "
              "Попробуйте позже или выберите другой тариф. Заказ {order_id}",
    },
    "refunded_by_shop": {
        "en": "↩️ Your order {order_id} ({plan}) has been refunded: {stars} ⭐ are back on your balance.",
        "ru": "↩️ Заказ {order_id} ({plan}) возвращён: {stars} ⭐ снова на вашем балансе.",
    },
    "usage_80": {"en": "📶 You have used 80% of the data on your eSIM ({plan}). Top up in the app if you need more.",
                 "ru": "📶 Израсходовано 80% трафика eSIM ({plan}). Пополнить можно в приложении."},
    "usage_100": {"en": "📶 The data on your eSIM ({plan}) is used up. Top up in the app to stay online.",
                  "ru": "📶 Трафик eSIM ({plan}) закончился. Пополните в приложении, чтобы остаться на связи."},
    "usage_ends_soon": {"en": "⏳ Your eSIM plan ({plan}) ends tomorrow. Top up now to stay online.",
                        "ru": "⏳ Тариф eSIM ({plan}) закончится завтра. Пополните, чтобы остаться на связи."},
}

# What the checkout says of a promo code (promo.py's reasons), as plain text for the Mini App's JSON answers.
PROMO_TEXTS: dict[str, dict[str, str]] = {
    "valid": {"en": "Promo code {code}: {off} off.", "ru": "Промокод {code}: скидка {off}."},
    "unknown": {"en": "This promo code does not exist or is no longer active.",
                "ru": "Такого промокода нет или он больше не действует."},
    "not_started": {"en": "This promo code is not active yet.", "ru": "Этот промокод ещё не действует."},
    "expired": {"en": "This promo code has expired.", "ru": "Срок действия промокода истёк."},
    "used_up": {"en": "This promo code has been used up.", "ru": "Этот промокод уже израсходован."},
    "already_used": {"en": "You have already used this promo code.", "ru": "Вы уже использовали этот промокод."},
    "not_applicable": {"en": "This promo code does not apply to this plan.",
                       "ru": "Этот промокод не действует для этого тарифа."},
    "too_many": {"en": "Too many promo code attempts. Please try again in a few minutes.",
                 "ru": "Слишком много попыток ввести промокод. Попробуйте через несколько минут."},
}

# Every alert ends with a link to the order in the admin console ({link}).
ADMIN_TEXTS = {
    "refunded": "⚠️ Refunded order {order_id}: {reason}\nUser {user_id} {username}, {bundle}, {stars} ⭐\n{link}",
    "refund_failed": "🚨 Refund FAILED for order {order_id} ({stars} ⭐, user {user_id}): {error}.\n{link}",
    "stuck": "🚨 Order {order_id} was paid {minutes} min ago and is still {status} ({stars} ⭐, user {user_id}): "
             "{reason}. It needs attention:\n{link}",
    "undelivered": "⚠️ Could not deliver order {order_id} to user {user_id}: {error}. Resend it from the console:\n"
                   "{link}",
    "refunded_elsewhere": "↩️ Order {order_id} was refunded outside the shop (Telegram: {stars} ⭐, charge "
                          "{charge_id}); it is marked refunded.\n{link}",
    "event_refused": "🚨 The backend refused the {event} event of order {order_id} ({error}); it is not sent "
                     "again until you fix BACKEND_WEBHOOK_SECRET / SERVICE_TOKEN and press \"Send again\" in the "
                     "console.\n{link}",
    "event_given_up": "🚨 The {event} event of order {order_id} could not be delivered for 24 hours ({error}); "
                      "send it again from the console once the backend is up.\n{link}",
    "bought_though_refunded": "🚨 Order {order_id} was refunded in Telegram while eSIM Go sold its eSIM (ICCID "
                              "{iccid}, order {reference}). It was not sent to the buyer; revoke it at eSIM Go "
                              "if it should not be used.\n{link}",
}


def language_of(language_code: str | None) -> str:
    """Russian for Russian-speaking buyers, English for everyone else."""
    return "ru" if (language_code or "").lower().startswith("ru") else "en"


def t(key: str, lang: str | None, **values: Any) -> str:
    """The text `key` in `lang` (English if missing), with HTML-escaped `values` filled in."""
    variants = TEXTS[key]
    text = variants.get(lang or "en") or variants["en"]
    return text.format(**{k: escape(str(v)) for k, v in values.items()})


def promo_text(key: str, lang: str | None, **values: Any) -> str:
    """A promo code message in plain text (the Mini App writes it with textContent)."""
    variants = PROMO_TEXTS[key]
    return (variants.get(lang or "en") or variants["en"]).format(**values)


def admin_text(key: str, **values: Any) -> str:
    return ADMIN_TEXTS[key].format(**{k: escape(str(v)) for k, v in values.items()})


def _mini_app_texts(lang: str) -> dict[str, str]:
    """The Mini App's dictionary (static/i18n.json, as assets.py reads and caches it for the app itself)."""
    texts = translations()
    return texts.get(lang) or texts["en"]


@functools.cache
def _country_names(lang: str) -> dict[str, str]:
    """ISO code -> country name in `lang`, from CLDR (Babel), as the app shows them through Intl.DisplayNames."""
    return dict(Locale.parse(lang).territories)


def app_text(key: str, lang: str | None) -> str:
    """A word from the Mini App's dictionary (static/i18n.json), so the bot and the app say the same."""
    return _mini_app_texts(lang or "en").get(key) or _mini_app_texts("en").get(key) or key


def app_count(key: str, n: int, lang: str | None) -> str:
    """A counted phrase from the Mini App's dictionary ("days_left" -> "5 days left" / "Осталось 5 дней"), with
    the plural form CLDR gives for `n` in that language, as the app's Intl.PluralRules does."""
    form = Locale.parse(lang or "en").plural_form(n)
    texts = _mini_app_texts(lang or "en")
    return (texts.get(f"{key}_{form}") or texts.get(f"{key}_other") or key).replace("{n}", str(n))


def usage_line(usage: dict[str, Any] | None, lang: str | None) -> str:
    """"1.2 GB left · 5 days left" for the bot's list of eSIMs; "" when nothing is known yet."""
    if not usage:
        return ""
    parts = []
    if usage.get("unlimited"):
        parts.append(app_text("unlimited", lang))
    elif isinstance(usage.get("remaining_bytes"), int):
        amount = f"{usage['remaining_bytes'] / 10**9:.1f}".rstrip("0").rstrip(".")
        amount = (amount.replace(".", ",") + " ГБ") if lang == "ru" else amount + " GB"
        parts.append(app_text("left", lang).replace("{left}", amount))
    if isinstance(usage.get("days_left"), int):
        parts.append(app_count("days_left", usage["days_left"], lang))
    return " · ".join(parts)


def area_name(order: dict[str, Any], lang: str | None = None) -> str:
    """An order's destination in the buyer's language ("Таиланд", "Европа", "Весь мир")."""
    name = str(order.get("country_name") or order.get("bundle_name") or "eSIM")
    if lang != "ru":
        return name
    code = str(order.get("country_code") or "")
    kind = order.get("plan_kind") or ("local" if len(code) == 2 else None)
    if kind == "global":
        return _mini_app_texts("ru").get("global_name", name)
    if kind == "regional":
        return _mini_app_texts("ru").get(f"region_{code}", name)
    if kind == "local":
        return _country_names("ru").get(code.upper(), name)
    return name


def plan_title(order: dict[str, Any], lang: str | None = None) -> str:
    """"Thailand · 1 GB · 7 days" style summary of an order's plan (1 GB = 1000 MB, as eSIM Go counts)."""
    ru = lang == "ru"
    parts = [area_name(order, lang)]
    data_mb, days = _whole(order.get("data_mb")), _whole(order.get("duration_days"))  # imported: anything
    if order.get("unlimited"):
        parts.append("Безлимит" if ru else "Unlimited")
    elif data_mb:
        parts.append(f"{data_mb / 1000:g} {'ГБ' if ru else 'GB'}")
    if days:
        parts.append(f"{days} {'дн.' if ru else ('day' if days == 1 else 'days')}")
    return " · ".join(parts)


def _whole(value: Any) -> int | None:
    text = str(value) if isinstance(value, (int, str)) and not isinstance(value, bool) else ""
    return int(text) if text.isascii() and text.isdigit() and len(text) < 10 else None
