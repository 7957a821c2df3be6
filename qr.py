"""The eSIM's install material: the QR code PNG (rendered here, never by a third party), the iPhone
one-tap link, and short-lived signed URLs so an `<img>` in the Mini App can show a buyer their own QR
without an Authorization header (SPEC §2, §6).
"""

from __future__ import annotations

import hashlib
import hmac
import io
import time
from urllib.parse import quote

import qrcode
from qrcode.constants import ERROR_CORRECT_M

from esimgo import lpa_string

IOS_SETUP_URL = "https://esimsetup.apple.com/esim_qrcode_provisioning?carddata="
QR_URL_TTL_SECONDS = 15 * 60


def lpa_for(order: dict) -> str | None:
    """LPA:1$<SM-DP+>$<Matching ID> of a delivered order, or None before it has an eSIM."""
    if not order.get("smdpAddress") or not order.get("matchingId"):
        return None
    return lpa_string(order["smdpAddress"], order["matchingId"])


def ios_install_url(lpa: str) -> str:
    """Apple's one-tap eSIM install link (iOS 17.4+); the LPA is URL-encoded because of its `$` signs."""
    return IOS_SETUP_URL + quote(lpa, safe="")


def qr_png(text: str, box_size: int = 10) -> bytes:
    """A square PNG QR code of `text` with a quiet zone, sized for a phone camera and a Telegram photo."""
    code = qrcode.QRCode(error_correction=ERROR_CORRECT_M, box_size=box_size, border=4)
    code.add_data(text)
    code.make(fit=True)
    image = code.make_image(fill_color="black", back_color="white")
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def _signature(secret: str, order_id: str, expires: int) -> str:
    key = hashlib.sha256(b"esimsdata-qr:" + secret.encode()).digest()  # a key of its own, not the token
    return hmac.new(key, f"{order_id}:{expires}".encode(), hashlib.sha256).hexdigest()


def signed_qr_path(secret: str, order_id: str, now: float | None = None) -> str:
    expires = int((now or time.time()) + QR_URL_TTL_SECONDS)
    return f"/qr/{quote(order_id, safe='')}.png?exp={expires}&sig={_signature(secret, order_id, expires)}"


def qr_signature_valid(secret: str, order_id: str, expires: str, signature: str) -> bool:
    if not (expires.isascii() and expires.isdigit()) or int(expires) < time.time():
        return False
    return hmac.compare_digest(_signature(secret, order_id, int(expires)).encode(), signature.encode())
