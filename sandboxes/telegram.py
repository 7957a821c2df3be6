"""A local stand-in for the Telegram Bot API: `/bot<token>/<method>` on 127.0.0.1, never the internet.

It owns the Bot API's side of the wire for the methods esimsdata uses (messages, photos, Stars invoices,
pre-checkout answers, refunds, webhook and menu setup): it reads parameters from every transport the real
API accepts, answers with the same `{"ok": ..., "result": ...}` envelopes, status codes and error texts,
records every call (`TelegramSandbox.calls()`, `GET /_sandbox/calls`) and can be told to fail or stall
(`fail()`, `POST /_sandbox/fail`). Facts come from ../shared/reference/telegram.md; error texts that could
not be confirmed against Telegram are marked UNVERIFIED where they are raised.

Parameters from the query string, form, multipart and JSON bodies are merged into one `dict[str, str]`
(a body value wins over a query value of the same name). JSON-body values are normalised the way the Bot
API server reads them: strings as given, `true`/`false`/numbers as their JSON text, objects and arrays as
compact JSON text, `null` dropped, so a test sees the same `params` whichever transport the app used.
"""

from __future__ import annotations

import html
import io
import json
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import Flask, Response, request
from PIL import Image, UnidentifiedImageError

from sandboxes.server import ServerThread, add_identity, serve_forever

BOT_FIRST_NAME = "esimsdata demo"
BOT_USERNAME = "esimsdata_demo_bot"

# Real tokens are "<bot id>:<35 url-safe chars>"; pyTelegramBotAPI only needs the digits before the colon.
_TOKEN = re.compile(r"(\d+):[A-Za-z0-9_-]+")
_CALLBACK_DATA_MAX_BYTES = 64
_MESSAGE_MAX = 4096
_CAPTION_MAX = 1024
_PHOTO_MAX_BYTES = 10 * 1024 * 1024
# Telegram keeps a few downscaled copies of every photo; each PhotoSize is one of these longest sides.
_PHOTO_SIDES = (90, 320, 800, 1280, 2560)
# A URL photo cannot be fetched here (no internet), so it is answered with this nominal size.
_URL_PHOTO_SIDE = 512
_XTR_MAX_AMOUNT = 100_000  # UNVERIFIED: a third party measured 100000 accepted and 150000 refused
_SUBSCRIPTION_PERIOD = 2_592_000
_SUBSCRIPTION_MAX_STARS = 10_000
_WEBHOOK_PORTS = {80, 88, 443, 8443}
_QUERY_ID_INVALID = "query is too old and response timeout expired or query ID is invalid"


@dataclass
class UploadedFile:
    """One multipart file part, as received."""

    filename: str
    content_type: str
    data: bytes


@dataclass
class Call:
    """One request to the Bot API, recorded on arrival; `status`/`response` are filled once answered."""

    method: str
    token: str
    params: dict
    files: dict
    at: float
    status: int = 0
    response: dict | None = None

    def json(self, name: str) -> Any:
        """`params[name]` decoded from JSON (prices, reply_markup, ...); None when the parameter is absent."""
        value = self.params.get(name)
        if isinstance(value, str):
            return json.loads(value)
        return value

    @property
    def chat_id(self) -> str | None:
        value = self.params.get("chat_id")
        return None if value is None else str(value)


@dataclass
class _Failure:
    error_code: int
    description: str | None
    delay: float


@dataclass
class _Described:
    """A result the real API sends with a human-readable description next to it (setWebhook, deleteWebhook)."""

    result: Any
    description: str


class _ApiError(Exception):
    """An answer of `{"ok": false, ...}`; raised by method handlers, turned into a response by the route."""

    def __init__(self, code: int, description: str, parameters: dict | None = None) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.parameters = parameters


def _bad(description: str) -> _ApiError:
    return _ApiError(400, f"Bad Request: {description}")


_DEFAULT_DESCRIPTIONS = {
    400: "Bad Request: sandbox scripted failure",
    401: "Unauthorized",
    403: "Forbidden: bot was blocked by the user",
    404: "Not Found",
    409: "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running",
    429: "Too Many Requests: retry after 1",
    500: "Internal Server Error",
    502: "Bad Gateway",
}


