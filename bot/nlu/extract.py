"""Rule-based zh/en entity extraction: phones, order ids, tickets, models, products, date/time.
A lazily built blank spaCy pipeline (mixed-script tokenizer, Matcher/PhraseMatcher) plus regex checks."""

from __future__ import annotations

import datetime as _dt
import functools
import re
import threading
from typing import Any, Dict, Iterable, List, Optional, Tuple

from bot.nlu.phones import find_numbers

__all__ = ["extract_entities", "get_pipeline", "model_code", "normalize_width"]

# --------------------------------------------------------------------------- #
# Text normalisation and tokenisation
# --------------------------------------------------------------------------- #

# Full-width ASCII variants (！ to ～) and the ideographic space map 1:1 onto ASCII,
# so the normalised text has exactly the same length and offsets as the input.
_WIDTH_TABLE = {cp: cp - 0xFEE0 for cp in range(0xFF01, 0xFF5F)}
_WIDTH_TABLE[0x3000] = 0x20


def normalize_width(text: str) -> str:
    """Maps full-width ASCII forms to ASCII without changing the text length."""
    return text.translate(_WIDTH_TABLE)


_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af"
_TOKEN_RE = re.compile(
    rf"(?P<cjk>[{_CJK}])"
    rf"|(?P<word>(?:(?![{_CJK}])[^\W_])+)"
    r"|(?P<space>\s+)"
    r"|(?P<other>.)",
    re.S,
)
_HAN_RE = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


class MixedScriptTokenizer:
    """spaCy tokenizer: one token per CJK character, alphanumeric runs kept whole.

    Punctuation is one token per character; a single space after a token is stored
    as trailing whitespace, longer whitespace runs become whitespace tokens, so
    ``doc.text`` always equals the input and ``token.idx`` are character offsets.
    """

    def __init__(self, vocab: Any) -> None:
        self.vocab = vocab

    def __call__(self, text: str) -> Any:
        from spacy.tokens import Doc

        words: List[str] = []
        spaces: List[bool] = []
        for match in _TOKEN_RE.finditer(text):
            piece = match.group()
            if match.lastgroup == "space":
                if words and not spaces[-1] and piece[0] == " ":
                    spaces[-1] = True
                    piece = piece[1:]
                if not piece:
                    continue
            words.append(piece)
            spaces.append(False)
        return Doc(self.vocab, words=words, spaces=spaces)


# --------------------------------------------------------------------------- #
# Gazetteer
# --------------------------------------------------------------------------- #

PRODUCT_TERMS: Dict[str, Dict[str, List[str]]] = {
    "air_conditioner": {
        "zh": ["空调", "挂机", "柜机", "空掉", "空凋", "冷气机", "空调机", "中央空调"],
        "en": [
            "aircon", "aircons", "air con", "air-con", "air conditioner",
            "air conditioners", "air conditioning", "airconditioner",
            "air conditionor", "air condition", "ac", "a/c", "a / c", "ac unit", "ac units",
            "a/c unit", "aircon unit", "air con unit",
        ],
    },
    "fridge": {
        "zh": ["冰箱", "冰相", "冰柜", "雪柜", "冷柜", "电冰箱"],
        "en": [
            "fridge", "fridges", "frig", "frige", "refrigerator", "refrigerators",
            "refridgerator", "refrigirator", "freezer", "freezers",
        ],
    },
    "washing_machine": {
        "zh": ["洗衣机", "滚筒", "波轮", "洗衣几", "洗依机", "滚筒洗衣机", "波轮洗衣机"],
        "en": [
            "washer", "washers", "washing machine", "washing machines",
            "washing mashine", "washin machine", "washer dryer",
        ],
    },
    "water_heater": {
        "zh": ["热水器", "电热水器", "燃气热水器", "热水炉"],
        "en": ["water heater", "water heaters", "waterheater", "boiler", "boilers"],
    },
    "tv": {
        "zh": ["电视", "电视机", "彩电", "液晶电视"],
        "en": ["tv", "tvs", "television", "televisions", "televison", "telly"],
    },
    "range_hood": {
        "zh": ["油烟机", "抽油烟机", "吸油烟机", "烟机"],
        "en": [
            "range hood", "range hoods", "rangehood", "cooker hood", "cooker hoods",
            "extractor", "extractor hood", "extractor fan", "kitchen hood",
        ],
    },
    "dishwasher": {
        "zh": ["洗碗机"],
        "en": ["dishwasher", "dishwashers", "dish washer", "dish washers", "dishwaser"],
    },
    "gas_hob": {
        "zh": ["燃气灶", "煤气灶", "灶具", "天然气灶"],
        "en": ["gas hob", "gas hobs", "gas stove", "gas stoves", "gas cooker", "gas cooktop", "hob",
               "hobs", "cooktop", "gas burner"],
    },
    "microwave": {
        "zh": ["微波炉"],
        "en": ["microwave", "microwaves", "microwave oven", "microwve"],
    },
}

