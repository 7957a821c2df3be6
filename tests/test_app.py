"""Start-up and operations: config rules, demo mode, /healthz, and the real gunicorn command (SPEC §3, §4)."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import pytest
import requests

import extensions
from app import create_app
from config import ConfigError, load_settings

ROOT = Path(__file__).resolve().parent.parent


def test_healthz_reports_storage_and_catalogue(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.get_json()
    assert body["ok"] is True and body["demo"] is False
    assert body["storage"]["ok"] is True and body["catalogue"]["bundles"] > 1000


def test_healthz_is_503_when_the_orders_file_is_corrupt(client, data_dir):
    (data_dir / "orders.json").write_text("{broken")
    response = client.get("/healthz")
    assert response.status_code == 503
    assert "not valid JSON" in response.get_json()["storage"]["error"]


def test_a_corrupt_orders_file_gives_buyers_a_503_not_a_500(client, data_dir, tma):
    (data_dir / "orders.json").write_text("{broken")
    response = client.get("/api/orders", headers={"Authorization": tma(1)})
    assert response.status_code == 503
    assert response.get_json()["error"] == "storage_unavailable"
    assert (data_dir / "orders.json").read_text() == "{broken"


_READ_ONLY_SHOP = """
import json, os, sys
sys.path.insert(0, sys.argv[1])
from app import create_app
from auth import sign_init_data
config = json.loads(sys.argv[2])
client = create_app(config).test_client()
auth = {"Authorization": "tma " + sign_init_data(config["TELEGRAM_BOT_TOKEN"], {"id": 42, "first_name": "A"})}
first = client.post("/api/telegram/stars/create-invoice", json={"bundle_name": "esim_1GB_7D_TH_V2"}, headers=auth)
for folder, dirs, files in os.walk(config["DATA_DIR"]):  # the whole data folder becomes read-only
    os.chmod(folder, 0o555)
    for name in files:
        try:
            os.chmod(os.path.join(folder, name), 0o444)
        except FileNotFoundError:  # a temp file the shop's background writer just renamed
            pass
health = client.get("/healthz")
second = client.post("/api/telegram/stars/create-invoice", json={"bundle_name": "esim_1GB_7D_TH_V2"}, headers=auth)
mine = client.get("/api/orders", headers=auth)
print(json.dumps({"first": first.status_code, "health": [health.status_code, health.get_json()],
                  "second": [second.status_code, second.get_json()], "mine": len(mine.get_json()["orders"])}))