class TelegramSandbox:
    """The fake Bot API: a Flask `app`, its recorded calls and the state the real API would keep."""

    def __init__(self) -> None:
        self.app = Flask(__name__)
        self.url = ""
        self._server: ServerThread | None = None
        self._lock = threading.RLock()
        self._methods: dict[str, tuple[str, Callable[[Call], Any]]] = {}
        for name, handler in [
            ("getMe", self._get_me),
            ("sendMessage", self._send_message),
            ("sendPhoto", self._send_photo),
            ("createInvoiceLink", self._create_invoice_link),
            ("answerPreCheckoutQuery", self._answer_pre_checkout_query),
            ("refundStarPayment", self._refund_star_payment),
            ("setWebhook", self._set_webhook),
            ("deleteWebhook", self._delete_webhook),
            ("getWebhookInfo", self._get_webhook_info),
            ("setMyCommands", self._set_my_commands),
            ("setChatMenuButton", self._set_chat_menu_button),
        ]:
            # The real API matches method names case-insensitively; calls are recorded under this spelling.
            self._methods[name.lower()] = (name, handler)
        self._reset_state()
        self.app.add_url_rule("/bot<token>/<method>", "bot_api", self._bot_api, methods=["GET", "POST"])
        self.app.add_url_rule("/_sandbox/calls", "calls", self._http_calls, methods=["GET"])
        self.app.add_url_rule("/_sandbox/invoices", "invoices", self._http_invoices, methods=["GET"])
        self.app.add_url_rule("/_sandbox/reset", "reset", self._http_reset, methods=["POST"])
        self.app.add_url_rule("/_sandbox/fail", "fail", self._http_fail, methods=["POST"])
        add_identity(self.app, "telegram")

    # ----- lifecycle and test controls -----

    def start(self, port: int = 0) -> TelegramSandbox:
        self._server = ServerThread(self.app, port=port).start()
        self.url = self._server.origin
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def calls(self, method: str | None = None, chat_id: str | int | None = None) -> list[Call]:
        """Recorded calls, oldest first; `method` matches case-insensitively, `chat_id` as a string."""
        with self._lock:
            found = list(self._calls)
        if method is not None:
            found = [c for c in found if c.method.lower() == method.lower()]
        if chat_id is not None:
            found = [c for c in found if c.chat_id == str(chat_id)]
        return found

    def invoices(self) -> list[dict]:
        """Every invoice created so far (links and sent invoices), oldest first."""
        with self._lock:
            return [dict(invoice) for invoice in self._invoices]

    def reset(self) -> None:
        """Forget calls, scripted failures and all API state, as if the server had just started."""
        with self._lock:
            self._reset_state()

    def fail(
        self,
        method: str,
        error_code: int = 500,
        description: str | None = None,
        times: int = 1,
        delay: float = 0.0,
    ) -> None:
        """Make the next `times` calls of `method` fail with `error_code` (0: answer normally) after `delay` s."""
        with self._lock:
            queue = self._failures.setdefault(method.lower(), [])
            queue.extend(_Failure(error_code, description, delay) for _ in range(times))

    def wait_for(
        self, method: str, count: int = 1, timeout: float = 10.0, chat_id: str | int | None = None
    ) -> list[Call]:
        """Poll until `count` matching calls are recorded; raises AssertionError listing what arrived instead."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.calls(method, chat_id)
            if len(found) >= count:
                return found
            if time.monotonic() >= deadline:
                seen = ", ".join(f"{c.method}(chat_id={c.chat_id})" for c in self.calls()) or "nothing"
                where = "" if chat_id is None else f" for chat_id={chat_id}"
                raise AssertionError(
                    f"expected {count} {method} call(s){where} within {timeout}s, got {len(found)}; recorded: {seen}"
                )
            time.sleep(0.02)

    def _reset_state(self) -> None:
        self._calls: list[Call] = []
        self._failures: dict[str, list[_Failure]] = {}
        self._invoices: list[dict] = []
        self._refunded: set[str] = set()
        self._last_message_id: dict[str, int] = {}
        self._photos: dict[str, list[dict]] = {}
        self._webhook: dict = {}

    # ----- HTTP -----

    def _bot_api(self, token: str, method: str) -> Response:
        params, files, parse_error = _read_parameters()
        known = self._methods.get(method.lower())
        call = Call(known[0] if known else method, token, params, files, time.time())
        authorised = _TOKEN.fullmatch(token) is not None
        with self._lock:
            self._calls.append(call)
            failure = self._next_failure(method) if authorised else None
        if failure is not None and failure.delay > 0:
            # Outside the lock, so a stalled call does not hold up the others (the server is threaded).
            time.sleep(failure.delay)
        try:
            if not authorised:
                raise _ApiError(401, "Unauthorized")
            if failure is not None and failure.error_code:
                raise _scripted_error(failure)
            if known is None:
                raise _ApiError(404, "Not Found: method not found")
            if parse_error:
                raise _bad(parse_error)
            with self._lock:
                result = known[1](call)
        except _ApiError as error:
            body: dict = {"ok": False, "error_code": error.code, "description": error.description}
            if error.parameters:
                body["parameters"] = error.parameters
            return self._answer(call, error.code, body)
        if isinstance(result, _Described):
            return self._answer(call, 200, {"ok": True, "result": result.result, "description": result.description})
        return self._answer(call, 200, {"ok": True, "result": result})

    def _next_failure(self, method: str) -> _Failure | None:
        queue = self._failures.get(method.lower())
        return queue.pop(0) if queue else None

    def _answer(self, call: Call, status: int, body: dict) -> Response:
        call.status, call.response = status, body
        return _plain_json(body, status)

    def _http_calls(self) -> Response:
        found = self.calls(request.args.get("method") or None, request.args.get("chat_id") or None)
        return _plain_json({"calls": [_call_summary(c) for c in found]})

    def _http_invoices(self) -> Response:
        return _plain_json({"invoices": self.invoices()})

    def _http_reset(self) -> Response:
        self.reset()
        return _plain_json({"ok": True})

    def _http_fail(self) -> Response:
        spec = request.get_json(silent=True)
        if not isinstance(spec, dict) or not isinstance(spec.get("method"), str):
            return _plain_json({"ok": False, "description": "a JSON body with a method is required"}, 400)
        allowed = {"method", "error_code", "description", "times", "delay"}
        try:
            self.fail(**{key: value for key, value in spec.items() if key in allowed})
        except (TypeError, ValueError) as error:
            return _plain_json({"ok": False, "description": str(error)}, 400)
        return _plain_json({"ok": True})

    # ----- Bot API methods (called with the lock held) -----

    def _bot_user(self, call: Call) -> dict:
        return {"id": _bot_id(call.token), "is_bot": True, "first_name": BOT_FIRST_NAME, "username": BOT_USERNAME}

    def _get_me(self, call: Call) -> dict:
        return {
            **self._bot_user(call),
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    def _new_message(self, call: Call, chat_id: str, content: dict) -> dict:
        message_id = self._last_message_id.get(chat_id, 0) + 1
        self._last_message_id[chat_id] = message_id
        message = {
            "message_id": message_id,
            "from": self._bot_user(call),
            "chat": _chat(chat_id),
            "date": int(call.at),
            **content,
        }
        markup = _inline_markup(call)
        if markup is not None:
            message["reply_markup"] = markup
        return message

    def _send_message(self, call: Call) -> dict:
        chat_id = _chat_id(call)
        text, entities = _formatted_text(call, "text", "entities")
        if not text.strip():
            raise _bad("message text is empty")
        if len(text) > _MESSAGE_MAX:
            raise _bad("message is too long")
        content: dict = {"text": text}
        if entities:
            content["entities"] = entities
        return self._new_message(call, chat_id, content)

    def _send_photo(self, call: Call) -> dict:
        chat_id = _chat_id(call)
        caption, entities = _formatted_text(call, "caption", "caption_entities")
        if len(caption) > _CAPTION_MAX:
            raise _bad("message caption is too long")
        content: dict = {"photo": self._photo_sizes(call)}
        if caption:
            content["caption"] = caption
        if entities:
            content["caption_entities"] = entities
        return self._new_message(call, chat_id, content)

    def _photo_sizes(self, call: Call) -> list[dict]:
        upload = _upload(call, "photo")
        if upload is None:
            reference = call.params.get("photo", "")
            if not reference:
                raise _bad("there is no photo in the request")
            if reference in self._photos:
                return self._photos[reference]
            if not reference.startswith(("http://", "https://")):
                raise _bad("wrong file identifier/HTTP URL specified")
            width = height = _URL_PHOTO_SIDE
            size = 0
        else:
            if len(upload.data) > _PHOTO_MAX_BYTES:
                raise _bad("file is too big")  # UNVERIFIED wording
            try:
                with Image.open(io.BytesIO(upload.data)) as image:
                    image.verify()
                    width, height = image.size
            except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
                raise _bad("IMAGE_PROCESS_FAILED") from None
            size = len(upload.data)
        # sendPhoto's documented limits: width + height at most 10000, ratio at most 20.
        if width + height > 10_000 or max(width, height) > 20 * min(width, height):
            raise _bad("PHOTO_INVALID_DIMENSIONS")
        sizes = _photo_size_list(width, height, size)
        for photo_size in sizes:
            self._photos[photo_size["file_id"]] = sizes
        return sizes

    def _create_invoice_link(self, call: Call) -> str:
        invoice = _validated_invoice(call)
        slug = secrets.token_urlsafe(16)
        link = f"https://t.me/${slug}"
        self._invoices.append({"method": call.method, "link": link, "slug": slug, **invoice, "at": call.at})
        return link

    def _answer_pre_checkout_query(self, call: Call) -> bool:
        if not call.params.get("pre_checkout_query_id"):
            raise _bad(_QUERY_ID_INVALID)
        if not _truthy(call.params.get("ok")) and not call.params.get("error_message", "").strip():
            # Without this check the server would treat the answer as a success. UNVERIFIED wording.
            raise _bad("error_message must be non-empty if ok is false")
        return True

    def _refund_star_payment(self, call: Call) -> bool:
        if not _is_int(call.params.get("user_id", "")):
            raise _bad("invalid user_id specified")
        charge_id = call.params.get("telegram_payment_charge_id", "")
        if not charge_id:
            raise _bad("CHARGE_ID_EMPTY")  # UNVERIFIED: MTProto's error for an empty charge id
        if charge_id in self._refunded:
            raise _bad("CHARGE_ALREADY_REFUNDED")
        self._refunded.add(charge_id)
        return True

    def _set_webhook(self, call: Call) -> _Described:
        url = call.params.get("url", "")
        if not url:
            return self._delete_webhook(call)
        if not url.startswith("https://"):
            raise _bad("bad webhook: An HTTPS URL must be provided for webhook")
        port = re.match(r"https://[^/:]+(?::(\d+))?", url)
        if port and port.group(1) and int(port.group(1)) not in _WEBHOOK_PORTS:
            raise _bad("bad webhook: Webhook can be set up only on ports 80, 88, 443 or 8443")
        secret = call.params.get("secret_token")
        if secret is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", secret):
            raise _bad("secret token contains unallowed characters")  # UNVERIFIED wording
        self._webhook = {"url": url, "max_connections": int(call.params.get("max_connections") or 40)}
        if "allowed_updates" in call.params:
            self._webhook["allowed_updates"] = call.json("allowed_updates")
        return _Described(True, "Webhook was set")

    def _delete_webhook(self, call: Call) -> _Described:
        description = "Webhook was deleted" if self._webhook else "Webhook is already deleted"
        self._webhook = {}
        return _Described(True, description)

    def _get_webhook_info(self, call: Call) -> dict:
        return {"url": "", "has_custom_certificate": False, "pending_update_count": 0, **self._webhook}

    def _set_my_commands(self, call: Call) -> bool:
        commands = _json_param(call, "commands", "can't parse commands JSON object")
        if not isinstance(commands, list):
            raise _bad("can't parse commands JSON object")
        for command in commands:
            name = command.get("command", "") if isinstance(command, dict) else ""
            description = command.get("description", "") if isinstance(command, dict) else ""
            if not re.fullmatch(r"[a-z0-9_]{1,32}", str(name)):
                raise _bad("BOT_COMMAND_INVALID")
            if not 1 <= len(str(description)) <= 256:
                raise _bad("BOT_COMMAND_DESCRIPTION_INVALID")  # UNVERIFIED
        return True

    def _set_chat_menu_button(self, call: Call) -> bool:
        if "menu_button" in call.params:  # validated; the call itself is recorded like every other
            _json_param(call, "menu_button", "can't parse menu button JSON object")
        return True

# ----- request parsing -----


def _read_parameters() -> tuple[dict[str, str], dict[str, UploadedFile], str | None]:
    """Merge query string, form/multipart and JSON body; the third item is a body parse error, if any."""
    params: dict[str, str] = {key: value for key, value in request.args.items()}
    files: dict[str, UploadedFile] = {}
    error = None
    if request.mimetype == "application/json":
        raw = request.get_data()
        try:
            body = json.loads(raw) if raw.strip() else {}
        except ValueError:
            body = None
        if isinstance(body, dict):
            params.update({key: _as_text(value) for key, value in body.items() if value is not None})
        else:
            error = "can't parse JSON object"  # UNVERIFIED wording
    else:
        params.update(request.form.items())
        for name, storage in request.files.items():
            files[name] = UploadedFile(
                filename=storage.filename or name,
                content_type=storage.mimetype or "application/octet-stream",
                data=storage.read(),
            )
    return params, files, error


def _plain_json(body: dict, status: int = 200) -> Response:
    # json.dumps rather than jsonify: Telegram does not sort keys, and this keeps non-ASCII text readable.
    return Response(json.dumps(body, ensure_ascii=False), status=status, mimetype="application/json")


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _call_summary(call: Call) -> dict:
    return {
        "method": call.method,
        "params": call.params,
        "files": {
            name: {"filename": f.filename, "content_type": f.content_type, "size": len(f.data)}
            for name, f in call.files.items()
        },
        "at": call.at,
        "status": call.status,
    }


def _scripted_error(failure: _Failure) -> _ApiError:
    code = failure.error_code
    description = failure.description or _DEFAULT_DESCRIPTIONS.get(code, f"Error {code}")
    parameters = {"retry_after": 1} if code == 429 else None
    return _ApiError(code, description, parameters)


# ----- parameter helpers -----


def _bot_id(token: str) -> int:
    return int(token.split(":", 1)[0])


def _truthy(value: str | None) -> bool:
    # The Bot API server reads booleans as "true" (any case) or "1"; pyTelegramBotAPI sends Python's "True".
    return value is not None and (value.lower() == "true" or value == "1")


def _is_int(value: str) -> bool:
    return re.fullmatch(r"-?\d+", value.strip()) is not None


def _chat_id(call: Call) -> str:
    chat_id = call.params.get("chat_id", "").strip()
    if not chat_id:
        raise _bad("chat_id is empty")
    if not (_is_int(chat_id) and int(chat_id) != 0) and not re.fullmatch(r"@[A-Za-z]\w{3,31}", chat_id):
        raise _bad("chat not found")
    return chat_id


def _chat(chat_id: str) -> dict:
    if chat_id.startswith("@"):
        # A stable fake id per channel name, in the -100... range channels use.
        return {"id": -1_000_000_000_000 - sum(map(ord, chat_id)), "type": "channel", "title": chat_id[1:],
                "username": chat_id[1:]}
    number = int(chat_id)
    if number > 0:
        return {"id": number, "type": "private"}
    if chat_id.startswith("-100"):
        return {"id": number, "type": "supergroup", "title": "sandbox group"}
    return {"id": number, "type": "group", "title": "sandbox group"}


def _json_param(call: Call, name: str, error: str) -> Any:
    try:
        return call.json(name)
    except (ValueError, TypeError):
        raise _bad(error) from None


def _upload(call: Call, name: str) -> UploadedFile | None:
    """The file for `name`: a part called `name`, or the part an `attach://<part>` value points at."""
    value = call.params.get(name, "")
    if value.startswith("attach://"):
        return call.files.get(value[len("attach://"):])
    return call.files.get(name)


def _inline_markup(call: Call) -> dict | None:
    """The reply_markup as a Message shows it: only inline keyboards are echoed back, others are accepted."""
    if not call.params.get("reply_markup"):
        return None
    markup = _json_param(call, "reply_markup", "can't parse reply keyboard markup JSON object")
    if not isinstance(markup, dict):
        raise _bad("can't parse reply keyboard markup JSON object")
    keyboard = markup.get("inline_keyboard")
    if keyboard is None:
        return None
    if not isinstance(keyboard, list) or not all(isinstance(row, list) for row in keyboard):
        raise _bad("can't parse inline keyboard button: InlineKeyboardButton must be an Object")
    for row in keyboard:
        for button in row:
            data = button.get("callback_data") if isinstance(button, dict) else None
            if data is not None and not 1 <= len(str(data).encode()) <= _CALLBACK_DATA_MAX_BYTES:
                raise _bad("BUTTON_DATA_INVALID")
    return markup


def _formatted_text(call: Call, name: str, entities_name: str) -> tuple[str, list[dict]]:
    """Text as the recipient sees it, with its entities, applying parse_mode like the Bot API does."""
    source = call.params.get(name, "")
    if call.params.get(entities_name):
        # Explicit entities replace parse_mode, as documented for every text/caption parameter.
        entities = _json_param(call, entities_name, f"can't parse {entities_name} JSON object")
        return source, entities if isinstance(entities, list) else []
    mode = call.params.get("parse_mode", "").lower()
    if mode == "html":
        return _parse_html(source)
    if mode == "markdownv2":
        _check_markdown_v2(source)
    # Markdown modes are only checked, not rendered: the text comes back as sent, without entities.
    return source, []


# ----- Telegram HTML -----

_HTML_TAGS = {
    "b": "bold", "strong": "bold", "i": "italic", "em": "italic", "u": "underline", "ins": "underline",
    "s": "strikethrough", "strike": "strikethrough", "del": "strikethrough", "a": "text_link",
    "code": "code", "pre": "pre", "tg-spoiler": "spoiler", "span": "spoiler", "blockquote": "blockquote",
    "tg-emoji": "custom_emoji",
}
_HTML_ENTITY = re.compile(r"&(lt|gt|amp|quot|#\d{1,7}|#x[0-9a-fA-F]{1,6});")


def _entity_error(message: str) -> _ApiError:
    return _bad(f"can't parse entities: {message}")


def _utf16_len(text: str) -> int:
    # Entity offsets and lengths are counted in UTF-16 code units.
    return len(text.encode("utf-16-le")) // 2


def _parse_html(source: str) -> tuple[str, list[dict]]:
    """Strip Telegram's HTML subset into text + entities; refuse what the Bot API refuses."""
    out: list[str] = []
    position = 0  # UTF-16 offset of the end of `out`
    stack: list[tuple[str, dict[str, str], int]] = []  # tag, attributes, UTF-16 offset where it opened
    entities: list[dict] = []
    i, n = 0, len(source)
    while i < n:
        char = source[i]
        if char == "&":
            match = _HTML_ENTITY.match(source, i)
            text = html.unescape(match.group(0)) if match else "&"  # an unknown entity stays literal
            i = match.end() if match else i + 1
        elif char != "<":
            text, i = char, i + 1
        else:
            byte_offset = len(source[:i].encode())
            if source.startswith("</", i):
                end = source.find(">", i)
                if end == -1:
                    raise _entity_error(f"Unclosed end tag at byte offset {byte_offset}")
                name = source[i + 2:end].strip().lower()
                if not stack:
                    raise _entity_error(f"Unexpected end tag at byte offset {byte_offset}")
                tag, attributes, offset = stack.pop()
                if name != tag:
                    raise _entity_error(
                        f'Unmatched end tag at byte offset {byte_offset}, expected "</{tag}>", found "</{name}>"'
                    )
                _close_tag(tag, attributes, offset, position, stack, entities)
                i = end + 1
                continue
            end = i + 1
            while end < n and not source[end].isspace() and source[end] != ">":
                end += 1
            if end >= n:
                raise _entity_error(f"Unclosed start tag at byte offset {byte_offset}")
            name = source[i + 1:end].lower()
            if name not in _HTML_TAGS:
                raise _entity_error(f'Unsupported start tag "{name}" at byte offset {byte_offset}')
            attributes, i = _html_attributes(source, end, byte_offset)
            if name == "span" and attributes.get("class") != "tg-spoiler":
                raise _entity_error('Tag "span" must have class "tg-spoiler"')
            stack.append((name, attributes, position))
            continue
        out.append(text)
        position += _utf16_len(text)
    if stack:
        raise _entity_error(f'Can\'t find end tag corresponding to start tag "{stack[-1][0]}"')
    entities.sort(key=lambda entity: (entity["offset"], -entity["length"]))
    return "".join(out), entities


