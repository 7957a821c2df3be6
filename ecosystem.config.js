// PM2 processes of esimsdata on the VPS: `pm2 start ecosystem.config.js`, `pm2 logs esimsdata`.
module.exports = {
  apps: [
    {
      name: "esimsdata",
      // The web app: gunicorn reads gunicorn.conf.py from cwd (bind, workers, timeouts, log format).
      script: ".venv/bin/gunicorn",
      args: "app:create_app()",
      cwd: __dirname,
      // gunicorn is Python, not Node: PM2 must exec it as it is.
      interpreter: "none",
      // Configuration comes from .env (read by the app at start); APP_ENV=production makes missing
      // secrets stop start-up with a clear message instead of running half-configured.
      env: { APP_ENV: "production", PYTHONUNBUFFERED: "1" },
      // Dated log lines so an operator can line them up with Telegram and eSIM Go events.
      time: true,
      log_date_format: "YYYY-MM-DD HH:mm:ss Z",
      // Restart on crash, but back off if it keeps failing (e.g. a bad .env) instead of spinning.
      autorestart: true,
      exp_backoff_restart_delay: 1000,
      max_restarts: 20,
      // gunicorn's master handles SIGTERM gracefully; give it time to finish in-flight requests.
      kill_timeout: 25000,
    },
    {
      name: "esimsdata-worker",
      // Retries eSIM Go with backoff, polls processing orders, finishes what a dead web worker left,
      // retries deliveries and refunds, expires unpaid invoices. The happy path does not need it.
      script: "scripts/worker",
      cwd: __dirname,
      interpreter: ".venv/bin/python",
      env: { APP_ENV: "production", PYTHONUNBUFFERED: "1" },
      time: true,
      log_date_format: "YYYY-MM-DD HH:mm:ss Z",
      autorestart: true,
      exp_backoff_restart_delay: 1000,
      // One worker only: leases make two safe, but one is all the load needs.
      instances: 1,
      kill_timeout: 10000,
    },
  ],
};
