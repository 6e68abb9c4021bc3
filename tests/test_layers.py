"""The layers keep to their side (docs/ARCHITECTURE.md): channels translate and deliver; what is stored goes through
bot/services/. Read from the source, so that a new import in a channel fails here."""
from __future__ import annotations

import ast

from bot.settings import ROOT


def imported_modules(path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_channels_import_nothing_from_the_store_and_no_sqlalchemy():
    files = sorted((ROOT / "bot" / "channels").glob("*.py"))
    assert len(files) >= 8
    found = {f.name: sorted(m for m in imported_modules(f)
                            if m == "sqlalchemy" or m.startswith(("sqlalchemy.", "bot.store")))
             for f in files}
    assert {name: mods for name, mods in found.items() if mods} == {}


def test_nothing_patches_rasa_at_import_of_the_policy_module():
    source = (ROOT / "bot" / "policies" / "flow_policy.py").read_text(encoding="utf-8")
    assert "rasa_runtime" not in source and "rasa_speedups" not in source