def _html_attributes(source: str, i: int, byte_offset: int) -> tuple[dict[str, str], int]:
    """Read `name="value"` pairs up to the closing `>`; returns them and the index after `>`."""
    attributes: dict[str, str] = {}
    n = len(source)
    while True:
        while i < n and source[i].isspace():
            i += 1
        if i >= n:
            raise _entity_error(f"Unclosed start tag at byte offset {byte_offset}")
        if source[i] == ">":
            return attributes, i + 1
        start = i
        while i < n and source[i] not in "=> \t\r\n":
            i += 1
        name = source[start:i].lower()
        value = ""
        if i < n and source[i] == "=":
            i += 1
            if i < n and source[i] in "\"'":
                quote = source[i]
                close = source.find(quote, i + 1)
                if close == -1:
                    raise _entity_error(f"Unclosed start tag at byte offset {byte_offset}")
                value, i = source[i + 1:close], close + 1
            else:
                start = i
                while i < n and source[i] not in "> \t\r\n":
                    i += 1
                value = source[start:i]
        attributes[name] = html.unescape(value)


def _close_tag(
    tag: str, attributes: dict[str, str], offset: int, end: int, stack: list, entities: list[dict]
) -> None:
    if tag == "code" and stack and stack[-1][0] == "pre" and attributes.get("class", "").startswith("language-"):
        # <pre><code class="language-x"> is one pre entity with a language, not two entities.
        stack[-1][1]["language"] = attributes["class"][len("language-"):]
        return
    length = end - offset
    if length <= 0:
        return
    entity: dict = {"type": _HTML_TAGS[tag], "offset": offset, "length": length}
    if tag == "a":
        url = attributes.get("href", "")
        if not url:
            return
        user = re.fullmatch(r"tg://user\?id=(\d+)", url)
        if user:
            entity = {"type": "text_mention", "offset": offset, "length": length, "user": {
                "id": int(user.group(1)), "is_bot": False, "first_name": ""}}
        else:
            entity["url"] = url
    elif tag == "pre" and attributes.get("language"):
        entity["language"] = attributes["language"]
    elif tag == "blockquote" and "expandable" in attributes:
        entity["type"] = "expandable_blockquote"
    elif tag == "tg-emoji":
        entity["custom_emoji_id"] = attributes.get("emoji-id", "")
    entities.append(entity)


