"""`python -m bot.actions_serve` is `rasa run actions --actions actions` made closed by default (scripts/run.sh and
tests/stack.py start the action server this way).

rasa-sdk 3.6 serves /webhook to anyone on 0.0.0.0. This launcher
- binds BOT_ACTIONS_HOST (default 127.0.0.1) on BOT_ACTIONS_PORT / --port (default 5055);
- answers /webhook and /actions only when the call carries BOT_ACTIONS_TOKEN as the query parameter `token` (what
  Rasa 3.6 sends for an action endpoint with `token:` in endpoints.yml: rasa/utils/endpoints.py
  `EndpointConfig.combine_parameters`), else 401; /health, /healthz and /readyz stay open (they say nothing
  private), /metrics has its own credential (bot/observability.py);
- refuses to start without a token (a shared secret of at least 16 characters);
- serves no CORS: nothing but the Rasa server calls it.
"""
from __future__ import annotations

import argparse
import hmac
import logging
import os
import sys

log = logging.getLogger(__name__)

OPEN_PATHS = ("/health", "/healthz", "/readyz", "/metrics")  # /metrics checks its own credential
MIN_TOKEN_CHARS = 16


def token_ok(given: str | None, expected: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def create_app(token: str, package: str = "actions"):
    from rasa_sdk.endpoint import create_app as sdk_app
    from sanic import response

    if not token or len(token) < MIN_TOKEN_CHARS:
        raise SystemExit(f"BOT_ACTIONS_TOKEN must be set (at least {MIN_TOKEN_CHARS} characters): the action server "
                         "does not start open")
    app = sdk_app(package, cors_origins=None)
    from bot.observability import add_sanic_routes, instrument_action_server

    add_sanic_routes(app)  # /healthz, /readyz (database, Redis), /metrics (bot/observability.py)
    instrument_action_server(app)

    @app.on_request
    async def require_token(request):
        if request.path in OPEN_PATHS:
            return None
        if not token_ok(request.args.get("token"), token):
            log.warning("action server: call to %s without the right token refused", request.path)
            return response.json({"error": "unauthorized"}, status=401)
        return None

    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="the action server, closed by default (bot/actions_serve.py)")
    parser.add_argument("--port", type=int, default=int(os.environ.get("BOT_ACTIONS_PORT") or 5055))
    parser.add_argument("--host", default=os.environ.get("BOT_ACTIONS_HOST") or "127.0.0.1")
    parser.add_argument("--actions", default="actions")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from rasa_sdk import utils

    utils.update_sanic_log_level()
    from bot.observability import json_logs_wanted, use_json_logs

    if json_logs_wanted():
        use_json_logs()
    app = create_app(os.environ.get("BOT_ACTIONS_TOKEN", ""), args.actions)
    log.info("action server on http://%s:%d (token required)", args.host, args.port)
    app.run(args.host, args.port, workers=1, access_log=False)


if __name__ == "__main__":
    sys.exit(main())
