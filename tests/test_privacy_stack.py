"""Personal data on the real stack: a full complaint (phone, street address) with both servers logging at DEBUG
leaves no phone number or address in any log line; then `python -m bot privacy export` finds the conversation and
`privacy erase` removes it from the tracker store the running server reads, and the customer can start again."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from bot.services.conversation import conversation_id
from bot.settings import ROOT
from tests.stack import Stack, need_model, script_lines

pytestmark = pytest.mark.slow

PHONE = "13812345678"  # the demo customer behind order JD240512345678 (data/seed/catalogue.yml)
ADDRESS = "北京市朝阳区望京西路8号院3号楼1单元502"


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    need_model()
    # The SQL tracker store of endpoints.yml (`make run`): transcripts in $BOT_VAR_DIR/tracker.db.
    stack = Stack(tmp_path_factory.mktemp("privacy"), extra_env={"LOG_LEVEL": "DEBUG"},
                  endpoints_extra="tracker_store:\n  type: bot.rasa_runtime.tracker_store.CachingSQLTrackerStore\n")
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()


def cli(stack: Stack, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bot", *args], cwd=ROOT, env=stack.env(), capture_output=True,
                          text=True, timeout=120)


def test_a_full_complaint_leaves_no_phone_or_address_in_the_logs_and_can_be_erased(stack):
    sender = "privacy-complaint"
    lines = script_lines("zh-complaint-fridge")
    assert ADDRESS in lines
    for line in lines + [f"我的电话是{PHONE}，有事打我电话"]:
        assert stack.send(sender, line), line
    ticket = stack.ticket_of(sender)
    # the data did flow (the phone typed is stored in E.164, issue 15)
    assert ticket["customer"]["phone"] == "+86" + PHONE and ticket["facts"]["address"] == ADDRESS

    logs = {name: (stack.tmp / name).read_text(encoding="utf-8", errors="replace")
            for name in ("rasa.log", "actions.log")}
    assert "DEBUG" in logs["rasa.log"] and "[phone" in logs["rasa.log"]  # verbose, and masked rather than silent
    for name, text in logs.items():
        for secret in (PHONE, "望京西路", "1单元502", "138-1234-5678", "+86" + PHONE):
            assert secret not in text, (name, secret)

    conversation = conversation_id("rest", sender)
    exported = cli(stack, "privacy", "export", "--phone", PHONE)
    assert exported.returncode == 0, exported.stderr
    data = json.loads(exported.stdout)
    assert ticket["number"] in [t["number"] for t in data["tickets"]]
    said = [e.get("text") for e in data["transcripts"][conversation] if e.get("event") == "user"]
    assert ADDRESS in said

    erased = cli(stack, "privacy", "erase", "--phone", PHONE)
    assert erased.returncode == 0, erased.stderr
    events = stack.tracker(conversation)["events"]
    assert not [e for e in events if e.get("event") == "user" and PHONE in (e.get("text") or "")]
    assert ADDRESS not in json.dumps(events, ensure_ascii=False)
    assert stack.send(sender, "你好")  # the customer can start again
    assert stack.ticket_of(sender) is None or stack.ticket_of(sender)["customer"]["phone"] != PHONE
