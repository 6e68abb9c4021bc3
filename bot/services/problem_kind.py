"""Complaint or repair: decided from what the customer says about harm and feelings, not only from the intent.

A fault reported calmly is a repair; the same fault with spoiled food, a flooded floor, money or days lost, anger,
or the third breakdown is a complaint (it gets the six-step handling, the apology and the escalation rules). Pure:
plain values in (the message, the intent, the NLU's anger score and entities, the lexicon's reading), a kind out.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable

from bot.services.problems import Lexicon, ProblemReading, read_problem

INTENT_KINDS = {"complain": "complaint", "request_repair": "repair", "request_return": "return",
                "request_exchange": "exchange"}
ANGRY = 0.5  # the NLU's anger score from which a fault report is a complaint
CALM = 0.2  # below this a "complaint" that only asks for a repair visit is a repair
# What a fault cost the customer (impact keys of data/problems.yml): harm, not inconvenience alone.
HARM_IMPACTS = ("food_spoiled", "flooded", "money_lost", "heat_suffering")

COMPLAINT_WORDS = re.compile(
    r"(投诉|举报|差评|12315|消协|曝光|维权|索赔|赔偿|退一赔|说法|"
    r"\bcomplain|\bcomplaint|\bsue\b|lawyer|consumer (council|association|rights)|compensat|refund me|"
    r"bad review|social media|escalate)", re.IGNORECASE)
FEELING_WORDS = re.compile(
    r"(气死|生气|愤怒|火大|恼火|太过分|过分了|离谱|垃圾|破(冰箱|空调|洗衣机|电视|热水器|机器|东西|玩意)|坑人|骗子|骗人|"
    r"无语|失望|受够|忍无可忍|什么(破|烂)|烂(透|货)|不负责|欺负|恶心|崩溃|糟心|闹心|"
    r"\bangry\b|furious|livid|fed up|sick of|disgust|outrage|ridiculous|unacceptable|disgrace|appalling|"
    r"terrible|awful|useless|rubbish|garbage|joke\b|scam|ripped off|cheated|pathetic|shocking|"
    r"disappoint|how dare|never buy|worst)", re.IGNORECASE)
REPEAT_WORDS = re.compile(
    r"(第[二三四五六七八九十两2-9](次|回)|又(坏|出|不|漏|响|停|是)|再次|反复|总是坏|老是坏|一直坏|修了(好几|几|两|三|[2-9])次|"
    r"修过(好几|几|两|三|[2-9])?次|还是(没|不)好|修(完|好)了?(又|还)|刚修(好|过)|"
    r"\b(second|third|fourth|fifth|2nd|3rd|4th|5th) time|yet again|keeps? (breaking|failing|stopping|dying)|"
    r"(broke|broken|stopped|failed|died|dead|leak\w*|not (working|cooling|heating)|same (problem|fault)).{0,20}\bagain\b|"
    r"(twice|three times|several times|many times) (already|before|now)|still (broken|not fixed)|"
    r"after (the|your) (last )?(repair|visit)|(repaired|fixed) (it )?(twice|before|already))",
    re.IGNORECASE)
DAMAGE_WORDS = re.compile(
    r"(泡坏|淹了|烧坏|洗坏|染色|串色|损坏了?(我|家)|弄坏了?(我|家)|(衣服|衣物).{0,4}(染|洗坏|破)|地板.{0,4}(坏|泡)|受伤|烫伤|"
    r"ruined (my|the|our)|damaged (my|the|our)|destroyed|(clothes|carpet|floor|ceiling|cabinet).{0,16}(ruined|damaged|soaked|stained)|"
    r"\binjur|\bburnt? (my|me)\b|hurt (my|me|him|her))", re.IGNORECASE)
REPAIR_ASK = re.compile(
    r"(报修|维修|修一下|修理|来修|上门|师傅|安排.{0,4}(人|师傅)|(请|派)(个)?(人|师傅)|"
    r"\brepair|\bfix\b|send (an? )?(engineer|technician|someone)|book (a|an) (visit|engineer|repair)|"
    r"come (and|to) (look|check|fix)|have a look)", re.IGNORECASE)


@dataclass(frozen=True)
class KindDecision:
    """The kind and the reasons for it (for the ticket's event and for tests)."""

    kind: str
    reasons: tuple[str, ...] = ()


def signals(text: str, *, anger: float = 0.0, reading: ProblemReading | None = None) -> tuple[str, ...]:
    """Why this message is a complaint rather than a fault report: harm, feelings, repeated failures, safety."""
    text = text or ""
    reading = reading or read_problem(text)
    found = []
    if reading.safety:
        found.append("safety")
    if COMPLAINT_WORDS.search(text):
        found.append("complaint_words")
    harmed = [k for k in reading.impacts if k in HARM_IMPACTS]
    if harmed or DAMAGE_WORDS.search(text):
        found.append("harm")
    if FEELING_WORDS.search(text):
        found.append("feelings")
    if float(anger or 0.0) >= ANGRY:
        found.append("anger")
    if REPEAT_WORDS.search(text):
        found.append("repeated")
    return tuple(found)


def decide_kind(text: str, intent: str, *, anger: float = 0.0, entities: Iterable[dict] = (),
                reading: ProblemReading | None = None, lexicon: Lexicon | None = None) -> KindDecision:
    """The ticket kind for a problem the customer opens with `intent` (complain, request_repair, request_return,
    request_exchange). Returns and exchanges keep their kind: the customer named the remedy they want.

    - a repair request becomes a complaint when the message speaks of harm, anger, feelings, a complaint, safety
      or a repeated failure (also: it names an earlier ticket, an NLU entity);
    - a "complaint" the classifier heard in a calm message that only asks for a repair visit (no harm, no feelings,
      no repeated failure, no complaint word) is a repair."""
    kind = INTENT_KINDS.get(intent)
    if kind is None:
        raise ValueError(f"{intent!r} does not open a problem (one of {', '.join(INTENT_KINDS)})")
    if kind in ("return", "exchange"):
        return KindDecision(kind)
    text = text or ""
    if text.startswith("/"):  # a menu button: the customer chose the kind
        return KindDecision(kind, ("chosen",))
    reading = reading or read_problem(text, lexicon)
    found = signals(text, anger=anger, reading=reading)
    if any(e.get("entity") == "ticket_number" for e in entities or () if isinstance(e, dict)):
        found += ("repeated",)  # a fault reported under an earlier ticket: it came back
    if found:
        return KindDecision("complaint", found)
    if kind == "complaint" and float(anger or 0.0) < CALM and REPAIR_ASK.search(text):
        return KindDecision("repair", ("calm_repair_request",))
    return KindDecision(kind)
