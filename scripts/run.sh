#!/usr/bin/env bash
# Starts the action server (127.0.0.1:5055), the Rasa server (127.0.0.1:5005) and the outbox runner (the bot's
# promises: reminders, check-backs, surveys); Ctrl-C stops them all.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv
mkdir -p var/log
# The outbox runner hands promises to the Rasa server with this shared secret (made up for this run if not given).
if [ -z "${BOT_OUTBOX_TOKEN:-}" ]; then
  BOT_OUTBOX_TOKEN="$("$VENV/bin/python" -c 'import secrets; print(secrets.token_urlsafe(32))')"
fi
export BOT_OUTBOX_TOKEN
"$VENV/bin/rasa" run actions --actions actions --port 5055 >var/log/actions.log 2>&1 &
ACTIONS_PID=$!
trap 'kill $ACTIONS_PID 2>/dev/null || true; wait 2>/dev/null || true' EXIT INT TERM
if [ "${1:-}" = "--shell" ]; then
  "$VENV/bin/rasa" shell --model models/assistant.tar.gz --endpoints endpoints.yml
  exit 0
fi
cat <<MSG

  The assistant is starting on http://127.0.0.1:5005 (actions on http://127.0.0.1:5055, logs in var/log/).
  Talk to it over REST, e.g.:
    curl -s localhost:5005/webhooks/rest/webhook -d '{"sender":"me","message":"我的冰箱不制冷了"}'
    curl -s localhost:5005/webhooks/rest/webhook -d '{"sender":"me2","message":"my fridge stopped cooling"}'
  Web chat demo page:  http://127.0.0.1:5005/webhooks/webchat/   (widget: /webhooks/webchat/widget.js)
  Agent console:       http://127.0.0.1:5005/webhooks/agent/      (accounts: .venv/bin/python -m bot agents add NAME)
  Telegram webhook:    POST /webhooks/telegram/webhook (needs TELEGRAM_TOKEN and TELEGRAM_WEBHOOK_SECRET; see README)
  Tickets:  .venv/bin/python -m bot tickets list
  Promises (outbox runner log in var/log/outbox.log):  .venv/bin/python -m bot outbox list
  Stop with Ctrl-C.

MSG
# `python -m bot.serve` is `rasa` without JAX, which TensorFlow would import for nothing (66 MB; docs/PERFORMANCE.md).
"$VENV/bin/python" -m bot.serve run --model models/assistant.tar.gz --endpoints endpoints.yml \
  --credentials credentials.yml --interface 127.0.0.1 --port 5005 --enable-api --cors "*" &
RASA_PID=$!
# The outbox runner, a process of its own (var/log/outbox.log); it retries while the Rasa server is starting.
BOT_RASA_URL="${BOT_RASA_URL:-http://127.0.0.1:5005}" "$VENV/bin/python" -m bot outbox run >var/log/outbox.log 2>&1 &
OUTBOX_PID=$!
trap 'kill $OUTBOX_PID $RASA_PID $ACTIONS_PID 2>/dev/null || true; wait 2>/dev/null || true' EXIT INT TERM
wait $RASA_PID