# ----- MarkdownV2 -----

# Characters that are never markup in MarkdownV2, so they must always be escaped outside code and URLs.
_MARKDOWN_V2_RESERVED = set(".!#+-={}()")


def _check_markdown_v2(source: str) -> None:
    """Refuse unescaped reserved characters, the classic MarkdownV2 failure; markup itself is not rendered."""
    i, n = 0, len(source)
    while i < n:
        char = source[i]
        if char == "\\":
            i += 2
            continue
        if char == "`":
            fence = "```" if source.startswith("```", i) else "`"
            end = _find_unescaped(source, fence, i + len(fence))
            if end == -1:
                kind = "Pre" if fence == "```" else "Code"
                raise _entity_error(f"Can't find end of {kind} entity at byte offset {len(source[:i].encode())}")
            i = end + len(fence)
            continue
        if char == "]" and source.startswith("](", i):
            end = _find_unescaped(source, ")", i + 2)
            i = n if end == -1 else end + 1
            continue
        if char in _MARKDOWN_V2_RESERVED and not (char == "!" and source.startswith("![", i)):
            raise _entity_error(f"Character '{char}' is reserved and must be escaped with the preceding '\\'")
        i += 1


def _find_unescaped(source: str, needle: str, start: int) -> int:
    i = start
    while i < len(source):
        if source[i] == "\\":
            i += 2
            continue
        if source.startswith(needle, i):
            return i
        i += 1
    return -1


