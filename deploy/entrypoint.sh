#!/bin/sh
# The image's roles (Dockerfile; docs/DEPLOY.md). Addresses, tokens and URLs come from the environment only.
set -eu
cd /app
role="${1:-rasa}"
case "$role" in
  rasa)
    # endpoints.yml with Rasa's Redis lock store (BOT_REDIS_URL), the action servers at BOT_ACTIONS_URL and the
    # tracker cache of BOT_TRACKER_CACHE (bot/cluster.py).
    python -m bot cluster endpoints --out /app/var/endpoints.yml
    exec python -m bot.serve run --model models/assistant.tar.gz --endpoints /app/var/endpoints.yml \
      --credentials credentials.yml --interface "${BOT_RASA_HOST:-0.0.0.0}" --port "${BOT_RASA_PORT:-5005}" \
      --enable-api "--auth-token=${BOT_API_TOKEN:?BOT_API_TOKEN is required}" ;;
  actions)
    exec env BOT_ACTIONS_HOST="${BOT_ACTIONS_HOST:-0.0.0.0}" python -m bot.actions_serve --port "${BOT_ACTIONS_PORT:-5055}" ;;
  outbox)
    exec python -m bot outbox run ;;
  migrate)
    python -m bot db upgrade
    exec python -m bot db seed --if-empty ;;
  *)
    exec "$@" ;;
esac
