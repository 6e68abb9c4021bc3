"""Rewrites requirements.lock with the sha256 of every file PyPI publishes for each pinned version, so that
`pip install --require-hashes -r requirements.lock` accepts the wheel of any platform and nothing else.

    .venv/bin/python scripts/lock_hashes.py            # rewrite requirements.lock in place
    .venv/bin/python scripts/lock_hashes.py --check    # exit 1 when a pin has no hashes (e.g. a plain line added)

Engineers add plain `name==version` lines to requirements.lock (alphabetical); this script keeps those pins and
adds their hashes (hashes already in the file for the same version are reused, so a re-run asks PyPI only about
new pins). The hashes come from PyPI's JSON API (https://pypi.org/pypi/<name>/<version>/json, or the project's
JSON when that answers 404).
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements.lock"
PYPI = "https://pypi.org/pypi"
HEADER = ("# The exact, tested set of packages (pip freeze), each with the sha256 of every file PyPI publishes for\n"
          "# that version: install with `pip install --require-hashes -r {name}` (the Makefile does).\n"
          "# Add a plain `name==version` line, then run `.venv/bin/python scripts/lock_hashes.py{option}` to add its\n"
          "# hashes.\n")
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*(?:\[[^\]]*\])?)==([^\s;\\]+)")
HASH = re.compile(r"--hash=sha256:([0-9a-f]{64})")


def read_lock(text: str) -> dict[tuple[str, str], list[str]]:
    """{(name, version): [sha256, ...]} in file order; a pin without hashes maps to []."""
    pins: dict[tuple[str, str], list[str]] = {}
    current: tuple[str, str] | None = None
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        match = PIN.match(stripped)
        if match:
            current = (match.group(1), match.group(2))
            pins.setdefault(current, [])
        if current is not None:
            pins[current] += [h for h in HASH.findall(stripped) if h not in pins[current]]
    return pins


def _get(url: str) -> dict | None:
    try:
        with urllib.request.urlopen(url, timeout=60) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as err:
        if err.code == 404:
            return None
        raise


def published_hashes(name: str, version: str) -> list[str]:
    """The sha256 of every file (wheels and sdist) PyPI has for `name==version`."""
    bare = name.split("[", 1)[0]
    release = _get(f"{PYPI}/{bare}/{version}/json")
    files = release.get("urls") if release else None
    if not files:
        project = _get(f"{PYPI}/{bare}/json") or {}
        files = (project.get("releases") or {}).get(version) or []
    hashes = sorted({f["digests"]["sha256"] for f in files if f.get("digests", {}).get("sha256")})
    if not hashes:
        raise SystemExit(f"PyPI has no files for {bare}=={version}: is the pin right?")
    return hashes


def render(pins: dict[tuple[str, str], list[str]], lock: Path = LOCK) -> str:
    lines = [HEADER.format(name=lock.name, option="" if lock.resolve() == LOCK else f" --lock {lock.name}")]
    for (name, version), hashes in sorted(pins.items(), key=lambda item: item[0][0].lower()):
        lines.append(f"{name}=={version}" + "".join(f" \\\n    --hash=sha256:{h}" for h in hashes) + "\n")
    return "".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only report pins without hashes")
    parser.add_argument("--lock", type=Path, default=LOCK)
    args = parser.parse_args(argv)
    pins = read_lock(args.lock.read_text(encoding="utf-8"))
    missing = [pin for pin, hashes in pins.items() if not hashes]
    if args.check:
        for name, version in missing:
            print(f"no hashes: {name}=={version}", file=sys.stderr)
        return 1 if missing else 0
    with ThreadPoolExecutor(max_workers=4) as pool:
        for pin, hashes in zip(missing, pool.map(lambda p: published_hashes(*p), missing)):
            pins[pin] = hashes
    args.lock.write_text(render(pins, args.lock), encoding="utf-8")
    print(f"{args.lock.name}: {len(pins)} pins, {len(missing)} hashed now, "
          f"{sum(len(h) for h in pins.values())} hashes in all")
    return 0


if __name__ == "__main__":
    sys.exit(main())
