"""Screenshots of every Mini App page at 390×780 for the README: `python tests/browser/screenshots.py`.

Runs the real app against the vendor sandboxes, opens it in Debian's Chromium inside the fake Telegram client
(`fake_telegram.py`, which also draws Telegram's MainButton), buys an eSIM the way a buyer does, and writes
PNGs to docs/screenshots/: English in the light theme and Russian in the dark one.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path[:0] = [str(HERE), str(ROOT)]

from fake_telegram import CHROMIUM, CHROMIUM_ARGS, QR_LOADED, VIEWPORT, Buyer, Payments, install, stub_script  # noqa: E402
from playwright.sync_api import Page, sync_playwright  # noqa: E402

import extensions  # noqa: E402
from app import create_app  # noqa: E402
from sandboxes.esimgo import EsimGoSandbox  # noqa: E402
from sandboxes.server import ServerThread  # noqa: E402
from sandboxes.telegram import TelegramSandbox  # noqa: E402

# tests/conftest.py (the shared fixtures' settings), by path: tests/browser has a conftest.py of its own.
_spec = importlib.util.spec_from_file_location("shared_conftest", ROOT / "tests" / "conftest.py")
shared = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(shared)

MAX_BYTES = 300 * 1024
RUNS = (("en", "light", 2515644), ("ru", "dark", 2515645))


def shoot(page: Page, out: Path, name: str) -> Path:
    page.wait_for_load_state("networkidle")
    page.evaluate("document.fonts.ready")
    path = out / f"{name}.png"
    page.screenshot(path=str(path), animations="disabled", caret="hide")
    if path.stat().st_size > MAX_BYTES:
        raise SystemExit(f"{path} is {path.stat().st_size} bytes, over {MAX_BYTES}")
    shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    print(f"{shown}  {path.stat().st_size // 1024} KB")
    return path


def walk(page: Page, origin: str, out: Path, lang: str, scheme: str) -> None:
    suffix = f"{scheme}-{lang}"
    page.goto(origin + "/")
    page.wait_for_selector("#destinations a.row")
    shoot(page, out, f"catalogue-{suffix}")

    page.goto(origin + "/country/TH")
    page.wait_for_selector("a.plan")
    shoot(page, out, f"plans-{suffix}")

    page.goto(origin + "/checkout/esim_1GB_7D_TH_V2")
    page.wait_for_selector("[data-stars]")
    page.wait_for_function("Telegram.WebApp.MainButton.isVisible")
    shoot(page, out, f"checkout-{suffix}")

    page.locator("#device-ok").check()
    page.evaluate("Telegram.WebApp.MainButton._tap()")  # pays through the webhook, as Telegram would
    page.wait_for_url("**/esim/**")
    page.wait_for_function(QR_LOADED, timeout=20_000)
    shoot(page, out, f"esim-{suffix}")

    page.goto(origin + "/my-esims")
    page.wait_for_selector("a.order")
    shoot(page, out, f"my-esims-{suffix}")

    page.goto(origin + "/help")
    page.click(".faq details:first-child summary")
    shoot(page, out, f"help-{suffix}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if not Path(CHROMIUM).exists():
        print(f"{CHROMIUM} is missing: apt-get install -y chromium", file=sys.stderr)
        return 1
    esimgo, telegram = EsimGoSandbox().start(), TelegramSandbox().start()
    try:
        with tempfile.TemporaryDirectory() as data:
            app = create_app(shared.make_config(Path(data), esimgo, telegram, SUPPORT_CONTACT="@esimsdata_support"))
            if not extensions.catalogue(app).refresh():
                print("could not load the catalogue from the sandbox", file=sys.stderr)
                return 1
            server = ServerThread(app).start()
            try:
                with sync_playwright() as playwright:
                    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
                    for lang, scheme, user_id in RUNS:
                        buyer = Buyer(id=user_id, language_code=lang)
                        context = browser.new_context(viewport=VIEWPORT, device_scale_factor=2, is_mobile=True,
                                                      has_touch=True, color_scheme=scheme)
                        install(context, stub_script(buyer, shared.BOT_TOKEN, scheme=scheme, draw_main_button=True),
                                Payments(server.origin, telegram, buyer, shared.WEBHOOK_SECRET))
                        walk(context.new_page(), server.origin, args.out, lang, scheme)
                        context.close()
                    browser.close()
            finally:
                server.stop()
    finally:
        esimgo.stop()
        telegram.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
