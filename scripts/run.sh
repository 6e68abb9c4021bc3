#!/usr/bin/env bash
# Starts the action server (127.0.0.1:5055), the Rasa server (127.0.0.1:5005) and the outbox runner (the bot's
# promises: reminders, check-backs, surveys); Ctrl-C stops them all.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv
mkdir -p var/log
# Closed by default (README "Security"): the Rasa HTTP API needs BOT_API_TOKEN, the action server BOT_ACTIONS_TOKEN,
# and web chat session ids are signed with BOT_SESSION_SECRET. Unset ones are generated once into var/ (mode 600).
secret() {  # secret VAR FILE: $VAR if set, else the content of FILE, made when missing
  local name=$1 file=$2
  if [ -z "${!name:-}" ]; then
    if [ ! -s "$file" ]; then
      (umask 077; "$VENV/bin/python" -c 'import secrets; print(secrets.token_urlsafe(32))' >"$file")
      echo "generated $name into $file"
    fi
    export "$name"="$(cat "$file")"
  fi
}
secret BOT_API_TOKEN var/api_token
secret BOT_ACTIONS_TOKEN var/actions_token
secret BOT_SESSION_SECRET var/session_secret
# The outbox runner hands promises to the Rasa server with this shared secret.
secret BOT_OUTBOX_TOKEN var/outbox_token
export BOT_ACTIONS_HOST="${BOT_ACTIONS_HOST:-127.0.0.1}"
# Addresses from the environment (README "Configuration"); loopback by default.
RASA_HOST="${BOT_RASA_HOST:-127.0.0.1}"
RASA_PORT="${BOT_RASA_PORT:-5005}"
ACTIONS_PORT="${BOT_ACTIONS_PORT:-5055}"
ENDPOINTS=endpoints.yml
# The cluster profile (README "Several instances"): Rasa's Redis lock store in an endpoints file written for it.
if "$VENV/bin/python" -m bot cluster profile | grep -q '"profile": "cluster"'; then
  ENDPOINTS=var/endpoints.cluster.yml
  BOT_ACTIONS_URL="${BOT_ACTIONS_URL:-http://127.0.0.1:$ACTIONS_PORT/webhook}" \
    "$VENV/bin/python" -m bot cluster endpoints --out "$ENDPOINTS" >/dev/null
  echo "cluster profile: endpoints in $ENDPOINTS (Redis lock store)"
fi
CORS=()
ORIGINS="${BOT_ALLOWED_ORIGINS:-}"
for origin in ${ORIGINS//,/ }; do CORS+=("$origin"); done
"$VENV/bin/python" -m bot.actions_serve --port "$ACTIONS_PORT" >var/log/actions.log 2>&1 &
ACTIONS_PID=$!
trap 'kill $ACTIONS_PID 2>/dev/null || true; wait 2>/dev/null || true' EXIT INT TERM
if [ "${1:-}" = "--shell" ]; then  # `rasa shell` uses the channels in-process: no API token needed
  "$VENV/bin/rasa" shell --model models/assistant.tar.gz --endpoints "$ENDPOINTS"
  exit 0
fi
BOT_API_TOKEN_FROM="from the environment"
[ -s var/api_token ] && [ "$BOT_API_TOKEN" = "$(cat var/api_token)" ] && BOT_API_TOKEN_FROM="it is in var/api_token"
cat <<MSG

  The assistant is starting on http://$RASA_HOST:$RASA_PORT (actions on http://$BOT_ACTIONS_HOST:$ACTIONS_PORT, logs in var/log/).
  Talk to it over REST, e.g.:
    curl -s localhost:5005/webhooks/rest/webhook -d '{"sender":"me","message":"我的冰箱不制冷了"}'
    curl -s localhost:5005/webhooks/rest/webhook -d '{"sender":"me2","message":"my fridge stopped cooling"}'
  Web chat demo page:  http://127.0.0.1:5005/webhooks/webchat/   (widget: /webhooks/webchat/widget.js)
  Agent console:       http://127.0.0.1:5005/webhooks/agent/      (accounts: .venv/bin/python -m bot agents add NAME)
  Telegram webhook:    POST /webhooks/telegram/webhook (needs TELEGRAM_TOKEN and TELEGRAM_WEBHOOK_SECRET; see README)
  Tickets:  .venv/bin/python -m bot tickets list
  Rasa HTTP API (/conversations/..., /model/...): needs ?token=\$BOT_API_TOKEN (${BOT_API_TOKEN_FROM});
  CORS allowed for: ${BOT_ALLOWED_ORIGINS:-no other origin (set BOT_ALLOWED_ORIGINS)}
  Promises (outbox runner log in var/log/outbox.log):  .venv/bin/python -m bot outbox list
  Stop with Ctrl-C.

MSG
# `python -m bot.serve` is `rasa` without JAX, which TensorFlow would import for nothing (66 MB; docs/PERFORMANCE.md).
"$VENV/bin/python" -m bot.serve run --model models/assistant.tar.gz --endpoints "$ENDPOINTS" \
  --credentials credentials.yml --interface "$RASA_HOST" --port "$RASA_PORT" --enable-api "--auth-token=$BOT_API_TOKEN" \
  ${CORS[@]+--cors "${CORS[@]}"} &
RASA_PID=$!
# The outbox runner, a process of its own (var/log/outbox.log); it retries while the Rasa server is starting.
BOT_RASA_URL="${BOT_RASA_URL:-http://127.0.0.1:$RASA_PORT}" "$VENV/bin/python" -m bot outbox run >var/log/outbox.log 2>&1 &
OUTBOX_PID=$!
trap 'kill $OUTBOX_PID $RASA_PID $ACTIONS_PID 2>/dev/null || true; wait 2>/dev/null || true' EXIT INT TERM
wait $RASA_PID