# --------------------------------------------------------------------------- #
# Token patterns (spaCy Matcher)
# --------------------------------------------------------------------------- #

_SEP_OPT = {"TEXT": {"REGEX": r"^(?:-|\s+)$"}, "OP": "?"}
_DASH_OPT = {"ORTH": "-", "OP": "?"}


def _phone_patterns() -> List[List[Dict[str, Any]]]:
    prefixes: List[List[Dict[str, Any]]] = [
        [],
        [{"ORTH": "+"}, {"ORTH": "86"}, _SEP_OPT],
        [{"ORTH": "0086"}, _SEP_OPT],
        [{"ORTH": "("}, {"ORTH": "+", "OP": "?"}, {"ORTH": "86"}, {"ORTH": ")"}, _SEP_OPT],
    ]
    head3 = {"TEXT": {"REGEX": r"^1[3-9]\d$"}}
    bodies: List[List[Dict[str, Any]]] = [
        [{"TEXT": {"REGEX": r"^1[3-9]\d{9}$"}}],
        [head3, _SEP_OPT, {"TEXT": {"REGEX": r"^\d{4}$"}}, _SEP_OPT, {"TEXT": {"REGEX": r"^\d{4}$"}}],
        [head3, _SEP_OPT, {"TEXT": {"REGEX": r"^\d{8}$"}}],
    ]
    patterns = [p + b for p in prefixes for b in bodies]
    patterns.append([{"ORTH": "+"}, {"TEXT": {"REGEX": r"^861[3-9]\d{9}$"}}])
    patterns.append([{"TEXT": {"REGEX": r"^00861[3-9]\d{9}$"}}])
    return patterns


def _order_patterns() -> List[List[Dict[str, Any]]]:
    return [
        [{"LOWER": {"REGEX": r"^(?:jd|tm|so)\d{10,16}$"}}],
        [
            {"LOWER": {"IN": ["jd", "tm", "so"]}},
            {"TEXT": {"REGEX": r"^[-:#]$"}, "OP": "?"},
            {"TEXT": {"REGEX": r"^\d{10,16}$"}},
        ],
        [{"TEXT": {"REGEX": r"^\d{10,20}$"}}],
    ]


def _ticket_patterns() -> List[List[Dict[str, Any]]]:
    d4 = {"TEXT": {"REGEX": r"^\d{4}$"}}
    return [
        [{"LOWER": "sv"}, _DASH_OPT, {"TEXT": {"REGEX": r"^\d{8}$"}}, _DASH_OPT, d4],
        [{"LOWER": "sv"}, _DASH_OPT, {"TEXT": {"REGEX": r"^\d{12}$"}}],
        [{"LOWER": {"REGEX": r"^sv\d{8}$"}}, _DASH_OPT, d4],
        [{"LOWER": {"REGEX": r"^sv\d{12}$"}}],
    ]


# Model codes as manufacturers print them: letters and digits in segments joined by "-", "/", "." and brackets,
# mixed case, up to MODEL_MAX characters (KFR-35GW/(35592)FNhAa-A1, EG100MATE55, XQB80-Z3078, KFR-35GW/NhGc1).
MODEL_MAX = 30
_MODEL_RUN_RE = re.compile(r"(?<![A-Za-z0-9\-/.])[A-Za-z0-9(][A-Za-z0-9()\-/.+]*[A-Za-z0-9)+]")
_MODEL_SEGMENT_SPLIT_RE = re.compile(r"[-/.()+]+")


