"""The action server's actions (`rasa run actions --actions actions`). The action server imports this package before
it serves anything, so this is where its log lines get the personal-data mask (bot/pii.py), as the Rasa server's do
in bot/serve.py: the one thing done at import here, and it only wraps the logging record factory."""
from bot.pii import install_log_masking

install_log_masking()
