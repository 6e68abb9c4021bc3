"""The dependency gates without the network: the hashed lock's parser and writer (scripts/lock_hashes.py) and the
audit's verdict over a pip-audit JSON report (scripts/audit.py)."""
from __future__ import annotations

import importlib.util
import re

from bot.settings import ROOT


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


lock_hashes = _script("lock_hashes")
audit = _script("audit")
H1, H2 = "a" * 64, "b" * 64


def test_the_lock_keeps_hashes_and_finds_plain_pins_added_by_hand(tmp_path):
    text = f"# header\nfoo==1.0 \\\n    --hash=sha256:{H1} \\\n    --hash=sha256:{H2}\nbar==2.0\nbaz[x]==3.0\n"
    pins = lock_hashes.read_lock(text)
    assert pins == {("foo", "1.0"): [H1, H2], ("bar", "2.0"): [], ("baz[x]", "3.0"): []}
    pins[("bar", "2.0")] = pins[("baz[x]", "3.0")] = [H2]
    lock = tmp_path / "requirements.lock"
    lock.write_text(lock_hashes.render(pins, lock), encoding="utf-8")
    assert lock_hashes.read_lock(lock.read_text(encoding="utf-8")) == pins  # the round trip is exact
    assert lock_hashes.main(["--check", "--lock", str(lock)]) == 0


def test_the_project_lock_has_hashes_for_every_pin_and_pins_what_pip_needs():
    pins = lock_hashes.read_lock((ROOT / "requirements.lock").read_text(encoding="utf-8"))
    assert pins and all(pins.values()), [p for p, h in pins.items() if not h]
    names = {name.lower() for name, _ in pins}
    assert {"rasa", "argon2-cffi", "argon2-cffi-bindings", "wheel", "setuptools"} <= names
    for line in (ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines():
        pin = re.match(r"([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?==(\S+)", line)
        if pin:
            assert (pin.group(1).lower(), pin.group(2)) in {(n.lower().split("[")[0], v) for n, v in pins}, line


def _report(*vulns, skipped: int = 0) -> dict:
    deps = [{"name": "aiohttp", "version": "3.9.5", "vulns": list(vulns)}]
    deps += [{"name": f"p{i}", "skip_reason": "Dependency not found on PyPI"} for i in range(skipped)]
    return {"dependencies": deps}


def test_the_audit_fails_on_an_unlisted_advisory_and_passes_a_listed_and_justified_one():
    vuln = {"id": "GHSA-xxxx-yyyy-zzzz", "aliases": ["CVE-2099-0001"], "fix_versions": ["3.10.2"]}
    code, lines = audit.verdict(_report(vuln), [], "", unreachable_ok=False)
    assert code == 1 and "FAIL aiohttp 3.9.5: GHSA-xxxx-yyyy-zzzz (fixed in 3.10.2) is not listed" in lines
    code, lines = audit.verdict(_report(vuln), ["CVE-2099-0001"], "CVE-2099-0001: only loopback", False)
    assert code == 0 and lines[0].startswith("ok   aiohttp")
    code, lines = audit.verdict(_report(vuln), ["CVE-2099-0001"], "no reason given", False)
    assert code == 1 and "not justified" in lines[0]


def test_an_audit_that_could_not_see_the_advisories_is_no_pass():
    code, lines = audit.verdict(_report(skipped=3), [], "", unreachable_ok=False)
    assert code == 1 and lines[-1].startswith("FAIL the advisory data could not be read for 3 packages")
    code, lines = audit.verdict(_report(skipped=3), [], "", unreachable_ok=True)
    assert code == 0 and lines[-1].startswith("WARNING")