def _strip_brackets(raw: str) -> str:
    """"(KFR-35GW)" -> "KFR-35GW"; brackets that open and close inside a code stay."""
    while raw and raw[0] == "(" and raw.count("(") > raw.count(")"):
        raw = raw[1:]
    while raw and raw[-1] == ")" and raw.count(")") > raw.count("("):
        raw = raw[:-1]
    if raw.startswith("(") and raw.endswith(")") and raw.count("(") == 1 and raw.count(")") == 1:
        raw = raw[1:-1]
    return raw


def model_code(raw: str) -> Optional[str]:
    """The code as written when it is plausibly a model code, else None. Letters and digits both, at least one
    capital, no word in lower case ("floor" in "1st-floor"), no 9-digit run (phones, order numbers), nothing that
    is a unit, a time, a standard or a ticket number (220V, 3pm, WIFI6, SV-20261122-0042)."""
    code = _strip_brackets((raw or "").strip())
    if not 4 <= len(code) <= MODEL_MAX or code.count("(") != code.count(")"):
        return None
    if not re.fullmatch(r"[A-Za-z0-9(][A-Za-z0-9()\-/.+]*[A-Za-z0-9)+]", code):
        return None
    if not re.search(r"[A-Z]", code) or not re.search(r"\d", code) or re.search(r"\d{9,}", code):
        return None
    segments = [seg for seg in _MODEL_SEGMENT_SPLIT_RE.split(code) if seg]
    if any(seg.isalpha() and seg.islower() and len(seg) >= 2 for seg in segments):
        return None
    if re.search(r"[a-z]", code) and segments[0].isalpha() and (segments[0].istitle() or segments[0].islower()):
        return None  # "No.5", "Room-302", "Rm.12"
    if _MODEL_REJECT_RE.match(code.upper()) or _MODEL_REJECT_RE.match(re.sub(r"[()]", "", code.upper())):
        return None
    return code


def _model_candidates(text: str) -> List[Tuple[int, int, str]]:
    out = []
    for match in _MODEL_RUN_RE.finditer(text):
        raw = match.group()
        code = model_code(raw)
        if code is not None:
            start = match.start() + raw.index(code)
            out.append((start, start + len(code), code))
    return out


_NUM_WORDS = (
    "a|an|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|"
    "fifteen|twenty|thirty|couple|few|several"
)
_TIME_UNITS = [
    "minute", "minutes", "min", "mins", "hour", "hours", "hr", "hrs", "day", "days",
    "week", "weeks", "wk", "wks", "month", "months", "year", "years", "yr", "yrs",
]
_WEEKDAYS = [
    "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday",
    "mondays", "tuesdays", "wednesdays", "thursdays", "fridays", "saturdays", "sundays",
]
_WEEKDAY_ABBR = ["mon", "tue", "tues", "wed", "thu", "thur", "thurs", "fri", "sat", "sun"]
_MONTHS = [
    "january", "february", "march", "april", "may", "june", "july", "august",
    "september", "october", "november", "december",
    "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec",
]
_MODS = ["next", "this", "last", "coming", "previous", "past"]
_DAY_PREPS = ["on", "by", "until", "till", "til", "before", "after", "since", "from"]
_TIME_PREPS = ["at", "after", "before", "by", "around", "about", "from", "until", "till", "since", "@"]
_PODS = ["morning", "afternoon", "evening", "night", "noon", "tonight"]


