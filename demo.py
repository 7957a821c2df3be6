"""Demo mode's vendors: makes sure the eSIM Go and Bot API sandboxes run on their fixed local ports.

Called by `create_app()` in demo mode (and by gunicorn's master through gunicorn.conf.py, so the sandboxes
outlive worker restarts). Whoever comes first starts each sandbox as a child process; the rest find the
port already answering. A file lock keeps two workers from starting the same one.
"""

from __future__ import annotations

import atexit
import logging
import socket
import subprocess
import sys
import time
from pathlib import Path

from filelock import FileLock

from config import DEMO_ESIMGO_PORT, DEMO_TELEGRAM_PORT, ROOT

log = logging.getLogger(__name__)

SANDBOXES = (("sandboxes.esimgo", DEMO_ESIMGO_PORT), ("sandboxes.telegram", DEMO_TELEGRAM_PORT))
_children: list[subprocess.Popen] = []


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def ensure_sandboxes(timeout: float = 15.0) -> list[subprocess.Popen]:
    """Start whichever sandbox is not answering yet; returns the processes this call started."""
    started = []
    lock_path = Path(ROOT) / "data" / "demo-sandboxes.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(lock_path), timeout=timeout):
        for module, port in SANDBOXES:
            if _listening(port):
                continue
            proc = subprocess.Popen([sys.executable, "-m", module, "--port", str(port)], cwd=ROOT)
            deadline = time.monotonic() + timeout
            while not _listening(port):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"demo sandbox {module} did not start on port {port}")
                time.sleep(0.1)
            log.info("demo: started %s on 127.0.0.1:%d (pid %d)", module, port, proc.pid)
            started.append(proc)
    _children.extend(started)
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
