# The assistant's image (docs/DEPLOY.md): one image, three roles chosen by the command (deploy/entrypoint.sh):
# `rasa` (the Rasa server, port 5005), `actions` (the action server, 5055), `outbox` (an outbox runner), and
# `migrate` (database migrations and the demo seed, run once per release). Nothing is trained at start: the model is
# the one in the build context (models/assistant.tar.gz, from `make train`), or trained here at build time.
FROM python:3.10-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 RASA_TELEMETRY_ENABLED=false TF_CPP_MIN_LOG_LEVEL=3 \
    SQLALCHEMY_SILENCE_UBER_WARNING=1 BOT_PROFILE=cluster BOT_VAR_DIR=/app/var PATH=/app/.venv/bin:$PATH

WORKDIR /app
# Every package pinned with the sha256 of every file PyPI publishes for it (requirements.lock, docs/SECURITY.md).
COPY requirements.lock ./
RUN python -m venv /app/.venv \
 && /app/.venv/bin/pip install --no-cache-dir --require-hashes -r requirements.lock

COPY . .
# The model is part of the image: the one built by `make train` if it is in the context, else trained now.
RUN test -f models/assistant.tar.gz || python scripts/train_if_changed.py \
 && useradd --uid 10001 --no-create-home --shell /usr/sbin/nologin bot \
 && mkdir -p /app/var && chown bot /app/var

USER bot
EXPOSE 5005 5055
ENTRYPOINT ["/app/deploy/entrypoint.sh"]
CMD ["rasa"]
