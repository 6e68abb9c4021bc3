"""Every change this project makes to Rasa's own code, in one place, applied explicitly by the Rasa server's launcher.

- `speedups`: measured speed-ups of the Rasa server (docs/PERFORMANCE.md); `BOT_RASA_SPEEDUPS=0` turns them off.
- `lazy_imports`: TensorFlow imported when first used, not at start (`BOT_DEFER_TENSORFLOW=0` turns it off).
- `hardening`: the issue 18 fixes to Rasa's message processor (never silent; nothing handled while paused).
- `tracker_store`: the SQL tracker store that keeps conversations in memory (named in endpoints.yml).

Each of them reaches into Rasa's internals as they are in one release, SUPPORTED_RASA. On any other installed version
`supported()` refuses (one warning line saying why) and Rasa is left as it is: a changed internal would otherwise fail
in ways no test of ours sees. `apply()` is called by bot/serve.py before the server starts; nothing is patched at
import time.
"""
from __future__ import annotations

import functools
import logging
import os
from importlib import metadata

log = logging.getLogger(__name__)

SUPPORTED_RASA = "3.6.21"
_refused: set = set()


@functools.lru_cache(maxsize=1)
def installed_version() -> str:
    """The installed Rasa's version, read from its package metadata (without importing Rasa)."""
    try:
        return metadata.version("rasa")
    except metadata.PackageNotFoundError:
        return "none"


def supported(change: str) -> bool:
    """Whether `change` (a name for the log) may patch the installed Rasa; logs once per change when it may not."""
    version = installed_version()
    if version == SUPPORTED_RASA:
        return True
    if change not in _refused:
        _refused.add(change)
        log.warning("rasa_runtime: %s not applied: written for Rasa %s, installed Rasa is %s", change,
                    SUPPORTED_RASA, version)
    return False


def prepare_imports() -> None:
    """Before Rasa is imported: TensorFlow deferred (unless BOT_DEFER_TENSORFLOW=0), thinc imported without it."""
    if os.environ.get("BOT_DEFER_TENSORFLOW", "1") == "0" or not supported("lazy imports"):
        return
    from bot.rasa_runtime import lazy_imports

    lazy_imports.import_without("thinc.compat", "tensorflow")
    lazy_imports.install()
    lazy_imports.defer_train_schema()


def apply() -> None:
    """The changes to a running Rasa server: the message processor fixes and the speed-ups. Idempotent."""
    from bot.rasa_runtime import hardening, speedups

    hardening.apply()
    speedups.apply()
