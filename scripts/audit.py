"""Known vulnerabilities in the locked dependencies: pip-audit (from the tools venv, .venv-tools) over
requirements.lock, against PyPI's advisory data.

Fails (exit 1) on any advisory not listed in security/pip-audit-ignore.txt, on a listed one that docs/SECURITY.md does
not justify, and when the advisory data could not be read for the packages (an audit that saw nothing is no pass).
`BOT_AUDIT_UNREACHABLE=warn` turns only the last into a warning, for a machine whose network cannot reach PyPI's
per-release JSON (pip-audit's source); see docs/SECURITY.md.

    .venv/bin/python scripts/audit.py        (make audit; scripts/test.sh runs it last)
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PIP_AUDIT = ROOT / ".venv-tools" / "bin" / "pip-audit"
IGNORE = ROOT / "security" / "pip-audit-ignore.txt"
SECURITY = ROOT / "docs" / "SECURITY.md"


def ignored_ids(path: Path = IGNORE) -> list[str]:
    """Advisory ids, one a line (`ID  # package: why`); blank lines and comments skipped."""
    ids = []
    for line in path.read_text(encoding="utf-8").splitlines():
        token = line.split("#", 1)[0].strip()
        if token:
            ids.append(token)
    return ids


def verdict(report: dict, ignored: list[str], security_text: str, unreachable_ok: bool) -> tuple[int, list[str]]:
    """(exit code, lines to print) for pip-audit's JSON report."""
    lines, failed = [], False
    for vuln_id in ignored:
        if not re.search(re.escape(vuln_id), security_text):
            lines.append(f"FAIL {vuln_id} is ignored in {IGNORE.name} but not justified in docs/SECURITY.md")
            failed = True
    deps = report.get("dependencies") or []
    skipped = [d for d in deps if d.get("skip_reason")]
    for dep in deps:
        for vuln in dep.get("vulns") or []:
            names = [vuln["id"], *(vuln.get("aliases") or [])]
            if any(n in ignored for n in names):
                lines.append(f"ok   {dep['name']} {dep['version']}: {vuln['id']} (listed in docs/SECURITY.md)")
                continue
            fixed = ", ".join(vuln.get("fix_versions") or []) or "no fix yet"
            lines.append(f"FAIL {dep['name']} {dep['version']}: {vuln['id']} (fixed in {fixed}) is not listed")
            failed = True
    audited = len(deps) - len(skipped)
    lines.append(f"{audited} of {len(deps)} packages audited, {len(skipped)} could not be")
    if skipped:
        sample = "; ".join(d["skip_reason"] for d in skipped[:3])
        message = (f"the advisory data could not be read for {len(skipped)} packages ({sample} ...): "
                   f"the audit saw nothing for them")
        if unreachable_ok:
            lines.append("WARNING " + message + " (BOT_AUDIT_UNREACHABLE=warn)")
        else:
            lines.append("FAIL " + message + "; set BOT_AUDIT_UNREACHABLE=warn only where PyPI's JSON API is "
                                             "known to be out of reach")
            failed = True
    return (1 if failed else 0), lines


def main() -> int:
    if not PIP_AUDIT.exists():
        print(f"no {PIP_AUDIT.relative_to(ROOT)}: run `make tools` first", file=sys.stderr)
        return 1
    ignored = ignored_ids()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "audit.json"
        command = [str(PIP_AUDIT), "--requirement", str(ROOT / "requirements.lock"), "--require-hashes",
                   "--disable-pip", "--progress-spinner", "off", "--format", "json", "--output", str(out)]
        run = subprocess.run(command, capture_output=True, text=True, timeout=900)
        if not out.exists():
            print(run.stdout + run.stderr, file=sys.stderr)
            return 1
        report = json.loads(out.read_text(encoding="utf-8"))
    # The listed advisories are not passed to pip-audit (--ignore-vuln would drop them from the report): the
    # verdict shows them as accepted, so the list stays visible.
    code, lines = verdict(report, ignored, SECURITY.read_text(encoding="utf-8"),
                          os.environ.get("BOT_AUDIT_UNREACHABLE") == "warn")
    print("\n".join(lines))
    return code


if __name__ == "__main__":
    sys.exit(main())
