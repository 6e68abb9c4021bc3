"""Moved to bot/rasa_runtime/hardening.py; this name stays for configurations and scripts that use it."""
import sys

from bot.rasa_runtime import hardening as _moved

sys.modules[__name__] = _moved