def _date_time_patterns() -> Dict[str, List[List[Dict[str, Any]]]]:
    hour12 = {"TEXT": {"REGEX": r"^(?:0?[1-9]|1[0-2])$"}}
    hour24 = {"TEXT": {"REGEX": r"^(?:[01]?\d|2[0-3])$"}}
    ampm = {"LOWER": {"IN": ["am", "pm"]}}
    num = {"LOWER": {"REGEX": rf"^(?:\d+|{_NUM_WORDS})$"}}
    unit = {"LOWER": {"IN": _TIME_UNITS}}
    daynum = {"LOWER": {"REGEX": r"^(?:0?[1-9]|[12]\d|3[01])(?:st|nd|rd|th)?$"}}
    year = {"TEXT": {"REGEX": r"^(?:19|20)\d\d$"}}
    # "may" is a modal verb: with a day number it must be capitalised ("May 5th")
    month_not_may = {"LOWER": {"IN": [m for m in _MONTHS if m != "may"]}}
    month_cased = {"ORTH": {"IN": ["May", "MAY"]}}
    month = {"LOWER": {"IN": _MONTHS}}
    time_prep_opt = {"LOWER": {"IN": _TIME_PREPS}, "OP": "?"}
    day_prep_opt = {"LOWER": {"IN": _DAY_PREPS}, "OP": "?"}
    date_sep = {"ORTH": {"IN": ["-", "/", "."]}}

    times: List[List[Dict[str, Any]]] = [
        [{"LOWER": {"REGEX": r"^(?:0?[1-9]|1[0-2])(?:am|pm)$"}}],
        [hour12, ampm],
        [hour12, {"LOWER": "p"}, {"ORTH": "."}, {"LOWER": "m"}, {"ORTH": ".", "OP": "?"}],
        [hour12, {"LOWER": "a"}, {"ORTH": "."}, {"LOWER": "m"}, {"ORTH": ".", "OP": "?"}],
        [hour24, {"ORTH": ":"}, {"LOWER": {"REGEX": r"^[0-5]\d(?:am|pm)?$"}}, {**ampm, "OP": "?"}],
        [hour12, {"LOWER": "o"}, {"ORTH": {"IN": ["'", "\u2019"]}}, {"LOWER": "clock"}],
        [hour12, {"LOWER": "oclock"}],
        [{"LOWER": {"IN": ["noon", "midnight", "midday"]}}],
    ]
    strong: List[List[Dict[str, Any]]] = [[time_prep_opt] + t for t in times]
    # ranges: between 2 and 4pm / from 2 to 4 pm / 2-4pm
    hour_tok = {"LOWER": {"REGEX": r"^(?:0?[1-9]|1[0-2])(?:am|pm)?$"}}
    strong += [
        [{"LOWER": {"IN": ["between", "from"]}}, hour_tok, {**ampm, "OP": "?"},
         {"LOWER": {"IN": ["and", "to", "-"]}}, hour_tok, {**ampm, "OP": "?"}],
        [hour12, {"ORTH": "-"}, {"LOWER": {"REGEX": r"^(?:0?[1-9]|1[0-2])(?:am|pm)$"}}],
    ]
    # relative days
    strong += [
        [day_prep_opt, {"LOWER": {"IN": [
            "today", "tomorrow", "tmr", "tmrw", "tomorow", "tommorow", "tommorrow",
            "yesterday", "tonight", "tonite"]}}],
        [day_prep_opt, {"LOWER": "the", "OP": "?"}, {"LOWER": "day"},
         {"LOWER": {"IN": ["after", "before"]}}, {"LOWER": {"IN": ["tomorrow", "yesterday"]}}],
    ]
    # weekdays
    strong += [
        [day_prep_opt, {"LOWER": {"IN": _MODS}, "OP": "*"}, {"LOWER": {"IN": _WEEKDAYS}}],
        [day_prep_opt, {"LOWER": {"IN": _MODS}, "OP": "+"}, {"LOWER": {"IN": _WEEKDAY_ABBR}}],
    ]
    # periods
    periods = ["week", "weekend", "month", "year", "morning", "afternoon", "evening",
               "night", "quarter", "weekends"]
    strong += [
        [{"LOWER": {"IN": _DAY_PREPS + ["over", "during", "in"]}, "OP": "?"},
         {"LOWER": {"IN": ["early", "late", "mid"]}, "OP": "?"},
         {"LOWER": {"IN": _MODS}}, {"LOWER": {"IN": periods}}],
        [{"LOWER": {"IN": ["in", "on", "over", "during", "at", "this"]}, "OP": "?"},
         {"LOWER": "the"}, {"LOWER": {"IN": ["morning", "afternoon", "evening", "weekend"]}}],
        [{"LOWER": {"IN": ["at", "on", "over"]}}, {"LOWER": {"IN": ["night", "weekend", "weekends"]}}],
        [{"LOWER": {"IN": _DAY_PREPS + ["at", "in"]}, "OP": "?"}, {"LOWER": "the", "OP": "?"},
         {"LOWER": {"IN": ["end", "beginning", "start", "middle"]}}, {"LOWER": "of"},
         {"LOWER": {"IN": ["the", "this", "next", "last"]}, "OP": "?"},
         {"LOWER": {"IN": ["week", "month", "year"] + _MONTHS}}],
    ]
    # relative offsets
    strong += [
        [{"LOWER": "in"}, num, unit],
        [{"LOWER": "in"}, {"LOWER": "a"}, {"LOWER": {"IN": ["couple", "few"]}},
         {"LOWER": "of", "OP": "?"}, unit],
        [num, unit, {"LOWER": {"IN": ["ago", "later", "earlier"]}}],
        [{"LOWER": "a"}, {"LOWER": {"IN": ["couple", "few"]}}, {"LOWER": "of", "OP": "?"}, unit,
         {"LOWER": {"IN": ["ago", "later"]}}],
        [num, unit, {"LOWER": "from"}, {"LOWER": "now"}],
    ]
    # calendar dates
    strong += [
        *[[day_prep_opt, m, daynum, {"ORTH": ",", "OP": "?"}, {**year, "OP": "?"}]
          for m in (month_not_may, month_cased)],
        [day_prep_opt, {"LOWER": "the", "OP": "?"}, daynum, {"LOWER": "of", "OP": "?"}, month,
         {**year, "OP": "?"}],
        [{"LOWER": {"IN": _MODS + ["in", "since", "until", "before", "after", "by", "early",
                                   "late", "mid", "during"]}}, month],
        [month_not_may, year],
        [{"LOWER": {"IN": ["in", "since", "during", "from", "by", "before", "after", "until"]}}, year],
        [year, date_sep, {"TEXT": {"REGEX": r"^(?:0?[1-9]|1[0-2])$"}}, date_sep,
         {"TEXT": {"REGEX": r"^(?:0?[1-9]|[12]\d|3[01])$"}}],
        [{"TEXT": {"REGEX": r"^\d{1,2}$"}}, date_sep, {"TEXT": {"REGEX": r"^\d{1,2}$"}},
         date_sep, year],
    ]
    weak: List[List[Dict[str, Any]]] = [
        [{"LOWER": {"IN": _PODS}}],
        [{"LOWER": {"IN": ["at", "around", "after", "before", "by", "@"]}}, hour24],
        [{"LOWER": {"IN": ["in", "at"]}}, {"LOWER": "the"}, {"LOWER": "night"}],
    ]
    return {"DT": strong, "DT_WEAK": weak}


