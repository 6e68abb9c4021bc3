"""schemathesis over the agent console's OpenAPI (/webhooks/agent/openapi.json) on a real stack: every operation
with generated bodies, paths and query strings, signed in as a supervisor, and no answer may be a 5xx.

    .venv/bin/python scripts/fuzz_console.py [--max-examples N]     (make fuzz-console; needs `make tools`)

schemathesis runs from .venv-tools (its dependencies would move Rasa's pins). tests/test_hostile_input.py runs a
short version of the same (`fuzz`) on its stack.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCHEMATHESIS = ROOT / ".venv-tools" / "bin" / "schemathesis"
CREDENTIALS = "rest:\nbot.channels.agent_console.AgentConsoleInput:\n"


def prepare(stack, name: str = "fuzzer", password: str = "fuzzer-password-1") -> str:
    """A supervisor's token, and two customers waiting for a person so the conversation paths have something."""
    result = subprocess.run([sys.executable, "-m", "bot", "agents", "add", name, "--role", "supervisor",
                             "--password", password], cwd=ROOT, env=stack.env(), capture_output=True, text=True,
                            timeout=120)
    if result.returncode != 0 and "name_taken" not in result.stderr:
        raise RuntimeError(result.stderr)
    for sender in ("fuzz-a", "fuzz-b"):
        stack.send(sender, "转人工")
    req = urllib.request.Request(f"{stack.url}/webhooks/agent/api/login", method="POST",
                                 data=json.dumps({"name": name, "password": password}).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as resp:
        return json.loads(resp.read())["token"]


def fuzz(stack, token: str, max_examples: int, report_dir: Path) -> subprocess.CompletedProcess:
    """schemathesis with the `not_a_server_error` check only: 4xx answers to nonsense are right."""
    base = f"{stack.url}/webhooks/agent"
    command = [str(SCHEMATHESIS), "run", f"{base}/openapi.json", "--url", base,
               "--header", f"Authorization: Bearer {token}", "--checks", "not_a_server_error",
               "--exclude-path", "/api/logout",  # it would revoke the token the rest of the run signs in with
               "--max-examples", str(max_examples), "--seed", "18", "--workers", "2",
               "--request-timeout", "30", "--report", "junit", "--report-dir", str(report_dir),
               "--suppress-health-check", "all", "--warnings", "off"]
    return subprocess.run(command, capture_output=True, text=True, timeout=1800)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-examples", type=int, default=100)
    args = parser.parse_args()
    if not SCHEMATHESIS.exists():
        print("no .venv-tools/bin/schemathesis: run `make tools` first", file=sys.stderr)
        return 1
    sys.path.insert(0, str(ROOT))
    from tests.stack import Stack

    with tempfile.TemporaryDirectory() as tmp:
        credentials = Path(tmp) / "credentials.yml"
        credentials.write_text(CREDENTIALS, encoding="utf-8")
        stack = Stack(Path(tmp), credentials=credentials)
        try:
            stack.start()
            run = fuzz(stack, prepare(stack), args.max_examples, Path(tmp) / "report")
        finally:
            stack.stop()
    print(run.stdout[-6000:], run.stderr[-2000:])
    return run.returncode


if __name__ == "__main__":
    sys.exit(main())
