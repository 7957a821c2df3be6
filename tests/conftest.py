"""Shared test fixtures: both vendor sandboxes on 127.0.0.1, an app wired to them, and signed buyers.

- `esimgo` / `telegram`: the sandboxes (one server each per test session, reset before every test).
- `config`: the app's settings for one test (its own data folder, the sandboxes' URLs, test secrets), plus
  any a test names with `@pytest.mark.settings(FULFIL_INLINE="0", ...)`, by variable name as in `.env`.
- `app` / `client`: `create_app(config)` with the catalogue already loaded (fetched once per session
  from the eSIM Go sandbox, then copied into each test's data folder).
- `tma(user_id, **user)`: an `Authorization` header value with initData signed like Telegram does.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# A developer's .env must not leak into tests.
os.environ["ESIMSDATA_ENV_FILE"] = str(ROOT / "tests" / "no-such.env")
for _name in ("TELEGRAM_BOT_TOKEN", "BOT_TOKEN", "ESIMGO_API_KEY", "APP_ENV", "SERVICE_TOKEN", "ADMIN_TOKEN",
              "TELEGRAM_WEBHOOK_SECRET", "PUBLIC_BASE_URL", "DATA_DIR", "COUNTRY_MARKUPS"):
    os.environ.pop(_name, None)

from app import create_app  # noqa: E402
from auth import sign_init_data  # noqa: E402
from sandboxes.esimgo import EsimGoSandbox  # noqa: E402
from sandboxes.telegram import TelegramSandbox  # noqa: E402

BOT_TOKEN = "123456789:TEST-token-for-esimsdata"
SERVICE_TOKEN = "test-service-token"
WEBHOOK_SECRET = "test-webhook-secret"
ADMIN_TOKEN = "test-admin-token"
ADMIN_ID = 700000001


@pytest.fixture(scope="session")
def _esimgo_server():
    sandbox = EsimGoSandbox().start()
    yield sandbox
    sandbox.stop()


@pytest.fixture(scope="session")
def _telegram_server():
    sandbox = TelegramSandbox().start()
    yield sandbox
    sandbox.stop()


@pytest.fixture
def esimgo(_esimgo_server):
    """The eSIM Go sandbox, reset for this test."""
    _esimgo_server.reset()
    return _esimgo_server


@pytest.fixture
def telegram(_telegram_server):
    """The Bot API sandbox, reset for this test."""
    _telegram_server.reset()
    return _telegram_server


def make_config(data_dir: Path, esimgo: EsimGoSandbox, telegram: TelegramSandbox, **overrides) -> dict:
    config = {
        "APP_ENV": "test",
        "TELEGRAM_BOT_TOKEN": BOT_TOKEN,
        "TELEGRAM_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "TELEGRAM_API_URL": telegram.url,
        "ESIMGO_API_KEY": esimgo.api_key,
        "ESIMGO_BASE_URL": esimgo.url,
        "PUBLIC_BASE_URL": "https://shop.example.test",
        "DATA_DIR": str(data_dir),
        "SERVICE_TOKEN": SERVICE_TOKEN,
        "ADMIN_TOKEN": ADMIN_TOKEN,
        "ADMIN_TELEGRAM_IDS": str(ADMIN_ID),
        "CATALOGUE_BACKGROUND": "0",
        "ADMIN_WARM_UP": "0",
    }
    config.update(overrides)
    return config


@pytest.fixture(scope="session")
def catalogue_cache(tmp_path_factory, _esimgo_server, _telegram_server) -> Path:
    """catalogue.json fetched once from the sandbox by the real Catalogue code."""
    folder = tmp_path_factory.mktemp("catalogue")
    app = create_app(make_config(folder, _esimgo_server, _telegram_server))
    from extensions import catalogue

    assert catalogue(app).refresh(), catalogue(app).last_error
    return folder / "catalogue.json"


@pytest.fixture
def data_dir(tmp_path, catalogue_cache) -> Path:
    folder = tmp_path / "data"
    folder.mkdir()
    shutil.copy(catalogue_cache, folder / "catalogue.json")
    return folder


@pytest.fixture
def config(request, data_dir, esimgo, telegram) -> dict:
    marker = request.node.get_closest_marker("settings")
    return make_config(data_dir, esimgo, telegram, **(marker.kwargs if marker else {}))


def in_demo_mode(app) -> None:
    """Turn a test app's demo mode on: demo mode follows from the keys alone (no variable sets it), and the test
    app needs its keys for the sandboxes, so the test swaps the app's frozen settings for a copy."""
    import dataclasses

    import extensions

    extensions.init(app, settings=dataclasses.replace(extensions.settings(app), demo_mode=True))


@pytest.fixture
def app(config):
    app = create_app(config)
    app.config["TESTING"] = True
    yield app
    # Nothing of this test may land in the next one: its settling threads end, then the store's thread.
    assert app.extensions["esimsdata"]["fulfilment"].wait_idle(), "a fulfilment thread outlived its test"
    app.extensions["esimsdata"]["store"].close()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def tma():
    """tma(user_id, **user_fields) -> 'tma <signed initData>' for an Authorization header."""
    def make(user_id: int, token: str = BOT_TOKEN, auth_date: int | None = None, **user) -> str:
        user = {"id": user_id, "first_name": "Test", "language_code": "en", **user}
        return "tma " + sign_init_data(token, user, auth_date=auth_date)
    return make


def wait_on_disk(path: Path, until, timeout: float = 3.0) -> dict:
    """orders.json as an operator reads it (plain json), once `until(data)` holds; the store's background
    thread writes it within 2 s of a change (SPEC §2). Fails with what the file held last."""
    import json
    import time

    deadline = time.monotonic() + timeout
    data = None
    while True:
        try:
            text = Path(path).read_text()
            data = json.loads(text)
            # ...and the shop has finished writing it: its meta file describes this very file.
            meta = json.loads(Path(path).with_name(Path(path).stem + ".meta.json").read_text())
            settled = meta.get("size") == len(text.encode())
        except (FileNotFoundError, ValueError):
            data, settled = None, False
        if data is not None and settled and until(data):
            return data
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} did not show the change within {timeout}s; it held: {str(data)[:500]}")
        time.sleep(0.05)
