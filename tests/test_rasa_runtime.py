"""bot/rasa_runtime/: every change to Rasa's code is applied by the launcher, on the Rasa release it was written for
only; on any other it refuses with one warning line and leaves Rasa as it is."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Run in a fresh interpreter: what is patched in a process stays patched.
PRELUDE = """
import logging, sys
logging.basicConfig(level=logging.WARNING, stream=sys.stdout, format="%(levelname)s %(message)s")
from bot import rasa_runtime
"""
REPORT = """
from rasa.core.processor import MessageProcessor
from rasa.shared.core.trackers import DialogueStateTracker
from bot.rasa_runtime import hardening, speedups
print("speedups", len(speedups.ORIGINALS))
print("copy", DialogueStateTracker.copy.__module__)
print("processor", MessageProcessor._run_action.__module__)
"""


def run(code: str, **env: str) -> list[str]:
    out = subprocess.run([sys.executable, "-c", PRELUDE + code + REPORT], cwd=ROOT, capture_output=True, text=True,
                         timeout=300, env=dict(os.environ, PYTHONPATH=str(ROOT), **env))
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout.strip().splitlines()


def test_nothing_is_patched_by_importing_the_policy_module():
    lines = run("import bot.policies.flow_policy\n")
    assert lines == ["speedups 0", "copy rasa.shared.core.trackers", "processor rasa.core.processor"]


def test_the_launcher_patches_the_supported_rasa():
    lines = run("assert rasa_runtime.installed_version() == rasa_runtime.SUPPORTED_RASA == '3.6.21'\n"
                "rasa_runtime.apply()\n")
    assert not [line for line in lines if line.startswith("WARNING")]
    assert lines[-3] == "speedups 11"
    assert lines[-2:] == ["copy bot.rasa_runtime.speedups", "processor bot.rasa_runtime.hardening"]


def test_another_rasa_version_is_refused_with_one_warning_per_change():
    lines = run("rasa_runtime.installed_version = lambda: '3.7.0'\n"
                "rasa_runtime.apply(); rasa_runtime.apply(); rasa_runtime.prepare_imports()\n"
                "from bot.rasa_runtime import lazy_imports\n"
                "print('deferred', any(type(f).__name__ == '_DeferringFinder' for f in sys.meta_path))\n")
    warnings = [line for line in lines if line.startswith("WARNING")]
    assert warnings == [
        "WARNING rasa_runtime: message processor fixes not applied: written for Rasa 3.6.21, installed Rasa is 3.7.0",
        "WARNING rasa_runtime: speed-ups not applied: written for Rasa 3.6.21, installed Rasa is 3.7.0",
        "WARNING rasa_runtime: lazy imports not applied: written for Rasa 3.6.21, installed Rasa is 3.7.0",
    ]
    assert lines[-4:] == ["deferred False", "speedups 0", "copy rasa.shared.core.trackers",
                          "processor rasa.core.processor"]


def test_the_tracker_store_is_rasas_own_on_another_version(tmp_path):
    code = f"""
import asyncio
rasa_runtime.installed_version = lambda: '3.5.0'
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import UserUttered
from rasa.shared.core.trackers import DialogueStateTracker
from bot.rasa_runtime.tracker_store import CachingSQLTrackerStore
store = CachingSQLTrackerStore(Domain.empty(), url="sqlite:///{tmp_path / 'tracker.db'}")
tracker = DialogueStateTracker.from_events("c1", [UserUttered("hello")])
asyncio.run(store.save(tracker))
again = asyncio.run(store.retrieve("c1"))
print("kept", store.cache_size, again is tracker, [e.text for e in again.events if isinstance(e, UserUttered)])
"""
    lines = run(code)
    assert "WARNING rasa_runtime: tracker store not applied: written for Rasa 3.6.21, installed Rasa is 3.5.0" in lines
    assert "kept 0 False ['hello']" in lines


def test_the_old_module_names_are_the_moved_modules():
    from bot import hardening, lazy_imports, rasa_speedups, tracker_store
    from bot.rasa_runtime import hardening as h, lazy_imports as li, speedups as s, tracker_store as ts

    assert (rasa_speedups, lazy_imports, tracker_store, hardening) == (s, li, ts, h)
    from rasa.shared.utils.common import class_from_module_path

    assert class_from_module_path("bot.tracker_store.CachingSQLTrackerStore") is ts.CachingSQLTrackerStore
