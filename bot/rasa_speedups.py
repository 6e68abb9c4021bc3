"""Moved to bot/rasa_runtime/speedups.py; this name stays for configurations and scripts that use it."""
import sys

from bot.rasa_runtime import speedups as _moved

sys.modules[__name__] = _moved
