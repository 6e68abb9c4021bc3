"""The commit a report was made from, for `make eval` and `make bench`."""
from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _git(*args: str) -> str | None:
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=30,
                              check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def commit(short: bool = False) -> str | None:
    """HEAD's id (None outside a git checkout)."""
    return _git("rev-parse", *(["--short"] if short else []), "HEAD")


def dirty() -> bool:
    """Whether tracked files differ from HEAD, outside docs/ (which holds the reports themselves and the browser
    tests' screenshots: not what is measured)."""
    return bool(_git("status", "--porcelain", "--untracked-files=no", "--", ".", ":!docs"))
