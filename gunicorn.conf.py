"""gunicorn settings for `gunicorn 'app:create_app()'` (read automatically from the project root)."""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from config import load_settings, share_metrics  # noqa: E402

# Counts from every process (these workers and scripts/worker) go to one folder that /metrics adds up
# (metrics.py); set before any worker imports the Prometheus client. Files of ended processes are kept: their
# counts stay in the totals (deleting them would make counters go down); each is a small sparse file.
share_metrics(load_settings())

# Behind nginx on the same VPS: listen on loopback only; nginx terminates TLS and proxies to us.
bind = os.environ.get("BIND", "127.0.0.1:8000")
# Two cores: two worker processes, each with a few threads, so a slow eSIM Go call in one request does
# not hold up pre-checkout answers (Telegram wants them within 10 s).
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
# Long enough for a purchase request that waits on eSIM Go (client read timeout is 30 s), short enough
# that a stuck worker is replaced.
timeout = 60
graceful_timeout = 20
# Each worker builds its own app (its own catalogue thread); nothing is shared across a fork.
preload_app = False
# Logs on stdout/stderr with dates, collected by PM2 (`pm2 logs esimsdata`).
accesslog = "-"
errorlog = "-"
# The path without its query string: signed QR links (`/qr/<id>.png?exp=&sig=`) must never reach a log.
access_log_format = '%(t)s %(h)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(L)ss'
# nginx sets X-Forwarded-For/Proto; trust it only from loopback.
forwarded_allow_ips = "127.0.0.1"


def on_starting(server):
    """Demo mode: the master starts the vendor sandboxes once, so they outlive worker restarts."""
    settings = load_settings()
    if settings.demo_mode:
        import demo

        server.demo_sandboxes = demo.ensure_sandboxes(settings)


def child_exit(server, worker):
    """A worker's live gauges stop counting when it goes (its counters stay in the totals)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    """Stop the sandboxes the master started."""
    procs = getattr(server, "demo_sandboxes", None)
    if procs:
        import demo

        demo.stop_sandboxes(procs)