# --------------------------------------------------------------------------- #
# Chinese date/time (character level regexes)
# --------------------------------------------------------------------------- #

_CN_D = "[零〇一二两三四五六七八九十]"
_CN_N12 = rf"(?:\d{{1,2}}|{_CN_D}{{1,3}})"
_ZH_DT_UNITS: List[Tuple[str, str]] = [
    ("strong", r"大后天|大前天|后天|前天|今天|明天|昨天|今日|明日|昨日|今晚|明晚|昨晚|今早|明早|今夜"
               r"|明儿|今儿|当天|次日|隔天"),
    ("strong", r"(?:下下|上上|这|本|下|上)?个?(?:周|星期|礼拜)[一二三四五六日天1-7]"),
    ("strong", r"(?:下下|上上|这|本|下|上)个?(?:周末|周|星期|礼拜|月)|周末"),
    ("strong", r"(?:(?:这个|本|下个|上个|下|上)?月|年)(?:底|初|中旬|末|中)"),
    ("strong", r"大前年|去年|今年|明年|前年|后年"),
    ("strong", r"双十一|双11|双十二|双12|春节|国庆节?|五一|元旦|中秋节?|端午节?|清明节?|圣诞节?"
               r"|过年|除夕|年三十"),
    ("strong", r"(?:(?<!\d)(?:\d{4}|[〇零一二三四五六七八九]{4})年)?"
               r"(?<!\d)(?:\d{1,2}|[一二三四五六七八九十]{1,3})月份?"
               r"(?:(?:\d{1,2}|[一二三四五六七八九十]{1,3})[日号])?"),
    ("strong", r"(?<!\d)(?:\d{4}|[〇零一二三四五六七八九]{4})年"),
    # parts of the day; not the greetings 早上好/下午好/晚上好
    ("strong", r"(?:早上|上午|中午|下午|傍晚|晚上|夜里|夜间|凌晨|早晨|白天|半夜|深夜|晚间|午后|清晨"
               r"|全天|整天|一整天)(?!好)"),
    ("clock", rf"(?<![\d.]){_CN_N12}(?:点|时)(?:半|一刻|三刻|{_CN_N12}分?)?钟?"),
    ("strong", rf"(?<!\d)(?:\d+|[一二两三四五六七八九十半几]+)个?多?"
               rf"(?:天|周|星期|礼拜|月|年|小时|钟头|分钟)半?(?:以后|之后|以前|之前|后|前)"),
    ("strong", r"过(?:\d+|[一二两三四五六七八九十几]+)(?:天|周|个星期|星期|个月|礼拜)"),
    ("strong", r"最近(?!的)|近期|这两天|这几天|前几天|前两天"),
    ("weak", r"(?<!\d)(?:\d{1,2}|[一二三四五六七八九十]{1,3})[日号](?!线)"),
    ("weak", r"(?<!\d)618(?!\d)"),
]
_ZH_QUAL_LONG = ("以后", "之后", "以前", "之前", "前后", "左右", "以内", "之内", "之间")
_ZH_QUAL_SHORT = ("前", "后", "内", "起")
_ZH_QUAL_FOLLOW_OK = set("的来去到给可能要都就再我你他她吧呢啊呀送装修过联回打处办完搞弄派上门会")
_DT_LEADING_LOCATOR_RE = re.compile(
    r"(?:on|from|over|during|in(?=\s+(?:(?:19|20)\d\d\b|" + "|".join(_MONTHS) + r")))\s+", re.I
)
_DT_GAP_RE = re.compile(r"^(?:\s*|\s*(?:,|，|的|at|on|around|about|@)\s*)$", re.I)

