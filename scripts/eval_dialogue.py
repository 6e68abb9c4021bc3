"""Conversation-level measurements: the test stories (`rasa test core`) and scripted REST conversations
through the real Rasa and action servers (tests/stack.py), checked against the ticket they leave.

tests/data/conversations.yml is a list of

    - name: zh-complaint-fridge
      language: zh
      lines: ["...", "..."]            # what the customer types, one REST message each
      expect: {steps_complete: true, product: fridge, language: zh}

Lines and expected values may name the ticket of an earlier conversation in the file as
``{ticket:<name>}`` (e.g. a status look-up from another conversation). Expectation keys:

  steps_complete    all six steps stamped on the ticket (true) / not all (false)
  ticket            false: this conversation must leave no ticket
  product, model, symptom, order_id, address    ticket facts (equality)
  phone, customer_name                          the ticket's customer
  language, kind, status, handoff_requested     ticket fields (equality)
  remedy_accepted   true: some remedy accepted; a string: that remedy
  follow_up_due     true: a follow-up time is set
  reply_contains    a string or a list: each must appear in the bot's replies
  reply_language    zh: every reply has Chinese characters; en: no reply has any

Success = every turn got a non-empty reply and every expectation holds.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
STEPS = ("vent", "apologise", "gather", "propose", "opinion", "follow_up")
PLACEHOLDER = re.compile(r"\{ticket:([A-Za-z0-9_.\-]+)\}")
FACT_KEYS = ("product", "model", "symptom", "order_id", "address", "purchase_date", "contact_time")
TICKET_KEYS = ("language", "kind", "status", "handoff_requested", "channel")


# --------------------------------------------------------------------------- test stories

def run_core_stories(model: Path, stories: Path, out: Path, timeout: int = 600) -> dict:
    """`rasa test core` as a subprocess; stories passed/total from story_report.json (or failed_test_stories.yml)."""
    rasa = Path(sys.executable).parent / "rasa"
    cmd = [str(rasa), "test", "core", "--model", str(model), "--stories", str(stories), "--out", str(out),
           "--no-plot"]
    if out.exists():
        for f in ("story_report.json", "failed_test_stories.yml", "stories_with_warnings.yml"):
            (out / f).unlink(missing_ok=True)
    started = time.monotonic()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    seconds = round(time.monotonic() - started, 1)
    result: dict[str, Any] = {"command": " ".join(["rasa"] + cmd[1:]), "returncode": proc.returncode,
                              "seconds": seconds}
    report = out / "story_report.json"
    failed_file = out / "failed_test_stories.yml"
    if proc.returncode != 0 or not report.exists():
        result["error"] = (proc.stderr or proc.stdout)[-3000:]
        return result
    data = json.loads(report.read_text())
    conv = data.get("conversation_accuracy") or {}
    failed_names = _failed_story_names(failed_file)
    total = conv.get("total")
    if total is None:  # older layouts: count the stories in the test files
        total = _count_stories(stories)
    correct = conv.get("correct", total - len(failed_names) if total is not None else None)
    result.update(passed=correct, total=total, failed=failed_names,
                  with_warnings=conv.get("with_warnings", 0),
                  action_accuracy=data.get("accuracy"),
                  action_macro_f1=(data.get("macro avg") or {}).get("f1-score"))
    return result


def _failed_story_names(path: Path) -> list[str]:
    if not path.exists():
        return []
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError:
        return ["<unreadable failed_test_stories.yml>"]
    return [s.get("story", "?") for s in (data.get("stories") or [])]


def _count_stories(stories: Path) -> int:
    files = [stories] if stories.is_file() else sorted(stories.rglob("*.yml"))
    return sum(len((yaml.safe_load(f.read_text()) or {}).get("stories") or []) for f in files)


# --------------------------------------------------------------------------- scripted conversations

def load_conversations(path: Path) -> list[dict]:
    data = yaml.safe_load(path.read_text())
    if isinstance(data, dict):
        data = data.get("conversations")
    if not isinstance(data, list) or not data:
        raise ValueError(f"{path}: expected a non-empty list of conversations")
    names = set()
    for conv in data:
        for key in ("name", "language", "lines"):
            if key not in conv:
                raise ValueError(f"{path}: conversation {conv.get('name', '?')!r} has no {key!r}")
        bad = [line for line in conv["lines"] if not isinstance(line, str)]
        if bad:  # YAML reads yes/no/on/off as booleans and digits as numbers: the customer types text
            raise ValueError(f"{path}: conversation {conv['name']!r}: quote the line(s) {bad!r}")
        if conv["name"] in names:
            raise ValueError(f"{path}: duplicate conversation name {conv['name']!r}")
        names.add(conv["name"])
    return data


def has_cjk(text: str) -> bool:
    return any("\u4e00" <= ch <= "\u9fff" for ch in text)


def _fill(value: Any, tickets: dict[str, str | None]) -> Any:
    if isinstance(value, str):
        def sub(m: re.Match) -> str:
            number = tickets.get(m.group(1))
            if not number:
                raise LookupError(f"no ticket from conversation {m.group(1)!r} to refer to")
            return number
        return PLACEHOLDER.sub(sub, value)
    if isinstance(value, list):
        return [_fill(v, tickets) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, tickets) for k, v in value.items()}
    return value


def check_expectations(expect: dict, ticket: dict | None, replies: list[str]) -> list[str]:
    """The expectations that do not hold (empty when all hold)."""
    problems: list[str] = []
    expect = dict(expect or {})
    if expect.pop("ticket", True) is False:
        if ticket is not None:
            problems.append(f"expected no ticket, found {ticket['number']}")
    needs_ticket = any(k not in ("reply_contains", "reply_language") for k in expect)
    if needs_ticket and ticket is None:
        return problems + ["no ticket stored for this conversation"]
    for key, want in expect.items():
        if key == "steps_complete":
            done = [s for s in STEPS if ticket["steps"].get(s)]
            ok = len(done) == len(STEPS)
            if ok != bool(want):
                missing = [s for s in STEPS if s not in done]
                problems.append(f"steps_complete={ok} (missing: {', '.join(missing) or '-'})")
            elif want:
                stamps = [ticket["steps"][s] for s in STEPS]
                if stamps != sorted(stamps):
                    problems.append("steps stamped out of order")
        elif key in FACT_KEYS:
            got = ticket["facts"].get(key)
            if str(got) != str(want):
                problems.append(f"{key}={got!r}, expected {want!r}")
        elif key == "phone":
            got = ticket["customer"].get("phone")
            if str(got) != str(want):
                problems.append(f"phone={got!r}, expected {want!r}")
        elif key == "customer_name":
            got = ticket["customer"].get("name")
            if got != want:
                problems.append(f"customer_name={got!r}, expected {want!r}")
        elif key in TICKET_KEYS:
            got = ticket.get(key)
            if got != want:
                problems.append(f"{key}={got!r}, expected {want!r}")
        elif key == "remedy_accepted":
            got = ticket["remedy"].get("accepted")
            if (want is True and not got) or (want is False and got) or (isinstance(want, str) and got != want):
                problems.append(f"remedy_accepted={got!r}, expected {want!r}")
        elif key == "follow_up_due":
            if bool(ticket.get("follow_up_due")) != bool(want):
                problems.append(f"follow_up_due={ticket.get('follow_up_due')!r}, expected {'set' if want else 'unset'}")
        elif key == "reply_contains":
            joined = "\n".join(replies)
            for needle in ([want] if isinstance(want, str) else want):
                if needle not in joined:
                    problems.append(f"no reply contains {needle!r}")
        elif key == "reply_language":
            if want == "zh":
                bad = [r for r in replies if r and not has_cjk(r)]
            else:
                bad = [r for r in replies if has_cjk(r)]
            if bad:
                problems.append(f"{len(bad)} repl{'y' if len(bad) == 1 else 'ies'} not in {want}: {bad[0][:80]!r}")
        else:
            problems.append(f"unknown expectation {key!r}")
    return problems


def reply_text(replies: list[dict]) -> str:
    parts = []
    for r in replies:
        if r.get("text"):
            parts.append(r["text"])
        for b in r.get("buttons") or []:
            parts.append(f"[{b.get('title')}]")
    return "\n".join(parts)


def run_conversations(stack, conversations: list[dict], run_id: str) -> list[dict]:
    """Each conversation in order on its own sender id; a result per conversation."""
    results = []
    tickets: dict[str, str | None] = {}
    for conv in conversations:
        sender = f"eval-{run_id}-{conv['name']}"
        transcript: list[dict] = []
        problems: list[str] = []
        try:
            lines = _fill(list(conv["lines"]), tickets)
        except LookupError as err:
            results.append({"name": conv["name"], "language": conv["language"], "ok": False,
                            "problems": [str(err)], "transcript": [], "ticket": None})
            tickets[conv["name"]] = None
            continue
        for line in lines:
            try:
                replies = stack.send(sender, line)
            except Exception as err:  # noqa: BLE001 - a broken turn is a failed conversation, not a crash
                transcript.append({"user": line, "bot": f"<error: {err.__class__.__name__}: {err}>"})
                problems.append(f"turn {line!r} failed: {err.__class__.__name__}")
                break
            text = reply_text(replies)
            transcript.append({"user": line, "bot": text})
            if not replies or not any(r.get("text") for r in replies):
                problems.append(f"no reply to {line!r}")
        ticket = None
        try:
            ticket = stack.ticket_of(sender)
        except Exception as err:  # noqa: BLE001
            problems.append(f"could not read the ticket: {err}")
        tickets[conv["name"]] = ticket["number"] if ticket else None
        try:  # expectations may name this conversation's own ticket too
            expect = _fill(dict(conv.get("expect") or {}), tickets)
        except LookupError as err:
            expect = {}
            problems.append(str(err))
        bot_replies = [t["bot"] for t in transcript]
        problems += check_expectations(expect, ticket, bot_replies)
        results.append({
            "name": conv["name"], "language": conv["language"], "ok": not problems, "problems": problems,
            "turns": len(lines), "transcript": transcript,
            "ticket": None if ticket is None else {
                "number": ticket["number"], "kind": ticket["kind"], "status": ticket["status"],
                "language": ticket["language"], "product": ticket["facts"]["product"],
                "steps_done": [s for s in STEPS if ticket["steps"].get(s)],
                "remedy_accepted": ticket["remedy"]["accepted"], "handoff_requested": ticket["handoff_requested"]},
        })
    return results


def summarise_conversations(results: list[dict]) -> dict:
    by_lang: dict[str, dict] = {}
    for r in results:
        row = by_lang.setdefault(r["language"], {"passed": 0, "total": 0, "failed": []})
        row["total"] += 1
        if r["ok"]:
            row["passed"] += 1
        else:
            row["failed"].append(r["name"])
    for row in by_lang.values():
        row["success_rate"] = row["passed"] / row["total"] if row["total"] else None
    total = len(results)
    passed = sum(r["ok"] for r in results)
    return {"by_language": by_lang, "passed": passed, "total": total,
            "success_rate": passed / total if total else None}


def run_stack_conversations(path: Path, run_id: str) -> dict:
    """Start a Stack (seeded SQLite in a temporary directory), run the conversations, stop it."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from tests.stack import Stack

    conversations = load_conversations(path)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="eval-stack-") as tmp:
        stack = Stack(Path(tmp))
        try:
            stack.start()
            up = round(time.monotonic() - started, 1)
            results = run_conversations(stack, conversations, run_id)
        finally:
            stack.stop()
    return {"results": results, "summary": summarise_conversations(results), "startup_seconds": up,
            "seconds": round(time.monotonic() - started, 1)}


if __name__ == "__main__":  # development aid: run the conversations against a stack and print transcripts
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--file", default=str(ROOT / "tests" / "data" / "conversations.yml"))
    parser.add_argument("--only", help="substring of the conversation names to run")
    args = parser.parse_args()
    convs = load_conversations(Path(args.file))
    if args.only:
        convs = [c for c in convs if args.only in c["name"]]
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from tests.stack import Stack

    with tempfile.TemporaryDirectory(prefix="eval-stack-") as tmp:
        st = Stack(Path(tmp))
        st.start()
        try:
            out = run_conversations(st, convs, str(int(time.time())))
        finally:
            st.stop()
    for r in out:
        print(f"== {r['name']}: {'OK' if r['ok'] else 'FAILED'} {r['problems']}")
        for t in r["transcript"]:
            print("  >", t["user"])
            print("   ", t["bot"].replace("\n", "\n    "))
        print("  ticket:", r["ticket"])
