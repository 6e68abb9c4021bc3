"""Every bot message exists in Chinese and English: domain responses and the script's catalogue."""
from __future__ import annotations

import re

import yaml

from bot.settings import ROOT
from bot.texts import load_texts

DOMAIN = yaml.safe_load((ROOT / "domain.yml").read_text(encoding="utf-8"))
CJK = re.compile(r"[\u4e00-\u9fff]")


def language_of(variant: dict) -> str | None:
    for condition in variant.get("condition") or []:
        if condition.get("name") == "language":
            return condition.get("value")
    return None


def test_every_response_has_a_chinese_and_an_english_variation():
    for name, variants in DOMAIN["responses"].items():
        languages = {language_of(v) for v in variants}
        assert {"zh", "en"} <= languages, f"{name} lacks a language variation"
        for v in variants:
            lang = language_of(v)
            if lang == "zh":
                assert CJK.search(v["text"]), f"{name}: the zh variation is not Chinese"
            if lang == "en":
                assert not CJK.search(v["text"]), f"{name}: the en variation contains Chinese"
            for b in v.get("buttons", []):
                assert lang in ("zh", "en"), f"{name}: buttons in a variation without a language condition"
                assert bool(CJK.search(b["title"])) == (lang == "zh"), f"{name}: button {b}"


def test_no_channel_specific_variation_can_beat_the_language_ones():
    # Rasa 3.6: a channel variation without a language condition wins over language-conditioned ones.
    for name, variants in DOMAIN["responses"].items():
        for v in variants:
            assert "channel" not in v, f"{name} has a channel-specific variation"


def test_every_script_text_is_bilingual_and_in_the_right_script():
    texts = load_texts()
    for key in texts.keys():
        zh, en = texts.variants(key, "zh"), texts.variants(key, "en")
        assert zh and en, key
        assert len(zh) == len(en), f"{key}: different number of variants"
        if not key.startswith(("btn_", "intent_", "product_", "part_", "kind_", "status_", "remedy_name_")):
            assert all(CJK.search(t) for t in zh), f"{key}: zh text without Chinese"
        assert not any(CJK.search(t) for t in en), f"{key}: en text with Chinese"


def test_intents_are_the_contract():
    contract = {"greet", "goodbye", "thank", "affirm", "deny", "bot_challenge", "stop", "out_of_scope", "complain",
                "request_repair", "request_installation", "request_return", "request_exchange", "ask_warranty",
                "ask_fee", "check_status", "reschedule_visit", "cancel_visit", "request_human",
                "ask_service_center", "usage_help", "inform", "feedback"}
    assert contract <= set(DOMAIN["intents"])


def test_every_text_key_the_code_names_exists_in_both_languages():
    """A key named in the code but missing from bot/texts.yml would crash the action on that branch."""
    import re

    from bot.settings import ROOT
    from bot.texts import load_texts

    texts = load_texts()
    named = set()
    for path in sorted((ROOT / "bot").rglob("*.py")):
        source = path.read_text(encoding="utf-8")
        named |= set(re.findall(r"""(?:self\.msg|self\.button|\bt\.get|texts\.get|TEXTS\.get)\(\s*["']([a-z0-9_]+)["']""", source))
        named |= set(re.findall(r"""\["_ask"\]\s*=\s*["']([a-z0-9_]+)["']""", source))
        named |= set(re.findall(r"""\.pop\("_ask",\s*["']([a-z0-9_]+)["']\)""", source))
    assert len(named) > 50
    missing = sorted(key for key in named if key not in texts)
    assert not missing, missing
    for key in named:
        assert texts.get(key, "zh", **_blank(texts, key)) and texts.get(key, "en", **_blank(texts, key))


def _blank(texts, key: str) -> dict:
    import string

    fields = set()
    for lang in ("zh", "en"):
        fields |= {f for _, f, _, _ in string.Formatter().parse(texts._catalogue[key][lang]) if f}
    return {f: "x" for f in fields}
