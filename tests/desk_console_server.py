"""The agent console alone (no Rasa model): a Sanic server with the console's blueprint at /webhooks/agent/, for the
desk pages' tests (tests/test_desk_console.py). The desk pages read and write the database only, never a tracker.

    python -m tests.desk_console_server PORT      (settings from the environment, as the Rasa server reads them)
"""
from __future__ import annotations

import sys

from sanic import Sanic, response

from bot.channels.agent_console import AgentConsoleInput


def build_app() -> Sanic:
    app = Sanic("desk_console_test")
    channel = AgentConsoleInput()

    async def on_new_message(_message) -> None:  # the desk pages never hand a message to Rasa
        return None

    app.blueprint(channel.blueprint(on_new_message), url_prefix="/webhooks/agent")

    @app.get("/health")
    async def health(_request):
        return response.json({"status": "ok"})

    return app


if __name__ == "__main__":  # pragma: no cover - started by the tests
    build_app().run(host="127.0.0.1", port=int(sys.argv[1]), workers=1, access_log=False, motd=False)
