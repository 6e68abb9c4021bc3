"""Moved to bot/rasa_runtime/lazy_imports.py; this name stays for configurations and scripts that use it."""
import sys

from bot.rasa_runtime import lazy_imports as _moved

sys.modules[__name__] = _moved
