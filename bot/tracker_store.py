"""Moved to bot/rasa_runtime/tracker_store.py; this name stays for configurations and scripts that use it."""
import sys

from bot.rasa_runtime import tracker_store as _moved

sys.modules[__name__] = _moved
