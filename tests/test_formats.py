"""Real-world phone numbers and model codes (issue 15): the tables in tests/data/formats/ (also reported by
`make eval`), the E.164 normaliser, and the script accepting them as answers and storing them normalised."""
from __future__ import annotations

import csv
from pathlib import Path

import pytest

from bot.nlu import phones
from bot.nlu.extract import extract_entities, model_code
from tests.test_script import Chat, joined, tools  # noqa: F401 - the fixture is used by name

FORMATS = Path(__file__).parent / "data" / "formats"


def rows(name: str) -> list[dict]:
    with (FORMATS / name).open(encoding="utf-8") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


CODES = rows("model_codes.tsv")
PHONES = rows("phones.tsv")


def test_tables_are_as_large_as_the_issue_asks():
    assert len(CODES) >= 40 and len({r["brand"] for r in CODES}) >= 10
    assert len(PHONES) >= 30
    kinds = {r["kind"] for r in PHONES}
    assert {"mainland mobile", "mainland landline", "Hong Kong", "Macau", "Taiwan"} <= kinds and len(kinds) >= 8


@pytest.mark.parametrize("row", CODES, ids=[r["code"] for r in CODES])
def test_model_code_as_printed_is_read_whole(row):
    found = [e for e in extract_entities(row["message"]) if e["entity"] == "product_model"]
    assert [e["value"] for e in found] == [row["code"]]
    assert row["message"][found[0]["start"]:found[0]["end"]] == row["code"]


@pytest.mark.parametrize("row", PHONES, ids=[r["message"] for r in PHONES])
def test_phone_is_found_and_normalised_to_e164(row):
    found = [e["value"] for e in extract_entities(row["message"]) if e["entity"] == "phone"]
    assert found == [row["e164"]]
    assert phones.normalize(row["e164"]) == row["e164"]


@pytest.mark.parametrize("text", ["1.5匹", "220V", "3pm", "WIFI6", "No.5", "Room-302", "1st-floor", "SV-20261122-0042",
                                  "hello", "A1", "123456789012", "ABCDEFGHIJKLMNOPQRSTUVWXYZ-0123456789"])
def test_not_model_codes(text):
    assert model_code(text) is None


@pytest.mark.parametrize("raw,expected", [
    ("13812345678", "+8613812345678"), ("+86 138 1234 5678", "+8613812345678"), ("0086-138-1234-5678", "+8613812345678"),
    ("021-6438 1234", "+862164381234"), ("+852 9123 4567", "+85291234567"), ("00853 6612 3456", "+85366123456"),
    ("1381234", None), ("123456", None), ("", None), (None, None), ("+44 20", None), ("1" * 200, None),
])
def test_normalize(raw, expected):
    assert phones.normalize(raw) == expected


def test_equivalent_forms_find_numbers_stored_before_e164():
    assert phones.equivalent_forms("138 1234 5678") == ["+8613812345678", "13812345678"]
    assert phones.equivalent_forms("+852 9123 4567") == ["+85291234567"]
    assert phones.same_number("13812345678", "+86 138-1234-5678") and not phones.same_number("13812345678", None)


def _to_model_question(chat: Chat) -> None:
    chat.say("热水器不出热水了，帮我修一下", "request_repair")
    out = chat.say("对", "affirm")
    assert "型号" in joined(out)


def test_script_accepts_a_mixed_case_code_and_a_landline(tools):  # noqa: F811
    chat = Chat(tools, "formats-zh")
    _to_model_question(chat)
    out = chat.say("KFR-35GW/NhGc1", "inform")
    assert "型号格式" not in joined(out) and chat.ticket()["facts"]["model"] == "KFR-35GW/NhGc1"
    chat.state["skipped"] = ["purchase"]
    chat.state["asking"] = None
    out = chat.say("好的", "affirm")
    assert "手机号" in joined(out) or "电话" in joined(out)
    out = chat.say("021-6438 1234", "inform")
    assert chat.ticket()["customer"]["phone"] == "+862164381234"
    assert chat.state.get("asking") != "phone" and "号码好像不对" not in joined(out)


def test_script_reads_a_lower_case_catalogue_code_in_the_catalogue_spelling(tools):  # noqa: F811
    chat = Chat(tools, "formats-lower")
    _to_model_question(chat)
    chat.say("型号是 xqb80-z3028", "inform")
    assert chat.ticket()["facts"]["model"] == "XQB80-Z3028"


def test_script_stores_a_hong_kong_number_and_refuses_a_short_one(tools):  # noqa: F811
    chat = Chat(tools, "formats-hk", language="en")
    chat.say("my water heater gives no hot water, please fix it", "request_repair")
    chat.say("yes", "affirm")
    chat.state["skipped"] = ["model", "purchase"]
    chat.state["asking"] = None
    out = chat.say("ok", "affirm")
    assert "phone" in joined(out).lower() or "number" in joined(out).lower()
    out = chat.say("1381234", "inform")
    assert "+852 9123 4567" in joined(out)  # the answer says which formats work
    chat.say("+852 9123 4567", "inform")
    assert chat.ticket()["customer"]["phone"] == "+85291234567"