# ----- photos and invoices -----


def _photo_size_list(width: int, height: int, size: int) -> list[dict]:
    """PhotoSize entries smallest first, like Telegram's thumbnails up to the (capped) original."""
    longest = max(width, height)
    sides = [side for side in _PHOTO_SIDES if side < longest] + [min(longest, _PHOTO_SIDES[-1])]
    sizes = []
    for side in sides:
        scale = side / longest
        scaled_w, scaled_h = max(1, round(width * scale)), max(1, round(height * scale))
        # The largest copy reports the uploaded byte count; smaller copies an estimate by area.
        scaled_size = size if side == sides[-1] else max(1, round(size * scale * scale))
        sizes.append({
            "file_id": "AgACAgIAAxkDAAI" + secrets.token_urlsafe(40),
            "file_unique_id": "AQAD" + secrets.token_urlsafe(9),
            "width": scaled_w,
            "height": scaled_h,
            "file_size": scaled_size,
        })
    return sizes


def _validated_invoice(call: Call) -> dict:
    """Check invoice parameters like the Bot API does; returns the fields the sandbox remembers."""
    params = call.params
    title = params.get("title", "")
    description = params.get("description", "")
    payload = params.get("payload", "")  # sendInvoice too: only pyTelegramBotAPI calls it invoice_payload
    currency = params.get("currency", "")
    provider_token = params.get("provider_token")
    # UNVERIFIED wording for title/description: the API documents 1-32 and 1-255 characters.
    if not 1 <= len(title) <= 32:
        raise _bad("INVOICE_TITLE_INVALID")
    if not 1 <= len(description) <= 255:
        raise _bad("INVOICE_DESCRIPTION_INVALID")
    if not 1 <= len(payload.encode()) <= 128:
        raise _bad("INVOICE_PAYLOAD_INVALID")
    if not re.fullmatch(r"[A-Z]{3}", currency):
        raise _bad("CURRENCY_INVALID")
    prices = _json_param(call, "prices", "can't parse prices JSON object")
    if not isinstance(prices, list) or not prices:
        raise _bad("can't parse prices JSON object")
    amounts = []
    for price in prices:
        amount = price.get("amount") if isinstance(price, dict) else None
        if isinstance(amount, str) and _is_int(amount):
            amount = int(amount)
        if not isinstance(price, dict) or not isinstance(price.get("label"), str) or type(amount) is not int:
            raise _bad("can't parse prices JSON object")
        amounts.append(amount)
    total = sum(amounts)
    if currency == "XTR":
        # Stars: one price, no provider token, no tips (sendInvoice/createInvoiceLink docs; the error is
        # what the real API answers, reported in go-telegram-bot-api/telegram-bot-api#751).
        if len(prices) != 1 or provider_token or params.get("max_tip_amount") or params.get("suggested_tip_amounts"):
            raise _bad("STARS_INVOICE_INVALID")
        if not 1 <= total <= _XTR_MAX_AMOUNT:
            raise _bad("CURRENCY_TOTAL_AMOUNT_INVALID")
    else:
        if not provider_token:
            raise _bad("PAYMENT_PROVIDER_INVALID")
        if total < 1 or any(amount == 0 for amount in amounts):
            raise _bad("CURRENCY_TOTAL_AMOUNT_INVALID")
    period = params.get("subscription_period")
    if period is not None:
        if currency != "XTR" or not _is_int(period) or int(period) != _SUBSCRIPTION_PERIOD:
            raise _bad("SUBSCRIPTION_PERIOD_INVALID")
        if total > _SUBSCRIPTION_MAX_STARS:
            raise _bad("SUBSCRIPTION_AMOUNT_INVALID")
    return {
        "title": title,
        "description": description,
        "payload": payload,
        "currency": currency,
        "amount": total,
        "prices": prices,
        "provider_token": provider_token,
        "subscription_period": int(period) if period is not None else None,
    }


def main(argv: list[str] | None = None) -> int:
    """`python -m sandboxes.telegram --port 8102`."""
    return serve_forever(TelegramSandbox().app, "telegram", 8102, argv)


if __name__ == "__main__":
    raise SystemExit(main())
