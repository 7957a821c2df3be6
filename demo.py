"""Demo mode's vendors: makes sure this checkout's eSIM Go and Bot API sandboxes run on their local ports
(`DEMO_ESIMGO_PORT`, `DEMO_TELEGRAM_PORT`; 8101 and 8102 unless set).

Called by `create_app()` in demo mode (and by gunicorn's master through gunicorn.conf.py, so the sandboxes
outlive worker restarts). Whoever comes first starts each sandbox as a child process; the rest find it
answering. A port that answers is used only if the sandbox there says it is this checkout's
(`GET /_sandbox/identity`): anything else listening there is refused with a clear message, never taken for
eSIM Go. A file lock keeps two workers from starting the same sandbox.
"""

from __future__ import annotations

import atexit
import logging
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests
from filelock import FileLock

from config import ROOT, Settings
from sandboxes.server import CHECKOUT

log = logging.getLogger(__name__)

SANDBOXES = (("esimgo", "sandboxes.esimgo", "DEMO_ESIMGO_PORT"),
             ("telegram", "sandboxes.telegram", "DEMO_TELEGRAM_PORT"))  # name, module, port setting
_children: list[subprocess.Popen] = []


class DemoError(RuntimeError):
    """Demo mode cannot get its sandboxes; the message says what to change."""


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _ours(name: str, port: int, env: str) -> bool:
    """Whether the listener on `port` is this checkout's `name` sandbox; a DemoError if it is something else."""
    try:
        said = requests.get(f"http://127.0.0.1:{port}/_sandbox/identity", timeout=2).json()
    except (requests.RequestException, ValueError):
        said = None
    if said == {"sandbox": name, "checkout": CHECKOUT}:
        return True
    raise DemoError(f"127.0.0.1:{port} is taken by something that is not this checkout's {name} sandbox "
                    f"(it answered {str(said)[:120]!r}). Stop it, or set {env} to a free port.")


def ensure_sandboxes(settings: Settings, timeout: float = 15.0) -> list[subprocess.Popen]:
    """Start whichever sandbox is not answering yet; returns the processes this call started."""
    started = []
    lock_path = Path(settings.data_dir) / "demo-sandboxes.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(lock_path), timeout=timeout):
        for name, module, env in SANDBOXES:
            port = getattr(settings, env.lower())
            if _listening(port) and _ours(name, port, env):
                continue
            proc = subprocess.Popen([sys.executable, "-m", module, "--port", str(port)], cwd=ROOT)
            _children.append(proc)  # stopped at exit even if starting the next one fails
            deadline = time.monotonic() + timeout
            while not _listening(port):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise DemoError(f"demo sandbox {module} did not start on port {port}")
                time.sleep(0.1)
            log.info("demo: started %s on 127.0.0.1:%d (pid %d)", module, port, proc.pid)
            started.append(proc)
    return started


def stop_sandboxes(procs: list[subprocess.Popen] | None = None) -> None:
    for proc in procs if procs is not None else _children:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()


atexit.register(stop_sandboxes)