# --------------------------------------------------------------------------- #
# Validation helpers
# --------------------------------------------------------------------------- #

_PHONE_CORE_RE = re.compile(r"^1[3-9]\d{9}$")
_MODEL_REJECT_RE = re.compile(
    r"^(?:\d{1,2}(?:AM|PM)"
    r"|\d+(?:\.\d+)?(?:[KMGT]?B|[KM]?W|KWH|V|HZ|L|ML|KG|G|CM|MM|M|INCH|IN|HP|P|K|MAH|A"
    r"|MIN|MINS|H|HR|HRS|S|X|ST|ND|RD|TH|D|DAYS?|GHZ|MHZ)"
    r"|WIFI\d*|WI-FI\d*|COVID-?19|MP[345]|H\.?26[45]|USB.*|IPV[46]|PM2\.5|CO2|[2345]G|LTE\d*"
    r"|SV-?\d{8}.*)$"
)

_PRIORITY = {
    "ticket_number": 0,
    "phone": 1,
    "order_id": 2,
    "product_model": 3,
    "date_time": 4,
    "product": 5,
}


def _valid_ticket(digits: str) -> bool:
    if len(digits) != 12:
        return False
    try:
        _dt.date(int(digits[:4]), int(digits[4:6]), int(digits[6:8]))
    except ValueError:
        return False
    return 2000 <= int(digits[:4]) <= 2099


def _char(text: str, i: int) -> str:
    return text[i] if 0 <= i < len(text) else ""


# --------------------------------------------------------------------------- #
# Pipeline
# --------------------------------------------------------------------------- #