"""


def test_a_read_only_data_folder_is_a_clear_503_for_health_and_buyers(config, data_dir):
    # Root ignores file modes; without CAP_DAC_OVERRIDE it is held to them like any service user.
    result = subprocess.run(["setpriv", "--bounding-set", "-dac_override,-dac_read_search", sys.executable, "-c",
                             _READ_ONLY_SHOP, str(ROOT), json.dumps(config)], capture_output=True, text=True,
                            timeout=60)
    for folder, _, _ in os.walk(data_dir):
        os.chmod(folder, 0o755)
    assert result.returncode == 0, result.stderr[-2000:]
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["first"] == 200
    status, health = seen["health"]
    assert status == 503 and "not writable" in health["storage"]["error"]
    assert str(data_dir) not in json.dumps(health)
    status, answer = seen["second"]
    assert status == 503 and answer["error"] == "storage_unavailable" and answer["message"]
    assert seen["mine"] == 1  # the earlier order is still there; the refused one was never made


def test_unknown_api_routes_answer_json(client):
    response = client.get("/api/nope")
    assert response.status_code == 404 and response.get_json()["error"] == "not_found"


def test_production_refuses_to_start_without_its_secrets():
    with pytest.raises(ConfigError) as info:
        load_settings({"APP_ENV": "production", "TELEGRAM_BOT_TOKEN": "1:x", "ESIMGO_API_KEY": "k"})
    for name in ("TELEGRAM_WEBHOOK_SECRET", "PUBLIC_BASE_URL", "ADMIN_TOKEN", "SERVICE_TOKEN"):
        assert name in str(info.value)
    with pytest.raises(ConfigError):  # and never falls back to demo mode
        load_settings({"APP_ENV": "production"})


def test_production_refuses_short_admin_secrets():
    real = {"APP_ENV": "production", "TELEGRAM_BOT_TOKEN": "1:x", "ESIMGO_API_KEY": "k", "SERVICE_TOKEN": "s",
            "TELEGRAM_WEBHOOK_SECRET": "s", "PUBLIC_BASE_URL": "https://shop.example"}
    with pytest.raises(ConfigError, match=r"ADMIN_PASSWORD \(at least 12 characters\), ADMIN_TOKEN"):
        load_settings({**real, "ADMIN_TOKEN": "short", "ADMIN_PASSWORD": "letmein"})
    assert load_settings({**real, "ADMIN_TOKEN": "t" * 24, "ADMIN_PASSWORD": ""}).admin_token == "t" * 24


@pytest.mark.parametrize("app_env", ["development", "test", "staging", ""])
def test_a_real_bot_token_without_a_webhook_secret_never_starts(app_env):
    # Otherwise anyone could post a successful_payment to the webhook and be sent a real eSIM.
    with pytest.raises(ConfigError, match="TELEGRAM_WEBHOOK_SECRET"):
        load_settings({"APP_ENV": app_env, "TELEGRAM_BOT_TOKEN": "1:x", "ESIMGO_API_KEY": "k"})
    assert load_settings({"APP_ENV": app_env, "TELEGRAM_BOT_TOKEN": "1:x", "ESIMGO_API_KEY": "k",
                        "TELEGRAM_WEBHOOK_SECRET": "s3cret"}).demo_mode is False


def test_half_configured_vendors_are_a_clear_error():
    with pytest.raises(ConfigError, match="both"):
        load_settings({"ESIMGO_API_KEY": "real-key"})


def test_no_keys_means_demo_mode_against_the_local_sandboxes():
    settings = load_settings({})
    assert settings.demo_mode is True and settings.admin_password == "demo"  # the demo's console opens
    assert load_settings({"ESIMGO_API_KEY": "k", "TELEGRAM_BOT_TOKEN": "1:x", "TELEGRAM_WEBHOOK_SECRET": "s"}
                         ).admin_password == ""  # a real shop never has a default password
    assert settings.esimgo_base_url.startswith("http://127.0.0.1:")
    assert settings.telegram_api_url.startswith("http://127.0.0.1:")


def test_bot_token_alias_and_env_file(tmp_path, monkeypatch):
    env = tmp_path / ".env"
    env.write_text("BOT_TOKEN=42:from-file\nESIMGO_API_KEY=file-key\nTELEGRAM_WEBHOOK_SECRET=s\nCOUNTRY_MARKUPS=TH:10\n")
    settings = load_settings(env_file=env)
    assert settings.telegram_bot_token == "42:from-file" and settings.demo_mode is False
    assert settings.country_markups == {"TH": 10}
    monkeypatch.setenv("ESIMGO_API_KEY", "env-key")  # the process environment wins over the file
    assert load_settings(env_file=env).esimgo_api_key == "env-key"


def test_importing_the_app_touches_no_network():
    code = ("import socket\n"
            "def refuse(*a, **k): raise AssertionError('network at import time')\n"
            "socket.socket.connect = refuse\n"
            "import app, bot\n" if (ROOT / "bot.py").exists() else
            "import socket\n"
            "def refuse(*a, **k): raise AssertionError('network at import time')\n"
            "socket.socket.connect = refuse\n"
            "import app\n")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 60) -> requests.Response:
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert proc.poll() is None, "gunicorn exited early"
        try:
            response = requests.get(url + "/healthz", timeout=2)
            if response.status_code == 200:
                return response
        except requests.RequestException:
            pass
        time.sleep(0.3)
    raise AssertionError("gunicorn did not become healthy")


def get_when_ready(url: str, timeout: float = 20) -> dict:
    """GET until 200: each gunicorn worker loads the catalogue on its own, so the first answers may be 503."""
    deadline = time.time() + timeout
    while True:
        response = requests.get(url, timeout=5)
        if response.status_code == 200 or time.time() > deadline:
            assert response.status_code == 200, response.text
            return response.json()
        time.sleep(0.2)


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM to gunicorn's master, then its whole session is killed: no worker outlives its test."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        pass
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(5)


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("TELEGRAM_BOT_TOKEN", "BOT_TOKEN", "ESIMGO_API_KEY", "APP_ENV")}
    env.update(extra)
    return env


@pytest.mark.slow
def test_real_gunicorn_serves_the_shop_from_the_start_command(tmp_path, esimgo, telegram):
    port = free_port()
    env = clean_env(ESIMGO_API_KEY=esimgo.api_key, ESIMGO_BASE_URL=esimgo.url, TELEGRAM_BOT_TOKEN="1:x",
                    TELEGRAM_WEBHOOK_SECRET="s3cret", TELEGRAM_API_URL=telegram.url, DATA_DIR=str(tmp_path),
                    BIND=f"127.0.0.1:{port}")
    proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "app:create_app()"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        health = wait_healthy(f"http://127.0.0.1:{port}", proc).json()
        assert health["demo"] is False and health["catalogue"]["bundles"] == len(esimgo.catalogue)
        countries = get_when_ready(f"http://127.0.0.1:{port}/api/esimgo/countries")["countries"]
        assert len(countries) >= 190
        # Two workers, one catalogue fetch between them (the file lock and the disk cache).
        fetches = [r for r in esimgo.requests_log if r["path"] == "/catalogue" and r["query"].get("page") == "1"]
        assert len(fetches) == 1
    finally:
        stop(proc)


def demo_ports() -> dict[str, str]:
    """Free ports for demo mode's sandboxes, so tests never meet (or take) a running demo's 8101/8102."""
    return {"DEMO_ESIMGO_PORT": str(free_port()), "DEMO_TELEGRAM_PORT": str(free_port())}


@pytest.mark.slow
def test_demo_mode_starts_its_own_sandboxes_and_says_so(tmp_path):
    port = free_port()
    env = clean_env(DATA_DIR=str(tmp_path), BIND=f"127.0.0.1:{port}",
                    ESIMSDATA_ENV_FILE=str(tmp_path / "none.env"), **demo_ports())
    log = tmp_path / "gunicorn.log"
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "app:create_app()"], cwd=ROOT, env=env,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        health = wait_healthy(f"http://127.0.0.1:{port}", proc).json()
        assert health["demo"] is True
        body = get_when_ready(f"http://127.0.0.1:{port}/api/esimgo/countries")
        assert body.get("demo") is True and len(body["countries"]) >= 190, body
        assert "DEMO MODE" in log.read_text()
    finally:
        stop(proc)


def test_create_app_in_demo_mode_uses_its_own_sandboxes_on_the_configured_ports(tmp_path):
    ports = demo_ports()
    app = create_app({"DATA_DIR": str(tmp_path), "CATALOGUE_BACKGROUND": "0", **ports})
    settings = extensions.settings(app)
    assert settings.demo_mode is True
    assert settings.telegram_api_url == f"http://127.0.0.1:{ports['DEMO_TELEGRAM_PORT']}"
    assert requests.get(settings.telegram_api_url + f"/bot{settings.telegram_bot_token}/getMe",
                        timeout=5).json()["ok"] is True


def test_demo_mode_never_takes_a_stranger_on_its_port_for_eSIM_Go(tmp_path):
    import demo

    stranger = socket.socket()
    stranger.bind(("127.0.0.1", 0))
    stranger.listen()
    ports = {**demo_ports(), "DEMO_ESIMGO_PORT": str(stranger.getsockname()[1])}
    try:
        with pytest.raises(demo.DemoError, match="not this checkout's esimgo sandbox.*DEMO_ESIMGO_PORT"):
            create_app({"DATA_DIR": str(tmp_path), "CATALOGUE_BACKGROUND": "0", **ports})
    finally:
        stranger.close()


def test_healthz_says_what_is_wrong_in_one_short_line_with_no_paths(app, client, esimgo, data_dir):
    proxy_page = "<html>\n<head><title>502 Bad Gateway</title></head>\n<body>\n<h1>Bad Gateway</h1>\n" + "x" * 500
    esimgo.fail("/catalogue", 502, times=10, message=proxy_page + "</body>\n</html>", html=True)
    catalogue = app.extensions["esimsdata"]["catalogue"]
    assert catalogue.refresh() is False
    body = client.get("/healthz").get_data(as_text=True)
    error = client.get("/healthz").get_json()["catalogue"]["last_error"]
    assert "502 Bad Gateway" in error and "\n" not in error and "<" not in error and len(error) <= 200
    assert str(data_dir) not in body and "orders.json" not in body.replace('"orders"', "")


def test_a_successful_payment_without_a_charge_id_is_refused_and_said_so(app, client, tma, caplog):
    import updates

    answer = client.post("/api/telegram/stars/create-invoice", json={"bundle_name": "esim_1GB_7D_TH_V2"},
                         headers={"Authorization": tma(5)}).get_json()
    update = updates.successful_payment(5, answer["order_id"], answer["stars"])
    update["message"]["successful_payment"]["telegram_payment_charge_id"] = ""
    response = client.post("/api/telegram/webhook", json=update,
                           headers={"X-Telegram-Bot-Api-Secret-Token": "test-webhook-secret"})
    assert response.status_code == 200
    assert app.extensions["esimsdata"]["store"].get(answer["order_id"])["status"] == "awaiting_payment"
    assert "has no telegram_payment_charge_id" in caplog.text and "payment None" not in caplog.text


@pytest.mark.parametrize("value, expected", [("1", True), ("yes", True), ("ON", True), ("true", True), (True, True),
                                             ("0", False), ("no", False), ("False", False), ("off", False),
                                             ("", True)])  # empty: the default (on)
def test_yes_no_settings_are_read_one_way_everywhere(value, expected):
    settings = load_settings({"FULFIL_INLINE": value, "CATALOGUE_BACKGROUND": value})
    assert settings.fulfil_inline is expected and settings.catalogue_background is expected


@pytest.mark.parametrize("name, value", [("FULFIL_INLINE", "maybe"), ("FULFIL_LEASE_SECONDS", "two minutes"),
                                         ("INVOICES_PER_MINUTE", "2.5"), ("WORKER_POLL_SECONDS", "-1"),
                                         ("STORAGE_LOCK_TIMEOUT", "nan")])
def test_a_setting_that_is_not_a_number_or_yes_no_stops_start_up_by_name(name, value):
    with pytest.raises(ConfigError, match=name):
        load_settings({name: value})


def test_numbers_arrive_typed():
    settings = load_settings({"FULFIL_MAX_ATTEMPTS": "7", "FULFIL_LEASE_SECONDS": "90", "MARKUP": "1.5",
                              "ADMIN_TELEGRAM_IDS": "1, 2"})
    assert settings.fulfil_max_attempts == 7 and isinstance(settings.fulfil_max_attempts, int)
    assert settings.fulfil_lease_seconds == 90.0 and isinstance(settings.fulfil_lease_seconds, float)
    assert settings.markup == Decimal("1.5") and settings.admin_telegram_ids == (1, 2)
    with pytest.raises(dataclasses.FrozenInstanceError):  # read once, never changed while the shop runs
        settings.fulfil_max_attempts = 1  # type: ignore[misc]


def test_settings_never_show_their_secrets():
    settings = load_settings({"TELEGRAM_BOT_TOKEN": "1:secret-bot", "ESIMGO_API_KEY": "secret-key",
                              "TELEGRAM_WEBHOOK_SECRET": "secret-hook", "ADMIN_PASSWORD": "secret-pass"})
    assert "secret" not in repr(settings) and "telegram_api_url" in repr(settings)


def test_demo_mode_comes_from_the_keys_alone_never_from_a_setting(monkeypatch):
    monkeypatch.setenv("DEMO_MODE", "false")  # a string: it must not count as "on"
    real = {"TELEGRAM_BOT_TOKEN": "1:x", "ESIMGO_API_KEY": "k", "TELEGRAM_WEBHOOK_SECRET": "s"}
    assert load_settings(real).demo_mode is False
    assert load_settings({**real, "DEMO_MODE": True}).demo_mode is False


def test_an_infinite_number_is_not_a_setting():
    with pytest.raises(ConfigError, match="FULFIL_LEASE_SECONDS"):
        load_settings({"FULFIL_LEASE_SECONDS": "inf"})