class EntityPipeline:
    """A blank spaCy pipeline with a mixed-script tokenizer and entity matchers."""

    def __init__(self) -> None:
        import spacy
        from spacy.matcher import Matcher, PhraseMatcher

        self.nlp = spacy.blank("xx")
        self.nlp.tokenizer = MixedScriptTokenizer(self.nlp.vocab)
        self.matcher = Matcher(self.nlp.vocab, validate=True)
        self.matcher.add("ticket_number", _ticket_patterns())
        self.matcher.add("phone", _phone_patterns())
        self.matcher.add("order_id", _order_patterns())
        for label, patterns in _date_time_patterns().items():
            self.matcher.add(label, patterns)
        self.phrase_matcher = PhraseMatcher(self.nlp.vocab, attr="LOWER")
        for category, by_lang in PRODUCT_TERMS.items():
            terms = sorted({t for ts in by_lang.values() for t in ts})
            self.phrase_matcher.add(category, [self.nlp.make_doc(t) for t in terms])
        self._zh_units = [(kind, re.compile(rx)) for kind, rx in _ZH_DT_UNITS]
        self._lock = threading.Lock()

    # -- public -------------------------------------------------------------- #

    def extract(self, text: str) -> List[Dict[str, Any]]:
        if not text or not text.strip():
            return []
        norm = normalize_width(text)
        with self._lock:  # spaCy matchers are not guaranteed to be thread-safe
            doc = self.nlp.make_doc(norm)
            matches = self.matcher(doc)
            phrase_matches = self.phrase_matcher(doc)
        strings = self.nlp.vocab.strings

        candidates: List[Tuple[int, int, str, str]] = []
        dt_strong: List[Tuple[int, int]] = []
        dt_weak: List[Tuple[int, int]] = []
        for match_id, start, end in matches:
            label = strings[match_id]
            span = doc[start:end]
            s, e = span.start_char, span.end_char
            if label == "DT":
                dt_strong.append((s, e))
            elif label == "DT_WEAK":
                dt_weak.append((s, e))
            else:
                value = self._validate(label, norm, s, e)
                if value is not None:
                    candidates.append((s, e, label, value))
        candidates += [(ms, me, "product_model", value) for ms, me, value in _model_candidates(norm)]
        candidates += [(ps, pe, "phone", value) for ps, pe, value in find_numbers(norm)]
        for match_id, start, end in phrase_matches:
            span = doc[start:end]
            candidates.append((span.start_char, span.end_char, "product", strings[match_id]))

        zs, zw = self._zh_date_units(norm)
        for s, e in self._merge_date_time(norm, dt_strong + zs, dt_weak + zw):
            candidates.append((s, e, "date_time", text[s:e]))

        chosen = self._resolve(candidates)
        return [
            {"entity": label, "value": value, "start": s, "end": e, "text": text[s:e]}
            for s, e, label, value in chosen
        ]

    # -- validation ---------------------------------------------------------- #

    def _validate(self, label: str, text: str, s: int, e: int) -> Optional[str]:
        raw = text[s:e]
        if label == "phone":
            return self._validate_phone(text, raw, s, e)
        if label == "order_id":
            return self._validate_order(text, raw, s, e)
        if label == "ticket_number":
            digits = re.sub(r"\D", "", raw)
            if not _valid_ticket(digits) or _char(text, e).isdigit():
                return None
            return f"SV-{digits[:8]}-{digits[8:]}"
        return None

    @staticmethod
    def _validate_phone(text: str, raw: str, s: int, e: int) -> Optional[str]:
        digits = re.sub(r"\D", "", raw)
        if raw.startswith("0086"):
            digits = digits[4:]
        elif raw.lstrip("(+").startswith("86"):
            digits = digits[2:]
        if not _PHONE_CORE_RE.match(digits):
            return None
        before, after = _char(text, s - 1), _char(text, e)
        if before.isdigit() or after.isdigit():
            return None
        # part of a longer dash-joined digit chain (e.g. 138-1234-5678-9)
        if (before == "-" and _char(text, s - 2).isdigit()) or (
            after == "-" and _char(text, e + 1).isdigit()
        ):
            return None
        return "+86" + digits

    @staticmethod
    def _validate_order(text: str, raw: str, s: int, e: int) -> Optional[str]:
        compact = re.sub(r"[\s\-:#]", "", raw).upper()
        m = re.match(r"^(JD|TM|SO)?(\d+)$", compact)
        if not m:
            return None
        prefix, digits = m.group(1), m.group(2)
        before = _char(text, s - 1)
        if prefix:
            if not 10 <= len(digits) <= 16:
                return None
            # "so 1234567890": lowercase "so" separated by a space is the English word
            if raw[:2] == "so" and raw[2:3].isspace():
                return None
        else:
            if not 10 <= len(digits) <= 20:
                return None
            if _PHONE_CORE_RE.match(digits) or (digits.startswith("0086") and _PHONE_CORE_RE.match(digits[4:])):
                return None
            if before == "+" or (before == "-" and _char(text, s - 2).isalnum()):
                return None
        if _char(text, e) == "-" and _char(text, e + 1).isalnum():
            return None
        return (prefix or "") + digits

    # -- date/time ----------------------------------------------------------- #

    def _zh_date_units(self, text: str) -> Tuple[List[Tuple[int, int]], List[Tuple[int, int]]]:
        if not _HAN_RE.search(text) and "618" not in text:
            return [], []
        strong: List[Tuple[int, int]] = []
        weak: List[Tuple[int, int]] = []
        for kind, rx in self._zh_units:
            for m in rx.finditer(text):
                if m.end() <= m.start():
                    continue
                if kind == "clock":
                    # "一点" is usually "a little" (快一点), only a time next to other units
                    (weak if m.group() == "一点" else strong).append(m.span())
                else:
                    (strong if kind == "strong" else weak).append(m.span())
        return strong, weak

    @staticmethod
    def _merge_date_time(
        text: str, strong: Iterable[Tuple[int, int]], weak: Iterable[Tuple[int, int]]
    ) -> List[Tuple[int, int]]:
        def union(spans: List[Tuple[int, int]]) -> List[List[int]]:
            out: List[List[int]] = []
            for s, e in sorted(spans):
                if out and (s <= out[-1][1] or _DT_GAP_RE.match(text[out[-1][1]:s])):
                    out[-1][1] = max(out[-1][1], e)
                else:
                    out.append([s, e])
            return out

        merged = union(list(strong))
        if not merged:
            return []
        weak_left = sorted(set(weak))
        changed = True
        while changed and weak_left:
            changed = False
            for w in list(weak_left):
                ws, we = w
                for m in merged:
                    touches = (
                        (ws <= m[1] and we >= m[0])
                        or (ws >= m[1] and _DT_GAP_RE.match(text[m[1]:ws]))
                        or (we <= m[0] and _DT_GAP_RE.match(text[we:m[0]]))
                    )
                    if touches:
                        merged = union([tuple(x) for x in merged] + [w])
                        weak_left.remove(w)
                        changed = True
                        break
        result = []
        for s, e in merged:
            # strip gap characters that may have been absorbed at the edges
            while e > s and text[e - 1] in " ,，":
                e -= 1
            # pure locator prepositions are not part of the expression ("on Friday");
            # meaningful ones are kept ("after 6pm", "by Friday", "in two days")
            lead = _DT_LEADING_LOCATOR_RE.match(text, s, e)
            if lead and lead.end() < e:
                s = lead.end()
            e = EntityPipeline._attach_zh_qualifier(text, e)
            result.append((s, e))
        return result

    @staticmethod
    def _attach_zh_qualifier(text: str, end: int) -> int:
        rest = text[end:]
        for q in _ZH_QUAL_LONG:
            if rest.startswith(q):
                return end + len(q)
        for q in _ZH_QUAL_SHORT:
            if rest.startswith(q):
                nxt = _char(text, end + len(q))
                if not nxt or not _HAN_RE.match(nxt) or nxt in _ZH_QUAL_FOLLOW_OK:
                    return end + len(q)
        return end

    # -- overlap resolution -------------------------------------------------- #

    @staticmethod
    def _resolve(candidates: List[Tuple[int, int, str, str]]) -> List[Tuple[int, int, str, str]]:
        ranked = sorted(
            set(candidates), key=lambda c: (-(c[1] - c[0]), _PRIORITY[c[2]], c[0])
        )
        chosen: List[Tuple[int, int, str, str]] = []
        for cand in ranked:
            if all(cand[1] <= c[0] or cand[0] >= c[1] for c in chosen):
                chosen.append(cand)
        return sorted(chosen, key=lambda c: (c[0], c[1]))


_PIPELINE_LOCK = threading.Lock()


@functools.lru_cache(maxsize=1)
def _build_pipeline() -> EntityPipeline:
    return EntityPipeline()


def get_pipeline() -> EntityPipeline:
    """Returns the (lazily built, process-wide) entity pipeline."""
    with _PIPELINE_LOCK:
        return _build_pipeline()


def extract_entities(text: str) -> List[Dict[str, Any]]:
    """Extracts phone, order_id, ticket_number, product_model, product and date_time.

    Each entity is ``{"entity", "value", "start", "end", "text"}`` with character
    offsets into ``text``; overlapping candidates are resolved longest-first, ties by
    ticket_number > phone > order_id > product_model > date_time > product.
    """
    if not isinstance(text, str):
        return []
    return get_pipeline().extract(text)
