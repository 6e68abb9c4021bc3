"""Bilingual (Chinese + English) date/time expression parser for booking preferences and purchase dates.
Pure standard library; every result is expressed in the tzinfo of the ``now`` the caller supplies."""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

__all__ = ["When", "TimeParseError", "parse_when", "parse_date"]

# Conventions (see also the report / tests):
# * Weeks start on Monday.  "下周三"/"next Wednesday" = Wednesday of the next calendar week;
#   "周三"/"这周三"/"this Wednesday" = the coming Wednesday (today if today is Wednesday and the
#   requested window has not fully passed).  "下下周三" = two calendar weeks ahead.
# * "周末"/"this weekend" = Saturday 00:00 .. Monday 00:00 of the current week (clipped to now on
#   Saturday/Sunday); from Sunday 18:00 onwards it means the following weekend.  "下周末"/"next
#   weekend" = the weekend of the next calendar week.
# * A bare clock hour without am/pm or a part of day: 1-7 -> afternoon/evening (+12h), 8-12 as is.
# * After T = T .. 21:00 (T .. 24:00 when T >= 21:00).  Before T = 08:00 .. T (or the start of the
#   named part of day, e.g. 下午三点前 = 13:00-15:00).  An exact time = a one-hour window.
# * With no day given, a window is placed today if it has not fully passed (exact times: if the
#   start is still ahead), otherwise tomorrow.
# * Chinese "X前/之前/以前" (X a day, weekday, week ...) = from now until the END of X (inclusive,
#   like 月底前); English "by/until X" = the same, English "before X" = until the START of X.
#   "X以后/之后/起", "from X" = X 00:00 .. +14 days; English "after X" = the day after X .. +14 days.
# * Several separate days ("周二或周四") give one window from the earliest start to the latest end;
#   weekdays inside that span (<= 7 days) which were not mentioned are added to excluded_weekdays.
# * Excluded weekdays trim the window's first/last days; if nothing else is given the window is
#   now .. now + 14 days.

_SERVICE_START = 8 * 60      # earliest time meant by "before X"
_SERVICE_END = 21 * 60       # latest time meant by "after X"
_DEFAULT_SPAN = timedelta(days=14)
_OPEN_SPAN = timedelta(days=14)

_PART_WIN = {
    "morning": (9 * 60, 12 * 60),
    "noon": (12 * 60, 14 * 60),
    "afternoon": (13 * 60, 18 * 60),
    "dusk": (17 * 60, 19 * 60),
    "evening": (18 * 60, 21 * 60),
    "early": (0, 6 * 60),
    "daytime": (9 * 60, 18 * 60),
}
# (clock time meant by "before <part>", clock time meant by "after <part>")
_PART_EDGE = dict(_PART_WIN, noon=(12 * 60, 12 * 60))


@dataclass(frozen=True)
class When:
    """A preferred time window.  ``start`` inclusive, ``end`` exclusive, both tz-aware."""

    start: datetime
    end: datetime
    excluded_weekdays: frozenset[int] = frozenset()
    text: str = ""
    # "time" (exact clock time), "time_range", "part_of_day", "day", "range" (several days)
    granularity: str = ""
    # For multi-day windows restricted to a time of day ("下周晚上"): the daily (start, end).
    daily: tuple[time, time] | None = None


class TimeParseError(ValueError):
    """Recognisably a date/time expression, but unusable.  Branch on ``code``."""

    CODES = ("invalid_date", "invalid_time", "past", "future", "unrecognised")

    def __init__(self, code: str, message: str | None = None):
        if code not in self.CODES:
            raise ValueError(f"unknown TimeParseError code {code!r}")
        super().__init__(message or code)
        self.code = code


# --------------------------------------------------------------------------- normalisation

_CHAR_MAP = str.maketrans({
    "點": "点", "時": "时", "號": "号", "禮": "礼", "後": "后", "週": "周", "兩": "两", "這": "这",
    "個": "个", "鐘": "钟", "間": "间", "從": "从", "開": "开", "僅": "仅", "沒": "没", "預": "预",
    "約": "约", "麼": "么", "們": "们", "內": "内", "髮": "发", "裡": "里", "節": "节", "誕": "诞",
    "慶": "庆", "雙": "双", "‘": "'", "’": "'", "′": "'", "“": '"', "”": '"', "　": " ",
    "～": "~", "〜": "~", "–": "-", "—": "-", "至": "至",
})

_SLANG = [
    (re.compile(r"\b(?:tmrw|tmr|tmrow|tmro|tmoro|tmorrow|tomorow|tommorow|tommorrow|tomorrw|"
                r"tomoz|2moro|2morrow|2morow|2mrw|2mro|2mora)\b"), "tomorrow"),
    (re.compile(r"\b(?:tonite|2nite|2night|tonigh)\b"), "tonight"),
    (re.compile(r"\b(?:yday|ystd|ystrdy|yest)\b"), "yesterday"),
    (re.compile(r"\b(?:wknd|wkend|w/e)\b"), "weekend"),
    (re.compile(r"\barvo\b"), "afternoon"),
    (re.compile(r"\bnxt\b"), "next"),
    (re.compile(r"\bthru\b"), "through"),
    (re.compile(r"\b([ap])\.m\.?"), r"\1m"),
    (re.compile(r"\b([ap])\.m\b"), r"\1m"),
    (re.compile(r"\bo'?clock\b"), "oclock"),
]


class _Text:
    """Normalised, lower-cased text that remembers where each character came from."""

    def __init__(self, original: str):
        self.orig = original
        chars: list[str] = []
        pos: list[int] = []
        for i, c in enumerate(original):
            n = unicodedata.normalize("NFKC", c.translate(_CHAR_MAP)).lower()
            for ch in n:
                chars.append(ch)
                pos.append(i)
        self.s = "".join(chars)
        self.pos = pos
        for pat, rep in _SLANG:
            self._sub(pat, rep)

    def _sub(self, pat: re.Pattern, rep: str) -> None:
        out: list[str] = []
        opos: list[int] = []
        last = 0
        for m in pat.finditer(self.s):
            out.append(self.s[last:m.start()])
            opos.extend(self.pos[last:m.start()])
            r = m.expand(rep)
            out.append(r)
            opos.extend([self.pos[m.start()]] + [self.pos[m.end() - 1]] * (len(r) - 1))
            last = m.end()
        if not out:
            return
        out.append(self.s[last:])
        opos.extend(self.pos[last:])
        self.s = "".join(out)
        self.pos = opos

    def blank(self, s: int, e: int) -> None:
        self.s = self.s[:s] + " " * (e - s) + self.s[e:]

    def original(self, s: int, e: int) -> str:
        if s >= e:
            return ""
        return self.orig[self.pos[s]:self.pos[e - 1] + 1].strip()


# --------------------------------------------------------------------------- numbers

_CNN = "零〇一二两三四五六七八九十"
_CN_DIGIT = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5,
             "六": 6, "七": 7, "八": 8, "九": 9}
_EN_NUM = {
    "a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "fifteen": 15, "twenty": 20,
    "thirty": 30, "couple": 2, "a couple": 2, "a couple of": 2, "couple of": 2, "a few": 3,
    "few": 3, "half a": 0.5, "half an": 0.5, "half": 0.5, "半": 0.5,
}
_EN_WORDS = "one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve"


def _num(s: str | None) -> float | int | None:
    if s is None:
        return None
    s = re.sub(r"\s+", " ", s.strip())
    if s.isascii() and s.isdigit():
        return int(s)
    if s in _EN_NUM:
        return _EN_NUM[s]
    try:
        if "十" in s:
            a, _, b = s.partition("十")
            if "十" in b or len(a) > 1 or len(b) > 1:
                return None
            return (_CN_DIGIT[a] if a else 1) * 10 + (_CN_DIGIT[b] if b else 0)
        return int("".join(str(_CN_DIGIT[c]) for c in s))
    except KeyError:
        return None


# --------------------------------------------------------------------------- patterns

_EN_COUNT = (rf"(?:\d{{1,3}}|half\s+an?|a\s+couple(?:\s+of)?|couple\s+of|a\s+few|few|an|a|"
             rf"{_EN_WORDS}|fifteen|twenty|thirty)")
_MONTHS_EN = (r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|"
              r"sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)")
_MONTH_IDX = {m: i for i, m in enumerate(
    ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], 1)}
_WD_EN = (r"(?:mon(?:day)?|tue(?:s(?:day)?)?|wed(?:s|nesday)?|thu(?:r(?:s(?:day)?)?)?|fri(?:day)?|"
          r"sat(?:urday)?|sun(?:day)?)")
_WD_EN_IDX = {"mon": 0, "tue": 1, "wed": 2, "thu": 3, "fri": 4, "sat": 5, "sun": 6}
_WD_CN_IDX = {"一": 0, "二": 1, "三": 2, "四": 3, "五": 4, "六": 5, "日": 6, "天": 6, "七": 6,
              "1": 0, "2": 1, "3": 2, "4": 3, "5": 4, "6": 5, "7": 6}
_MOD_CN = r"(?:下下个?|下个?|这一?个?|本|上上个?|上个?)"
_CN_DAY_WORDS = {
    "今天": 0, "今日": 0, "今儿": 0, "今儿个": 0, "明天": 1, "明日": 1, "明儿": 1, "明儿个": 1,
    "后天": 2, "大后天": 3, "昨天": -1, "昨日": -1, "昨儿": -1, "昨儿个": -1, "前天": -2,
    "大前天": -3,
}

_GREETING = re.compile(r"早上好|上午好|中午好|下午好|晚上好|早安|午安|晚安|"
                       r"\bgood\s*(?:morning|afternoon|evening|night|day)\b")

# ---- exclusions
_WD_CN_ONE = rf"(?:{_MOD_CN}?(?:周|星期|礼拜)[一二三四五六日天七1-7]|周末|工作日)"
_WD_CN_LIST = rf"{_WD_CN_ONE}(?:\s*(?:[、,/和跟与及到至~-]|或者?|还有)?\s*{_WD_CN_ONE})*"
_WD_EN_ONE = rf"(?:(?:(?:next|this|coming)\s+)?\b{_WD_EN}s?\b\.?|(?:the\s+)?\bweekends?\b|\bweekdays?\b)"
_WD_EN_LIST = (rf"{_WD_EN_ONE}(?:\s*(?:,|/|&|-|~|\band\b|\bor\b|\bnor\b|\bto\b|\bthrough\b)\s*"
               rf"(?:on\s+)?{_WD_EN_ONE})*")
_EXCL = [
    re.compile(rf"(?:除了|除去|除开|除)\s*(?P<l>{_WD_CN_LIST})\s*(?:以外|之外|外)?"),
    re.compile(rf"(?:不要|别|不能是|不能|不是)\s*(?P<l>{_WD_CN_LIST})"),
    re.compile(rf"(?P<l>{_WD_CN_LIST})\s*(?:的话|那天|那几天|我们?|家里|全天|一整天|整天)?\s*"
               r"(?:都|也|就|可能|应该)?\s*(?:不行|不可以|不方便|不太方便|没空|没有空|没时间|"
               r"没有时间|不在家|不在|不能|不太行|有事|没法|没办法|除外|不合适|排除|不ok)"),
    re.compile(rf"\b(?:not|except(?:\s+for)?|excluding|but\s+not|anything\s+but|any\s+day\s+but|"
               rf"other\s+than|no|never|avoid)\s+(?:on\s+)?(?:a\s+)?(?P<l>{_WD_EN_LIST})"),
    re.compile(rf"(?P<l>{_WD_EN_LIST})\s*(?:(?:is|are|'s|would\s+be|will\s+be)\s*)?"
               r"(?:not\s+(?:good|ok|okay|possible|convenient|available|great|an\s+option)|"
               r"no\s+good|bad|out|impossible|busy|a\s+no|off\s+limits|doesn'?t\s+work|"
               r"does\s+not\s+work|won'?t\s+work|don'?t\s+work|do\s+not\s+work|not\s+work)\b"),
    re.compile(rf"\b(?:can'?t|cannot|can\s+not|unable\s+to|won'?t\s+be\s+(?:able|available|home)|"
               rf"not\s+available|not\s+home|unavailable|busy|away|out)\s+"
               rf"(?:(?:do|make|come|be\s+home|be\s+there|be\s+available|it|on|that|to)\s+)*"
               rf"(?P<l>{_WD_EN_LIST})"),
]
_WD_ANY = re.compile(rf"(?:周|星期|礼拜)(?P<c>[一二三四五六日天七1-7])|(?P<we>周末|\bweekends?\b)|"
                     rf"(?P<wk>工作日|\bweekdays?\b)|\b(?P<e>{_WD_EN})s?\b")

# ---- relative counts: 三天后, 两周前, 半年前, in 2 days, 3 days ago, within a week
_COUNT_CN = re.compile(
    rf"(?<![\d{_CNN}])(?:再?过\s*)?(?P<n>\d{{1,3}}|[{_CNN}]{{1,3}}|半)\s*"
    r"(?P<u>个?\s*半?\s*(?:天|周|星期|礼拜|月|年|小时|钟头|分钟)\s*半?)\s*"
    r"(?P<dir>以后|之后|过后|后|以前|之前|前|以内|之内|内)")
_COUNT_CN_GUO = re.compile(rf"(?:再)?过\s*(?P<n>\d{{1,3}}|[{_CNN}]{{1,3}})\s*(?P<u>天|个?星期|周|个?礼拜)")
_EN_UNIT = r"(?P<u>days?|weeks?|months?|years?|hours?|hrs?|minutes?|mins?)"
_COUNT_EN = [
    re.compile(rf"\bin\s+(?:about\s+|around\s+)?(?P<n>{_EN_COUNT})\s+{_EN_UNIT}(?:'?s?\s+time)?\b"),
    re.compile(rf"\b(?P<n>{_EN_COUNT})\s+{_EN_UNIT}\s+(?P<dir>from\s+now|from\s+today|later|after|hence|"
               rf"ago|before|back|earlier)\b"),
    re.compile(rf"\bafter\s+(?P<n>{_EN_COUNT})\s+{_EN_UNIT}\b"),
    re.compile(rf"\b(?P<dir>within|in\s+the\s+next|over\s+the\s+next|the\s+next|next)\s+"
               rf"(?P<n>{_EN_COUNT})\s+{_EN_UNIT}\b"),
]

# ---- festivals
_FEST = {
    "双十一": (11, 11), "双11": (11, 11), "双十二": (12, 12), "双12": (12, 12), "618": (6, 18),
    "六一八": (6, 18), "元旦": (1, 1), "国庆": (10, 1), "国庆节": (10, 1), "圣诞": (12, 25),
    "圣诞节": (12, 25), "平安夜": (12, 24), "情人节": (2, 14), "christmas eve": (12, 24),
    "christmas day": (12, 25), "christmas": (12, 25), "xmas": (12, 25),
    "new year's eve": (12, 31), "new years eve": (12, 31), "new year's day": (1, 1),
    "new years day": (1, 1), "new year's": (1, 1), "valentine's day": (2, 14),
    "valentines day": (2, 14),
}
_YEAR_CN = {"今年": 0, "明年": 1, "后年": 2, "去年": -1, "前年": -2}
_FEST_CN = re.compile(r"(?P<ymod>今年|明年|去年|前年)?\s*的?\s*"
                      r"(?P<f>双十一|双11|双十二|双12|(?<!\d)618(?![\d点时:号日])|六一八|元旦|国庆节?|"
                      r"圣诞节?|平安夜|情人节)")
_FEST_EN = re.compile(r"\b(?:(?P<ymod>last|this|next)\s+(?:year'?s\s+)?)?(?P<f>christmas\s+eve|"
                      r"christmas\s+day|christmas|xmas|new\s+year'?s\s+eve|new\s+year'?s\s+day|"
                      r"new\s+year'?s|valentine'?s\s+day)\b")

# ---- explicit dates
_Y_CN = rf"(?:(?P<y>\d{{4}}|\d{{2}}|[零〇一二三四五六七八九]{{4}}|[零〇一二三四五六七八九]{{2}})\s*年|(?P<ymod>今年|明年|去年|前年|后年))"
_M_CN = r"(?P<m>\d{1,2}|十[一二]?|[一二三四五六七八九])"
_DATE_ISO = re.compile(r"(?<![\d.])(?P<y>\d{4})\s*(?P<sep>[-/.])\s*(?P<m>\d{1,2})\s*(?P=sep)\s*"
                       r"(?P<d>\d{1,2})(?!\d)(?:\s*[日号])?")
_DATE_CN = re.compile(rf"(?:{_Y_CN}\s*)?(?<![\d个{_CNN}]){_M_CN}\s*月\s*(?P<d>\d{{1,2}}|[{_CNN}]{{1,3}})"
                      rf"\s*(?:[日号]|(?![\d{_CNN}]|\s*[点时:]))")
_NOT_DAY_NOUN = r"(?!\s*(?:楼|线|房|门|机|键|院|馆|厅|室|单元|仓|座|口|床|柜|位|车|窗|台|箱|电池|货|码|店|桌|品))"
_DOM_CN_MOD = re.compile(rf"(?P<mod>{_MOD_CN})\s*月\s*(?:的\s*)?(?P<d>\d{{1,2}}|[{_CNN}]{{1,3}})\s*[号日]"
                         + _NOT_DAY_NOUN)
_DOM_CN = re.compile(rf"(?<![\d{_CNN}月期周拜第])(?P<d>\d{{1,2}}|[{_CNN}]{{1,3}})\s*号" + _NOT_DAY_NOUN
                     + rf"|(?<![\d{_CNN}月期周拜第今明昨节假每])(?P<d2>\d{{1,2}}|[{_CNN}]{{1,3}})\s*日"
                     + _NOT_DAY_NOUN)
_DATE_EN_MD = re.compile(rf"\b(?P<mon>{_MONTHS_EN})\.?\s+(?:the\s+)?(?P<d>\d{{1,2}})(?:st|nd|rd|th)?\b"
                         r"(?!\s*(?:am|pm|:|\.\d|oclock|hours?|hrs?|mins?|minutes?))"
                         r"(?:\s*,?\s*(?P<y>\d{4})\b)?")
_DATE_EN_DM = re.compile(rf"\b(?:the\s+)?(?P<d>\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?(?P<mon>{_MONTHS_EN})\b\.?"
                         r"(?:\s*,?\s*(?P<y>\d{4})\b)?")
_DATE_SLASH = re.compile(r"(?<![\d/.:-])(?P<m>\d{1,2})/(?P<d>\d{1,2})(?:/(?P<y>\d{4}|\d{2}))?(?![\d/])")
_DOM_EN = re.compile(r"\b(?:on\s+)?the\s+(?P<d>\d{1,2})(?:st|nd|rd|th)\b(?:\s+of\s+(?P<mod>this|next|last)\s+month)?")

# ---- months
_SUB_CN = r"(?P<sub>初|上旬|中旬|中|下旬|底|末)"
_DL_CN = r"(?P<dl>之前|以前|前(?!后)|之内|以内|内)"
_MONTH_CN_MOD = re.compile(rf"(?P<mod>{_MOD_CN})\s*月(?:份)?\s*{_SUB_CN}?\s*{_DL_CN}?")
_MONTH_CN_BARE = re.compile(rf"(?<![\d{_CNN}个])月\s*(?P<sub>初|底|末|中旬|下旬|上旬)\s*{_DL_CN}?")
_MONTH_CN_NAMED = re.compile(rf"(?:{_Y_CN}\s*)?(?<![\d{_CNN}个]){_M_CN}\s*月份?(?![\d{_CNN}]|\s*[日号])"
                             rf"\s*{_SUB_CN}?\s*{_DL_CN}?")
_MONTH_EN_REL = re.compile(
    r"\b(?:(?P<dl>by|before|until|till|no\s+later\s+than)\s+)?(?:the\s+)?"
    r"(?:(?P<sub>end|beginning|start|middle|early|mid|late|later|sometime|some\s+time|any\s*time|"
    r"within|during|rest)\s*-?\s*(?:of\s+)?(?:the\s+)?)?"
    r"(?:(?P<mod>this|next|last|the\s+following|previous|the\s+previous|coming)\s+|(?P<the>the\s+)?)"
    r"month\b")
_MONTH_EN_NAMED = re.compile(
    rf"\b(?:(?P<dl>by|before|until|till)\s+)?(?:the\s+)?(?:(?P<sub>end|beginning|start|middle|early|mid|late)"
    rf"\s*-?\s*(?:of\s+)?)?(?:(?P<pre>in|last|this|next|during)\s+)?(?P<mon>{_MONTHS_EN})\b\.?"
    rf"(?:\s*,?\s*(?P<y>\d{{4}})\b)?")

# ---- years
_YEAR_CN_RE = re.compile(r"(?P<y>今年|明年|后年|去年|前年)(?:\s*(?P<dl>之前|以前|前|之内|以内|内))?")
_YEAR_EN_RE = re.compile(r"\b(?P<mod>this|next|last)\s+year\b")

# ---- relative days
_DAY_CN = re.compile(r"(?P<w>大后天|大前天|明后天|今明两天|今明天|今儿个|明儿个|昨儿个|今天|今日|今儿|明天|明日|"
                     r"明儿|后天|昨天|昨日|昨儿|前天|今晚|明晚|昨晚|今早|明早|今夜|明夜)")
_DAY_EN = re.compile(r"\b(?P<w>(?:the\s+)?day\s+after\s+tomorrow|(?:the\s+)?day\s+before\s+yesterday|"
                     r"today|tomorrow|yesterday|tonight|this\s+(?:morning|afternoon|evening)|"
                     r"last\s+night)\b")

# ---- weekends, weekdays, weeks
_MOD_EN = r"(?P<mod>this\s+coming|this|coming|next|the\s+following|last|previous|the\s+previous)"
_WEEKEND_CN = re.compile(rf"(?P<mod>{_MOD_CN})?\s*(?:周末|星期末|礼拜末)")
_WEEKEND_EN = re.compile(rf"\b(?:{_MOD_EN}\s+|(?:on|over|at|during|for)\s+the\s+|the\s+)?weekend\b")
_WEEKENDS_EN = re.compile(r"\b(?:on\s+|only\s+)?weekends(?:\s+only)?\b|\bonly\s+(?:on\s+)?(?:the\s+)?weekends?\b")
_WORKDAYS = re.compile(r"(?:仅限?|只有?)?\s*工作日(?:都?可以|都?行|才行|才可以)?|"
                       r"\b(?:on\s+|any\s+)?weekdays?(?:\s+only)?\b")
_WD_CN_RE = re.compile(rf"(?P<mod>{_MOD_CN})?\s*(?:的\s*)?(?:周|星期|礼拜)\s*(?P<d>[一二三四五六日天七1-7])")
_WD_EN_RE = re.compile(rf"\b(?:{_MOD_EN}\s+|on\s+)?(?P<d>{_WD_EN})s?\b\.?")
_WEEK_CN = re.compile(rf"(?P<mod>{_MOD_CN})\s*(?:周|星期|礼拜)(?![一二三四五六日天七1-7末])"
                      r"(?P<in>之内|以内|内)?")
_WEEK_EN = re.compile(
    r"\b(?:(?P<mod>this|next|the\s+following|coming|this\s+coming|last|previous|the\s+previous)\s+week"
    r"|(?P<nn>(?:the\s+)?week\s+after\s+next)"
    r"|(?:later|sometime|some\s+time|any\s*time|any\s+day|during|within)\s+(?:this|the)\s+week"
    r"|(?:by|before|until)\s+(?:the\s+)?end\s+of\s+(?:the\s+|this\s+)?week)\b")

# ---- parts of day
_PART_CN = re.compile(
    r"(?P<p>一大早|大早上|上午|早上|早晨|清晨|清早|一早|早间|上半天|中午|午间|午饭(?:时间|时候)?|午休(?:时间)?|"
    r"下午|午后|下半天|傍晚|黄昏|晚上|晚间|夜里|夜间|凌晨|白天|"
    r"早(?=\s*(?:[2-9]|1[0-2]|[二三四五六七八九十两])\s*[点时])|"
    r"晚(?=\s*(?:[2-9]|1[0-2]|[二三四五六七八九十两])\s*[点时]))")
_PART_EN = re.compile(r"\b(?:early\s+|late\s+)?(?P<p>mornings?|afternoons?|evenings?|nights?|noon|midday|"
                      r"midnight|lunch\s*time|lunch|daytime|during\s+the\s+day)\b")
_PART_OF = {
    "一大早": "morning", "大早上": "morning", "上午": "morning", "早上": "morning", "早晨": "morning",
    "清晨": "morning", "清早": "morning", "一早": "morning", "早间": "morning", "上半天": "morning",
    "早": "morning", "中午": "noon", "午间": "noon", "午饭": "noon", "午饭时间": "noon",
    "午饭时候": "noon", "午休": "noon", "午休时间": "noon", "下午": "afternoon", "午后": "afternoon",
    "下半天": "afternoon", "傍晚": "dusk", "黄昏": "dusk", "晚上": "evening", "晚间": "evening",
    "夜里": "evening", "夜间": "evening", "晚": "evening", "凌晨": "early", "白天": "daytime",
    "morning": "morning", "afternoon": "afternoon", "evening": "evening", "night": "evening",
    "noon": "noon", "midday": "noon", "lunchtime": "noon", "lunch time": "noon", "lunch": "noon",
    "daytime": "daytime", "during the day": "daytime",
}

# ---- clock times
_H_EN = rf"(?:\d{{1,2}}|{_EN_WORDS})"
_TIME_STRONG = re.compile(
    rf"(?<![\d{_CNN}])(?P<h1>\d{{1,2}}|[{_CNN}]{{1,3}})\s*[点时]\s*(?:钟)?"
    rf"(?:\s*(?:(?P<half1>半)|(?P<q1>[一三13])\s*刻|"
    rf"(?P<m1>\d{{1,2}}|[{_CNN}]{{1,3}})(?!\s*(?:天|号|日|月|周|个|小时|年))\s*分?(?:钟)?))?"
    rf"|(?<![\d:.])(?P<h2>\d{{1,2}})\s*:\s*(?P<m2>\d{{2}})(?![\d:])(?:\s*(?P<ap2>am|pm)\b)?"
    rf"|\b(?P<h3>{_H_EN})(?:\.(?P<m3>\d{{2}}))?\s*(?P<ap3>am|pm)\b"
    rf"|\b(?P<h4>{_H_EN})\s*oclock\b"
    rf"|\b(?P<fr5>half|(?:a\s+)?quarter)\s+(?P<rel5>past|after|to|till)\s+(?P<h5>{_H_EN})\b")
_TIME_WEAK = re.compile(rf"(?<![\d{_CNN}:./-])(?P<h>\d{{1,2}}|[{_CNN}]{{1,3}}|\b(?:{_EN_WORDS})\b)(?![\d:])")
_CONNECT = re.compile(r"^\s*(?:到|至|~|-|to|till|until|and|through)\s*$")
_PREFIX_EN_Q = re.compile(
    r"(?P<q>any\s*time\s+after|not\s+before|no\s+earlier\s+than|later\s+than|starting\s+(?:at|from)|"
    r"starting|beginning\s+at|after|from|since|any\s*time\s+before|not\s+after|no\s+later\s+than|"
    r"earlier\s+than|up\s+to|before|by|until|till|til|between|around|about|approximately|approx|"
    r"at|@|不早于|不晚于|最早|最晚|最迟|晚于|早于|从|在|大概|大约|约)\s*$")
_SUFFIX_Q = re.compile(
    r"^\s*(?P<q>or\s+later|onwards?|and\s+later|or\s+after|and\s+after|or\s+earlier|or\s+before|"
    r"at\s+the\s+latest|at\s+the\s+earliest|ish|以后|之后|往后|过后|以来|起|开始|及以后|或以后|前后|左右|上下|"
    r"以前|之前|为止|后|前)")
_Q_KIND = {
    "any time after": "after", "anytime after": "after", "not before": "after",
    "no earlier than": "after", "later than": "after", "starting at": "after",
    "starting from": "after", "starting": "after", "beginning at": "after", "after": "after",
    "from": "after", "since": "after", "any time before": "before", "anytime before": "before",
    "not after": "before", "no later than": "before", "earlier than": "before", "up to": "before",
    "before": "before", "by": "before", "until": "before", "till": "before", "til": "before",
    "between": "exact", "around": "exact", "about": "exact", "approximately": "exact",
    "approx": "exact", "at": "exact", "@": "exact", "不早于": "after", "不晚于": "before",
    "最早": "after", "最晚": "before", "最迟": "before", "晚于": "after", "早于": "before",
    "从": "after", "在": "exact", "大概": "exact", "大约": "exact", "约": "exact",
    "or later": "after", "onward": "after", "onwards": "after", "and later": "after",
    "or after": "after", "and after": "after", "or earlier": "before", "or before": "before",
    "at the latest": "before", "at the earliest": "after", "ish": "exact", "以后": "after",
    "之后": "after", "往后": "after", "过后": "after", "以来": "after", "起": "after",
    "开始": "after", "及以后": "after", "或以后": "after", "前后": "exact", "左右": "exact",
    "上下": "exact", "以前": "before", "之前": "before", "为止": "before", "后": "after",
    "前": "before",
}
_WEAK_PREFIX = re.compile(r"\b(?:at|after|before|by|from|until|till|around|about|between|since|@)\s*$")

# ---- deadlines around day anchors
_DL_SUFFIX_CN = re.compile(r"^\s*(?P<q>之前|以前|前(?!后)|以后|之后|往后|后(?!天)|起|开始)")
_DL_PREFIX_EN = re.compile(r"(?P<q>no\s+later\s+than|by|until|till|before|after|from|starting(?:\s+from)?|"
                           r"beginning)\s+(?:the\s+)?$")
_GAP_ATTACH = re.compile(r"^[\s,的]*(?:at|@|on|of|in\s+the|in|around|about)?\s*$")
_GAP_MERGE = re.compile(r"^[\s,的]*(?:on|of|the)?\s*$")


# --------------------------------------------------------------------------- helpers

def _add_months(d: date, n: int) -> date:
    y, m = divmod(d.month - 1 + n, 12)
    y += d.year
    m += 1
    return date(y, m, min(d.day, _month_len(y, m)))


def _month_len(y: int, m: int) -> int:
    nxt = date(y + (m == 12), m % 12 + 1, 1)
    return (nxt - date(y, m, 1)).days


def _valid(y: int, m: int, d: int) -> bool:
    return 1 <= m <= 12 and 1 <= d <= _month_len(y, m)


def _at(d: date, minutes: int, tz) -> datetime:
    return datetime(d.year, d.month, d.day, tzinfo=tz) + timedelta(minutes=minutes)


def _midnight(d: date, tz) -> datetime:
    return datetime(d.year, d.month, d.day, tzinfo=tz)


def _monday(d: date) -> date:
    return d - timedelta(days=d.weekday())


def _bad_date(y, m, d) -> TimeParseError:
    return TimeParseError("invalid_date", f"no such calendar date: {y}-{m:02d}-{d:02d}"
                          if isinstance(y, int) else f"no such calendar date: month {m} day {d}")


def _cn_mod(s: str | None) -> int | None:
    if not s:
        return None
    s = s.replace("个", "").replace("一", "").replace("的", "").strip()
    return {"下下": 2, "下": 1, "这": 0, "本": 0, "上上": -2, "上": -1}[s]


def _en_mod(s: str | None):
    if not s:
        return None
    s = re.sub(r"\s+", " ", s)
    if s in ("this coming", "this", "coming"):
        return 0
    if s in ("next", "the following"):
        return 1
    return "last"


# --------------------------------------------------------------------------- tokens

class _Tok:
    __slots__ = ("kind", "s", "e", "v")

    def __init__(self, kind: str, s: int, e: int, **v):
        self.kind, self.s, self.e, self.v = kind, s, e, v

    def __repr__(self):  # pragma: no cover - debugging aid
        return f"<{self.kind} {self.s}-{self.e} {self.v}>"


def _gap(text: str, a: _Tok, b: _Tok) -> str | None:
    """Text strictly between two tokens (in either order); None if they overlap."""
    if a.e <= b.s:
        return text[a.e:b.s]
    if b.e <= a.s:
        return text[b.e:a.s]
    return None


class _Scan:
    """Extracts tokens from the text.  mode is "when" (future-leaning) or "date" (past-leaning)."""

    def __init__(self, text: str, now: datetime, mode: str):
        self.t = _Text(text)
        self.now = now
        self.tz = now.tzinfo
        self.today = now.date()
        self.mode = mode
        self.anchors: list[_Tok] = []
        self.parts: list[_Tok] = []
        self.times: list[_Tok] = []
        self.excl_toks: list[_Tok] = []
        self.excluded: set[int] = set()

    # -- driver
    def run(self) -> "_Scan":
        for m in _GREETING.finditer(self.t.s):
            self.t.blank(*m.span())
        _scan_exclusions(self)
        self._each(_COUNT_CN, self._count_cn)
        self._each(_COUNT_CN_GUO, self._count_cn_guo)
        for p in _COUNT_EN:
            self._each(p, self._count_en)
        self._each(_FEST_CN, self._fest)
        self._each(_FEST_EN, self._fest)
        self._each(_DATE_ISO, self._date_full)
        self._each(_DATE_CN, self._date_full)
        self._each(_DATE_EN_MD, self._date_full)
        self._each(_DATE_EN_DM, self._date_full)
        self._each(_DATE_SLASH, self._date_slash)
        self._each(_DOM_CN_MOD, self._dom)
        self._each(_DOM_CN, self._dom)
        self._each(_DOM_EN, self._dom)
        self._each(_MONTH_CN_MOD, self._month_rel)
        self._each(_MONTH_CN_BARE, self._month_rel)
        self._each(_MONTH_CN_NAMED, self._month_named)
        self._each(_MONTH_EN_REL, self._month_rel)
        self._each(_MONTH_EN_NAMED, self._month_named)
        self._each(_YEAR_CN_RE, self._year)
        self._each(_YEAR_EN_RE, self._year)
        self._each(_DAY_CN, self._day_cn)
        self._each(_DAY_EN, self._day_en)
        self._each(_WEEKEND_CN, self._weekend)
        self._each(_WEEKENDS_EN, self._weekends_plural)
        self._each(_WEEKEND_EN, self._weekend)
        self._each(_WORKDAYS, self._workdays)
        self._each(_WD_CN_RE, self._weekday)
        self._each(_WD_EN_RE, self._weekday)
        self._each(_WEEK_CN, self._week)
        self._each(_WEEK_EN, self._week)
        self._each(_PART_CN, self._part)
        self._each(_PART_EN, self._part)
        _scan_clock_times(self)
        self.anchors.sort(key=lambda k: k.s)
        _scan_merge_week_weekday(self)
        _scan_deadlines(self)
        return self

    def _each(self, pat: re.Pattern, fn) -> None:
        for m in list(pat.finditer(self.t.s)):
            if self.t.s[m.start():m.end()].strip() == "" or m.end() == m.start():
                continue
            if self.t.s[m.start():m.end()] != m.group(0):   # overlapped by an earlier blanking
                continue
            got = fn(m)
            if got:
                span = got if isinstance(got, tuple) else m.span()
                self.t.blank(*span)

    # -- relative counts
    def _count(self, m, n, unit: str, sign: int, within: bool = False):
        if n is None:
            return None
        unit = unit.replace("个", "").replace(" ", "")
        if "半" in unit:                      # 一个半月, 一年半 -> n + 0.5
            n, unit = n + 0.5, unit.replace("半", "")
        u = unit.rstrip("s")
        clock = u in ("小时", "钟头", "hour", "hr", "分钟", "minute", "min")
        if u in ("天", "day"):
            delta = timedelta(days=n)
        elif u in ("周", "星期", "礼拜", "week"):
            delta = timedelta(days=7 * n)
        elif u in ("小时", "钟头", "hour", "hr"):
            delta = timedelta(hours=n)
        elif u in ("分钟", "minute", "min"):
            delta = timedelta(minutes=n)
        elif u in ("月", "month", "年", "year"):
            months = n * (12 if u in ("年", "year") else 1)
            whole = int(months)
            delta = None
            target = _add_months(self.today, sign * whole)
            if months != whole:              # half a month = 15 days
                target += timedelta(days=sign * 15)
        else:
            return None
        if delta is not None and not clock:
            target = self.today + sign * delta
        if within:
            end = self.now + delta if delta is not None else _midnight(target, self.tz)
            self.anchors.append(_Tok("range", m.start(), m.end(), start=self.now, end=end))
        elif clock:
            self.anchors.append(_Tok("exact", m.start(), m.end(), at=self.now + sign * delta))
        else:
            self.anchors.append(_Tok("day", m.start(), m.end(), dates=[target]))
        return True

    def _count_cn(self, m):
        n = 0.5 if m.group("n") == "半" else _num(m.group("n"))
        d = m.group("dir")
        sign = -1 if d in ("以前", "之前", "前") else 1
        return self._count(m, n, m.group("u"), sign, within=d in ("以内", "之内", "内"))

    def _count_cn_guo(self, m):
        return self._count(m, _num(m.group("n")), m.group("u"), 1)

    def _count_en(self, m):
        n = _num(m.group("n"))
        d = re.sub(r"\s+", " ", m.groupdict().get("dir") or "")
        sign = -1 if d in ("ago", "before", "back", "earlier") else 1
        within = d in ("within", "in the next", "over the next", "the next", "next")
        return self._count(m, n, m.group("u"), sign, within=within)

    # -- explicit dates
    def _infer_year(self, mth: int, d: int) -> int:
        y = self.today.year
        if self.mode == "when":
            if (mth, d) < (self.today.month, self.today.day):
                y += 1
        else:
            if (mth, d) > (self.today.month, self.today.day):
                y -= 1
        return y

    def _mk_date(self, m, y, mth, d, ymod=None):
        if y is None and ymod is not None:
            y = self.today.year + ymod
        if y is None:
            if not _valid(2024, mth, d):       # impossible in every year (leap 2024 as reference)
                raise _bad_date(None, mth, d)
            y = self._infer_year(mth, d)
            if mth == 2 and d == 29:
                step = 1 if self.mode == "when" else -1
                while not _valid(y, 2, 29):
                    y += step
        if not _valid(y, mth, d):
            raise _bad_date(y, mth, d)
        self.anchors.append(_Tok("day", m.start(), m.end(), dates=[date(y, mth, d)]))
        return True

    def _fest(self, m):
        f = re.sub(r"\s+", " ", m.group("f"))
        mth, d = _FEST[f]
        ym = m.group("ymod")
        ymod = _YEAR_CN.get(ym) if ym in _YEAR_CN else {"last": -1, "this": 0, "next": 1}.get(ym)
        return self._mk_date(m, None, mth, d, ymod)

    def _date_full(self, m):
        g = m.groupdict()
        y = g.get("y")
        if y is not None:
            y = _num(y)
            if y is not None and y < 100:
                y += 2000
        ymod = _YEAR_CN.get(g.get("ymod")) if g.get("ymod") else None
        if g.get("mon"):
            mth = _MONTH_IDX[g["mon"][:3]]
        else:
            mth = _num(g["m"])
        d = _num(g["d"])
        if mth is None or d is None:
            return None
        if not 1 <= mth <= 12 or not 1 <= d <= 31:
            raise TimeParseError("invalid_date", f"no such calendar date: month {mth} day {d}")
        return self._mk_date(m, y, mth, d, ymod)

    def _date_slash(self, m):
        mth, d = int(m.group("m")), int(m.group("d"))
        if not (1 <= mth <= 12 and 1 <= d <= 31):
            return None        # "24/7", ratios ... not a date
        y = m.group("y")
        y = None if y is None else (int(y) + 2000 if len(y) == 2 else int(y))
        return self._mk_date(m, y, mth, d)

    def _dom(self, m):
        d = _num(m.group("d") if m.group("d") is not None else m.groupdict().get("d2"))
        if d is None:
            return None
        if not 1 <= d <= 31:
            raise TimeParseError("invalid_date", f"no such day of month: {d}")
        mod = m.groupdict().get("mod")
        if mod:
            off = _cn_mod(mod) if mod[0] in "下这本上" else {"this": 0, "next": 1, "last": -1}[mod]
            first = _add_months(self.today.replace(day=1), off)
            if not _valid(first.year, first.month, d):
                raise _bad_date(first.year, first.month, d)
            self.anchors.append(_Tok("day", m.start(), m.end(), dates=[first.replace(day=d)]))
            return True
        first = self.today.replace(day=1)
        step = 1 if self.mode == "when" else -1
        for i in range(0, 13):
            cand = _add_months(first, step * i)
            if not _valid(cand.year, cand.month, d):
                continue
            cd = cand.replace(day=d)
            if (self.mode == "when" and cd >= self.today) or (self.mode == "date" and cd <= self.today):
                self.anchors.append(_Tok("day", m.start(), m.end(), dates=[cd]))
                return True
        return None

    # -- months and years
    def _month_rel(self, m):
        g = m.groupdict()
        mod = g.get("mod")
        if mod is None and g.get("sub") and g["sub"] in ("within", "during", "rest", "sometime",
                                                         "some time", "anytime", "any time", "later"):
            off = 0
        elif mod is None:
            if m.re is _MONTH_EN_REL and not g.get("the") and not g.get("sub"):
                return None
            off = 0
        elif mod[0] in "下这本上":
            off = _cn_mod(mod)
        else:
            off = _en_mod(mod)
            off = -1 if off == "last" else off
        first = _add_months(self.today.replace(day=1), off)
        return self._month_tok(m, first, g.get("sub"), g.get("dl"), relative=True)

    def _month_tok(self, m, first: date, sub, dl, relative: bool):
        sub = re.sub(r"\s+", " ", sub) if sub else None
        kind = {"初": "early", "上旬": "early", "beginning": "early", "start": "early",
                "early": "early", "中旬": "mid", "中": "mid", "middle": "mid", "mid": "mid",
                "下旬": "end", "底": "end", "末": "end", "end": "end", "late": "end"}.get(sub)
        if sub in ("within", "later", "rest") or dl in ("之内", "以内", "内"):
            dl = dl or "within"
        self.anchors.append(_Tok("month", m.start(), m.end(), first=first, sub=kind,
                                 dl=dl, relative=relative))
        return True

    def _month_named(self, m):
        g = m.groupdict()
        if g.get("mon"):
            mon = g["mon"]
            mth = _MONTH_IDX[mon[:3]]
            pre = g.get("pre")
            if not (pre or g.get("y") or g.get("sub") or (len(mon) > 3 and mon not in ("may", "march"))):
                return None
            if pre in ("in", "during"):
                pre = None
        else:
            mth = _num(g["m"])
            pre = None
            if mth is None:
                return None
            if not 1 <= mth <= 12:
                raise TimeParseError("invalid_date", f"no such month: {mth}")
        y = g.get("y")
        y = _num(y) if y else None
        if y is not None and y < 100:
            y += 2000
        if y is None and g.get("ymod"):
            y = self.today.year + _YEAR_CN[g["ymod"]]
        cur = (self.today.year, self.today.month)
        if y is None:
            if pre == "this":
                y = cur[0]
            elif pre == "last":
                y = cur[0] if mth < cur[1] else cur[0] - 1
            elif pre == "next":
                y = cur[0] if mth > cur[1] else cur[0] + 1
            elif self.mode == "when":
                y = cur[0] if mth >= cur[1] else cur[0] + 1
            else:
                y = cur[0] if mth <= cur[1] else cur[0] - 1
        return self._month_tok(m, date(y, mth, 1), g.get("sub"), g.get("dl"), relative=False)

    def _year(self, m):
        g = m.groupdict()
        if g.get("y"):
            off = _YEAR_CN[g["y"]]
        else:
            off = {"this": 0, "next": 1, "last": -1}[g["mod"]]
        self.anchors.append(_Tok("year", m.start(), m.end(), off=off, dl=g.get("dl")))
        return True

    # -- relative days
    def _day_cn(self, m):
        w = m.group("w")
        part = None
        if w in ("明后天",):
            dates = [self.today + timedelta(1), self.today + timedelta(2)]
        elif w in ("今明两天", "今明天"):
            dates = [self.today, self.today + timedelta(1)]
        elif w[0] in "今明昨" and w[1] in "晚早夜":
            dates = [self.today + timedelta({"今": 0, "明": 1, "昨": -1}[w[0]])]
            part = "morning" if w[1] == "早" else "evening"
        else:
            dates = [self.today + timedelta(_CN_DAY_WORDS[w])]
        self.anchors.append(_Tok("day", m.start(), m.end(), dates=dates))
        if part:
            self.parts.append(_Tok("part", m.start(), m.end(), part=part))
        return True

    def _day_en(self, m):
        w = re.sub(r"\s+", " ", m.group("w")).replace("the ", "")
        part = None
        off = {"today": 0, "tomorrow": 1, "yesterday": -1, "day after tomorrow": 2,
               "day before yesterday": -2, "tonight": 0, "last night": -1}.get(w)
        if off is None:              # this morning / afternoon / evening
            off, part = 0, w.split()[1]
        if w in ("tonight", "last night"):
            part = "evening"
        self.anchors.append(_Tok("day", m.start(), m.end(), dates=[self.today + timedelta(off)]))
        if part:
            self.parts.append(_Tok("part", m.start(), m.end(), part=part))
        return True

    # -- weekends / weekdays / weeks
    def _weekend(self, m):
        mod = m.groupdict().get("mod")
        if mod and mod[0] in "下这本上":
            off = _cn_mod(mod)
        else:
            off = _en_mod(mod)
            off = -1 if off == "last" else off
        self.anchors.append(_Tok("weekend", m.start(), m.end(), off=off))
        return True

    def _weekends_plural(self, m):
        self.excluded |= {0, 1, 2, 3, 4}
        self.excl_toks.append(_Tok("excl", m.start(), m.end()))
        return True

    def _workdays(self, m):
        self.excluded |= {5, 6}
        self.excl_toks.append(_Tok("excl", m.start(), m.end()))
        return True

    def _weekday(self, m):
        d = m.group("d")
        wd = _WD_CN_IDX[d] if d in _WD_CN_IDX else _WD_EN_IDX[d[:3]]
        mod = m.groupdict().get("mod")
        if mod and mod[0] in "下这本上":
            mod = _cn_mod(mod)
        else:
            mod = _en_mod(mod)
        self.anchors.append(_Tok("wd", m.start(), m.end(), wd=wd, mod=mod))
        return True

    def _week(self, m):
        g = m.groupdict()
        mod = g.get("mod")
        if g.get("nn"):
            off = 2
        elif mod is None:
            off = 0
        elif mod[0] in "下这本上":
            off = _cn_mod(mod)
        else:
            off = _en_mod(mod)
            off = -1 if off == "last" else off
        self.anchors.append(_Tok("week", m.start(), m.end(), off=off))
        return True

    # -- parts of day
    def _part(self, m):
        p = re.sub(r"\s+", " ", m.group("p"))
        s = self.t.s
        if p == "midnight":
            self.times.append(_Tok("time", m.start(), m.end(), q="exact", h=24, mi=0, ap=None,
                                   lit=True, part=None))
            _scan_qualify(self, self.times[-1])
            return True
        if p not in _PART_OF and p.endswith("s"):
            p = p[:-1]
        part = _PART_OF[p]
        start, end = m.span()
        # "at noon", "12 noon" -> the clock time 12:00
        if p in ("noon", "midday"):
            pre = re.search(r"(?:\b(?:at|@)\s*|\b12\s*)$", s[:start])
            if pre:
                tok = _Tok("time", pre.start(), end, q="exact", h=12, mi=0, ap=None, lit=True,
                           part=None)
                self.times.append(tok)
                _scan_qualify(self, tok)
                return (pre.start(), end)
        # "中午之前", "before noon", "after lunch": the part's edge as a clock time
        suf = re.match(r"^\s*(?P<q>之前|以前|前(?!后)|之后|以后|后(?!天))", s[end:])
        pre = re.search(r"\b(?P<q>before|by|until|till|after)\s+(?:the\s+)?$", s[:start])
        if suf or pre:
            q = _Q_KIND[(suf or pre).group("q")]
            edge = _PART_EDGE[part][0 if q == "before" else 1]
            if p == "lunch" and q == "after":
                edge = 13 * 60
            s0, e0 = (pre.start() if pre else start), (end + suf.end() if suf else end)
            self.times.append(_Tok("time", s0, e0, q=q, h=edge // 60, mi=edge % 60, ap=None,
                                   lit=True, part=part if q == "before" else None))
            return (s0, e0)
        self.parts.append(_Tok("part", start, end, part=part))
        return True


# --------------------------------------------------------------------------- passes of a scan over its tokens
# (functions of the scan, so that _Scan keeps to its matchers)

def _scan_exclusions(sc) -> None:
    for pat in _EXCL:
        for m in list(pat.finditer(sc.t.s)):
            if sc.t.s[m.start():m.end()] != m.group(0):
                continue
            days: set[int] = set()
            lst = m.group("l")
            prev, prev_end = None, 0
            for w in _WD_ANY.finditer(lst):
                cur = None
                if w.group("c"):
                    cur = _WD_CN_IDX[w.group("c")]
                elif w.group("we"):
                    days |= {5, 6}
                elif w.group("wk"):
                    days |= {0, 1, 2, 3, 4}
                else:
                    cur = _WD_EN_IDX[w.group("e")[:3]]
                if cur is not None:
                    days.add(cur)
                    # "周一到周三不行", "mon-wed is bad": the whole run of days
                    if prev is not None and re.search(r"[到至~-]|\bto\b|\bthrough\b",
                                                      lst[prev_end:w.start()]):
                        days |= {(prev + n) % 7 for n in range((cur - prev) % 7 + 1)}
                prev, prev_end = cur, w.end()
            if days:
                sc.excluded |= days
                sc.excl_toks.append(_Tok("excl", m.start(), m.end()))
                sc.t.blank(*m.span())


def _scan_clock_times(sc) -> None:
    s = sc.t.s
    atoms: list[_Tok] = []
    for m in _TIME_STRONG.finditer(s):
        g = m.groupdict()
        if g["h1"] is not None:
            h = _num(g["h1"])
            if h is None:
                continue
            # "快一点", "早一点", "晚一点" = "a bit faster/earlier/later", not 1 o'clock
            if g["h1"] == "一" and m.start() > 0 and s[m.start() - 1] in "快早晚慢多少好有差大小高低远近稍再":
                continue
            mi = 30 if g["half1"] else (15 * (_num(g["q1"]) or 0) if g["q1"] else _num(g["m1"]) or 0)
            if g["m1"] is not None and _num(g["m1"]) is None:
                continue
            atoms.append(_Tok("time", m.start(), m.end(), h=h, mi=mi, ap=None,
                              lit=h > 12, strong=True))
        elif g["h2"] is not None:
            h = int(g["h2"])
            atoms.append(_Tok("time", m.start(), m.end(), h=h, mi=int(g["m2"]), ap=g["ap2"],
                              lit=g["h2"].startswith("0") or h > 12, strong=True))
        elif g["h3"] is not None:
            atoms.append(_Tok("time", m.start(), m.end(), h=_num(g["h3"]),
                              mi=int(g["m3"] or 0), ap=g["ap3"], lit=False, strong=True))
        elif g["h4"] is not None:
            atoms.append(_Tok("time", m.start(), m.end(), h=_num(g["h4"]), mi=0, ap=None,
                              lit=False, strong=True))
        else:
            h = _num(g["h5"])
            frac = 30 if g["fr5"] == "half" else 15
            if g["rel5"] in ("to", "till"):
                h, mi = h - 1, 60 - frac
            else:
                mi = frac
            atoms.append(_Tok("time", m.start(), m.end(), h=h, mi=mi, ap=None, lit=False,
                              strong=True))
    for a in atoms:
        sc.t.blank(a.s, a.e)
    s = sc.t.s
    weak: list[_Tok] = []
    for m in _TIME_WEAK.finditer(s):
        h = _num(m.group("h"))
        if h is None:
            continue
        weak.append(_Tok("time", m.start(), m.end(), h=h, mi=0, ap=None, lit=h > 12,
                         strong=False))
    # keep weak atoms only when linked to a strong one ("3-5点", "2 to 4pm") or after "at/by ..."
    keep = []
    for w in weak:
        linked = any(_CONNECT.match(_gap(s, w, a) or "x") and (w.e <= a.s) for a in atoms)
        if linked or _WEAK_PREFIX.search(s[:w.s]):
            keep.append(w)
    # "between 2 and 4", "from 9 to 11": the second bare number follows a kept one
    for w in weak:
        if w in keep:
            continue
        for k in list(keep):
            if k.e <= w.s and re.match(r"^\s*(?:and|to|-|~|till|until|到|至)\s*$", s[k.e:w.s]) \
                    and re.search(r"\b(?:between|from)\s*$|(?:从|在)\s*$", s[:k.s]):
                keep.append(w)
                break
    for w in keep:
        sc.t.blank(w.s, w.e)
    allatoms = sorted(atoms + keep, key=lambda k: k.s)
    # weak atoms joined by "and" after "between": "between 2 and 4"
    s = sc.t.s
    _scan_attach_parts(sc, allatoms)
    used: set[int] = set()
    for i in range(len(allatoms) - 1):
        a, b = allatoms[i], allatoms[i + 1]
        if i in used:
            continue
        gap = _gap(s, a, b)
        if gap is None or not _CONNECT.match(gap):
            continue
        if gap.strip() == "and" and not re.search(r"\bbetween\s*$", s[:a.s]):
            continue
        if not (a.v["strong"] or b.v["strong"] or re.search(r"\b(?:between|from)\s*$", s[:a.s])):
            continue
        used |= {i, i + 1}
        if b.v["ap"] and not a.v["ap"] and not a.v["lit"]:
            a.v["ap"] = b.v["ap"] if (a.v["h"] % 12) <= (b.v["h"] % 12) else \
                ("am" if b.v["ap"] == "pm" else "pm")
        if a.v["part"] is None and b.v["part"] is not None:
            a.v["part"] = b.v["part"]
        if b.v["part"] is None and a.v["part"] is not None:
            b.v["part"] = a.v["part"]
        tok = _Tok("time", a.s, b.e, q="between", a=a, b=b, part=a.v["part"])
        pre = re.search(r"\b(?:between|from)\s*$|(?:从|在)\s*$", s[:a.s])
        if pre:
            tok.s = pre.start()
        suf = re.match(r"^\s*(?:之间|中间|这段时间)", s[b.e:])
        if suf:
            tok.e = b.e + suf.end()
        sc.times.append(tok)
        sc.t.blank(tok.s, tok.e)
    for i, a in enumerate(allatoms):
        if i in used:
            continue
        if not a.v["strong"] and not _WEAK_PREFIX.search(s[:a.s]):
            continue
        a.v["q"] = "exact"
        _scan_qualify(sc, a)
        sc.times.append(a)
        sc.t.blank(a.s, a.e)


def _scan_attach_parts(sc, atoms: list[_Tok]) -> None:
    s = sc.t.s
    for a in atoms:
        a.v.setdefault("part", None)
        best = None
        for p in sc.parts:
            if p.e <= a.s and _GAP_ATTACH.match(s[p.e:a.s]):
                best = p
            elif a.e <= p.s and best is None and re.match(r"^\s*(?:in\s+the|at|in)?\s*$", s[a.e:p.s]):
                best = p
        if best is not None:
            a.v["part"] = best.v["part"]
            best.v["meridiem"] = True


def _scan_qualify(sc, tok: _Tok) -> None:
    s = sc.t.s
    suf = _SUFFIX_Q.match(s[tok.e:])
    pre = _PREFIX_EN_Q.search(s[:tok.s])
    q = None
    if suf:
        q = _Q_KIND[re.sub(r"\s+", " ", suf.group("q"))]
        tok.e += suf.end()
    if pre:
        k = re.sub(r"\s+", " ", pre.group("q"))
        if q is None or k not in ("at", "@", "在"):
            q = q or _Q_KIND.get(k, "exact")
        tok.s = pre.start()
    if q:
        tok.v["q"] = q


def _scan_merge_week_weekday(sc) -> None:
    s = sc.t.s
    out: list[_Tok] = []
    skip: set[int] = set()
    for i, a in enumerate(sc.anchors):
        if i in skip:
            continue
        if a.kind in ("week", "weekend"):
            for j, b in enumerate(sc.anchors):
                if j == i or j in skip or b.kind != "wd" or b.v["mod"] not in (None, 0):
                    continue
                gap = _gap(s, a, b)
                if gap is not None and _GAP_MERGE.match(gap):
                    b.v["mod"] = a.v["off"] if a.v["off"] is not None else 0
                    b.v["cal"] = True
                    b.s, b.e = min(a.s, b.s), max(a.e, b.e)
                    skip.add(i)
                    break
            if i in skip:
                continue
        out.append(a)
    sc.anchors = sorted(out, key=lambda k: k.s)


def _scan_deadlines(sc) -> None:
    s = sc.t.s
    for a in sc.anchors:
        if a.kind in ("exact", "range") or a.kind == "month" and a.v.get("dl"):
            continue
        suf = _DL_SUFFIX_CN.match(s[a.e:])
        pre = _DL_PREFIX_EN.search(s[:a.s])
        if suf:
            q = suf.group("q")
            a.v["dl"] = "by" if q in ("之前", "以前", "前") else "from"
            a.e += suf.end()
        elif pre:
            q = re.sub(r"\s+", " ", pre.group("q"))
            a.v["dl"] = {"no later than": "by", "by": "by", "until": "by", "till": "by",
                         "before": "before", "after": "after"}.get(q, "from")
            a.s = pre.start()


# --------------------------------------------------------------------------- time-of-day specs

def _minutes(a: _Tok, part: str | None) -> int:
    h, mi, ap = a.v["h"], a.v["mi"], a.v["ap"]
    part = a.v.get("part") or part
    if h is None or mi is None:
        raise TimeParseError("invalid_time", "unreadable clock time")
    if not 0 <= mi <= 59:
        raise TimeParseError("invalid_time", f"invalid minute: {mi}")
    if ap:
        if not 1 <= h <= 12:
            raise TimeParseError("invalid_time", f"invalid 12-hour clock time: {h}{ap}")
        h = h % 12 + (12 if ap == "pm" else 0)
    else:
        if h > 24 or (h == 24 and mi):
            raise TimeParseError("invalid_time", f"invalid hour: {h}")
        if h <= 12 and not a.v.get("lit"):
            if part in ("afternoon", "evening", "dusk"):
                h = 24 if (h == 12 and part == "evening") else (h if h == 12 else h + 12)
            elif part == "noon":
                h = h + 12 if 1 <= h <= 5 else h
            elif part == "early":
                h = 0 if h == 12 else h
            elif part == "morning":
                pass
            elif 1 <= h <= 7:
                h += 12
    return h * 60 + mi


def _time_window(tok: _Tok, part: str | None) -> tuple[int, int, str]:
    q = tok.v.get("q", "exact")
    if q == "between":
        a = _minutes(tok.v["a"], part)
        b = _minutes(tok.v["b"], part)
        if b <= a and b < 12 * 60 and b + 12 * 60 > a and not tok.v["b"].v["lit"] \
                and not tok.v["b"].v["ap"]:
            b += 12 * 60
        if b <= a:
            raise TimeParseError("invalid_time", "time range ends before it starts")
        return a, b, "time_range"
    t = _minutes(tok, part)
    if q == "exact":
        return t, t + 60, "time"
    if q == "after":
        end = _SERVICE_END if t < _SERVICE_END else (24 * 60 if t < 24 * 60 else t + 60)
        return t, end, "time_range"
    # before
    p = tok.v.get("part") or part
    if p and _PART_WIN[p][0] < t:
        start = _PART_WIN[p][0]
    elif t > _SERVICE_START:
        start = _SERVICE_START
    else:
        start = max(0, t - 60)
    if start >= t:
        raise TimeParseError("invalid_time", "nothing before that time")
    return start, t, "time_range"


class _Tod:
    """Time-of-day restriction of one cluster: minutes from midnight [a, b) plus a label."""

    def __init__(self, a: int, b: int, gran: str):
        self.a, self.b, self.gran = a, b, gran


def _tod_for(times: list[_Tok], parts: list[_Tok]) -> _Tod | None:
    if times:
        part = None
        loose = [p for p in parts if not p.v.get("meridiem")] or parts
        if len({p.v["part"] for p in loose}) == 1:
            part = loose[0].v["part"]
        wins = [_time_window(t, part) for t in times]
        gran = wins[0][2] if len(wins) == 1 else "time_range"
        return _Tod(min(w[0] for w in wins), max(w[1] for w in wins), gran)
    if parts:
        wins = [_PART_WIN[p.v["part"]] for p in parts]
        return _Tod(min(w[0] for w in wins), max(w[1] for w in wins), "part_of_day")
    return None


# --------------------------------------------------------------------------- resolution (when)

class _Win:
    __slots__ = ("start", "end", "days", "gran", "tod", "toks")

    def __init__(self, start, end, days, gran, tod):
        self.start, self.end, self.days, self.gran, self.tod = start, end, days, gran, tod
        self.toks: list[_Tok] = []


def _day_win(d: date, tod: _Tod | None, tz) -> tuple[datetime, datetime]:
    if tod is None:
        return _midnight(d, tz), _midnight(d + timedelta(1), tz)
    return _at(d, tod.a, tz), _at(d, tod.b, tz)


def _remains(d: date, tod: _Tod | None, now: datetime) -> bool:
    s, e = _day_win(d, tod, now.tzinfo)
    if tod is not None and tod.gran == "time":
        return s >= now
    return e > now


def _anchor_span(sc: _Scan, a: _Tok, future: bool, tod: _Tod | None = None) -> tuple[datetime, datetime]:
    """Whole-day (or range) span of an anchor, ignoring deadlines."""
    tz, today, now = sc.tz, sc.today, sc.now
    k = a.kind
    if k == "day":
        ds = a.v["dates"]
        return _midnight(ds[0], tz), _midnight(ds[-1] + timedelta(1), tz)
    if k == "wd":
        d = _wd_date(sc, a, future, tod)
        return _midnight(d, tz), _midnight(d + timedelta(1), tz)
    if k == "week":
        mon = _monday(today) + timedelta(7 * a.v["off"])
        start = _midnight(mon, tz)
        if a.v["off"] == 0:
            start = now
        return start, _midnight(mon + timedelta(7), tz)
    if k == "weekend":
        off = a.v["off"]
        mon = _monday(today)
        if off in (None, 0):
            off = 0
            if today.weekday() == 6 and now.hour >= 18:      # Sunday evening: the next weekend
                off = 1
        sat = mon + timedelta(7 * off + 5)
        return _midnight(sat, tz), _midnight(sat + timedelta(2), tz)
    if k == "month":
        first = a.v["first"]
        nxt = _add_months(first, 1)
        sub = a.v["sub"]
        if sub == "early":
            s, e = first, first.replace(day=11)
        elif sub == "mid":
            s, e = first.replace(day=11), first.replace(day=21)
        elif sub == "end":
            s, e = first.replace(day=21), nxt
        else:
            s, e = first, nxt
        if a.v.get("dl"):
            return now, _midnight(e, tz)
        return _midnight(s, tz), _midnight(e, tz)
    if k == "year":
        y = today.year + a.v["off"]
        if a.v.get("dl"):                                  # 今年之前 / 今年内
            return now, _midnight(date(y + 1, 1, 1), tz)
        return _midnight(date(y, 1, 1), tz), _midnight(date(y + 1, 1, 1), tz)
    if k == "range":
        return a.v["start"], a.v["end"]
    if k == "exact":
        return a.v["at"], a.v["at"] + timedelta(hours=1)
    raise AssertionError(k)


def _wd_date(sc: _Scan, a: _Tok, future: bool, tod: _Tod | None, after: date | None = None) -> date:
    wd, mod, today = a.v["wd"], a.v["mod"], sc.today
    if after is not None and mod in (None, 0):
        return after + timedelta((wd - after.weekday()) % 7)
    if mod == "last":
        back = (today.weekday() - wd) % 7 or 7
        return today - timedelta(back)
    if isinstance(mod, int) and (mod != 0 or a.v.get("cal")):
        return _monday(today) + timedelta(7 * mod + wd)
    d = today + timedelta((wd - today.weekday()) % 7)
    if d == today and future and not _remains(d, tod, sc.now):
        d += timedelta(7)
    return d


def _resolve_when(sc: _Scan, future: bool) -> When | None:
    tz, now = sc.tz, sc.now
    s = sc.t.s
    anchors, times, parts = sc.anchors, sc.times, [p for p in sc.parts]
    if not anchors and not times and not parts and not sc.excluded:
        return None

    # anchor ranges: "周一到周三", "明天到后天", "from Monday to Wednesday"
    merged: list[_Tok] = []
    i = 0
    while i < len(anchors):
        a = anchors[i]
        if i + 1 < len(anchors) and a.kind in ("day", "wd") and anchors[i + 1].kind in ("day", "wd") \
                and not a.v.get("dl") and not anchors[i + 1].v.get("dl"):
            b = anchors[i + 1]
            gap = _gap(s, a, b)
            if gap is not None and (_CONNECT.match(gap) and gap.strip() != "and"):
                da = _anchor_span(sc, a, future)[0].date()
                db = _wd_date(sc, b, future, None, after=da) if b.kind == "wd" else b.v["dates"][-1]
                if db >= da:
                    days = [da + timedelta(n) for n in range((db - da).days + 1)]
                    merged.append(_Tok("day", a.s, b.e, dates=days, span=True))
                    i += 2
                    continue
        merged.append(a)
        i += 1
    anchors = merged

    # attach each time / part to its nearest anchor
    clusters: dict[int, tuple[list, list]] = {}
    implicit: tuple[list, list] = ([], [])

    def nearest(tok: _Tok) -> int | None:
        best, bd = None, None
        for idx, a in enumerate(anchors):
            if a.kind == "exact":
                continue
            d = a.s - tok.e if tok.e <= a.s else (tok.s - a.e if a.e <= tok.s else 0)
            d = d + (0.5 if tok.e <= a.s else 0)       # ties go to the preceding anchor
            if bd is None or d < bd:
                best, bd = idx, d
        return best

    for tok in times:
        idx = nearest(tok)
        (clusters.setdefault(idx, ([], []))[0] if idx is not None else implicit[0]).append(tok)
    for tok in parts:
        # parts that overlap an anchor (tonight, 今晚) belong to it
        idx = next((n for n, a in enumerate(anchors) if a.s <= tok.s and tok.e <= a.e), None)
        if idx is None:
            idx = nearest(tok)
        (clusters.setdefault(idx, ([], []))[1] if idx is not None else implicit[1]).append(tok)

    tods: dict[int, _Tod | None] = {idx: _tod_for(*clusters[idx]) for idx in clusters}
    # one distinct time-of-day in the text applies to every day lacking its own ("周二或周三下午")
    distinct = {(t.a, t.b, t.gran) for t in tods.values() if t is not None}
    shared = next((t for t in tods.values() if t is not None), None) if len(distinct) == 1 else None

    wins: list[_Win] = []
    for idx, a in enumerate(anchors):
        tod = tods.get(idx)
        if tod is None and a.kind in ("day", "wd") and not a.v.get("dl"):
            tod = shared
        w = _anchor_window(sc, a, tod, future)
        w.toks = [a] + [t for lst in clusters.get(idx, ([], [])) for t in lst]
        wins.append(w)
    if (implicit[0] or implicit[1]) and not anchors and sc.excluded:
        # "工作日晚上", "周一不行，下午都可以": a daily window over the default span
        tod = _tod_for(*implicit)
        wins.append(_range_win(sc, now, now + _DEFAULT_SPAN, tod))
        wins[-1].toks = implicit[0] + implicit[1]
    elif implicit[0] or implicit[1]:
        tod = _tod_for(*implicit)
        d = sc.today
        if future and not _remains(d, tod, now):
            d += timedelta(1)
        st, en = _day_win(d, tod, tz)
        wins.append(_Win(st, en, [d], tod.gran, tod))
        wins[-1].toks = implicit[0] + implicit[1]

    excluded = set(sc.excluded)
    if not wins:
        start, end, gran, daily = now, now + _DEFAULT_SPAN, "range", None
    else:
        if future:
            live = [w for w in wins if w.end > now]
            if not live:
                raise TimeParseError("past", "the requested time lies wholly in the past")
            wins = live
        start = min(w.start for w in wins)
        end = max(w.end for w in wins)
        alldays = sorted({d for w in wins if w.days for d in w.days})
        single_days = all(w.days is not None and len(w.days) == 1 for w in wins)
        if len(wins) > 1 and single_days:
            span_days = (alldays[-1] - alldays[0]).days + 1
            if span_days <= 7:
                covered = {d.weekday() for d in alldays}
                for n in range(span_days):
                    wd = (alldays[0] + timedelta(n)).weekday()
                    if wd not in covered:
                        excluded.add(wd)
        multi = len(alldays) > 1 or any(w.days is None for w in wins)
        tods_used = {(w.tod.a, w.tod.b) for w in wins if w.tod is not None}
        daily = None
        if multi and len(tods_used) == 1 and all(w.tod is not None for w in wins):
            a_, b_ = next(iter(tods_used))
            if b_ <= 24 * 60:
                daily = (time(a_ // 60, a_ % 60) if a_ < 24 * 60 else time(0),
                         time(b_ // 60, b_ % 60) if b_ < 24 * 60 else time(23, 59, 59, 999999))
        if multi:
            gran = "range"
        else:
            gran = wins[0].gran
    if future and start < now:
        start = now
    # trim excluded weekdays at both ends
    if excluded:
        if len(excluded) >= 7:
            raise TimeParseError("unrecognised", "every weekday is excluded")
        for _ in range(8):
            if start >= end or start.weekday() not in excluded:
                break
            nd = start.date() + timedelta(1)
            start = _at(nd, daily[0].hour * 60 + daily[0].minute, tz) if daily else _midnight(nd, tz)
        for _ in range(8):
            last = end - timedelta(microseconds=1)
            if start >= end or last.weekday() not in excluded:
                break
            pd = last.date() - timedelta(1)
            end = (_at(pd, daily[1].hour * 60 + daily[1].minute, tz) if daily else _midnight(pd + timedelta(1), tz))
        if start >= end:
            raise TimeParseError("unrecognised", "every day in the window is excluded")
    spans = [(t.s, t.e) for w in wins for t in w.toks] + [(t.s, t.e) for t in sc.excl_toks]
    text = sc.t.original(min(x for x, _ in spans), max(y for _, y in spans)) if spans else ""
    return When(start=start, end=end, excluded_weekdays=frozenset(excluded), text=text,
                granularity=gran, daily=daily)


def _anchor_window(sc: _Scan, a: _Tok, tod: _Tod | None, future: bool) -> _Win:
    tz, now = sc.tz, sc.now
    dl = a.v.get("dl")
    if a.kind == "exact":
        return _Win(a.v["at"], a.v["at"] + timedelta(hours=1), [a.v["at"].date()], "time", None)
    if dl and a.kind != "month" and a.kind != "year":
        s0, e0 = _anchor_span(sc, a, future)
        if dl == "by":
            rs, re_ = now, e0
        elif dl == "before":
            rs, re_ = now, s0
        elif dl == "after":
            rs, re_ = e0, e0 + _OPEN_SPAN
        else:
            rs, re_ = s0, s0 + _OPEN_SPAN
        return _range_win(sc, rs, re_, tod)
    if a.kind == "day" and len(a.v["dates"]) == 1 or a.kind == "wd":
        d = a.v["dates"][0] if a.kind == "day" else _wd_date(sc, a, future, tod)
        st, en = _day_win(d, tod, tz)
        return _Win(st, en, [d], tod.gran if tod else "day", tod)
    if a.kind == "day":
        rs, re_ = _midnight(a.v["dates"][0], tz), _midnight(a.v["dates"][-1] + timedelta(1), tz)
        w = _range_win(sc, rs, re_, tod)
        if not a.v.get("span"):
            w.days = list(a.v["dates"])
        return w
    rs, re_ = _anchor_span(sc, a, future)
    return _range_win(sc, rs, re_, tod)


def _range_win(sc: _Scan, rs: datetime, re_: datetime, tod: _Tod | None) -> _Win:
    if tod is None:
        return _Win(rs, re_, None, "range", None)
    tz, now = sc.tz, sc.now
    d = rs.date()
    first = last = None
    while _midnight(d, tz) < re_ and (d - rs.date()).days < 400:
        s, e = _day_win(d, tod, tz)
        s, e = max(s, rs), min(e, re_)
        if s < e:
            if first is None and (e > now):
                first = s
            last = e
            if first is None:
                first = s
        d += timedelta(1)
    if first is None:
        return _Win(rs, rs, None, "range", tod)
    if first < now < last:
        # first remaining day window
        d = now.date()
        while True:
            s, e = _day_win(d, tod, tz)
            s, e = max(s, rs), min(e, re_)
            if e > now and s < e:
                first = s
                break
            d += timedelta(1)
            if _midnight(d, tz) >= re_:
                break
    return _Win(first, last, None, "range", tod)


# --------------------------------------------------------------------------- public API

def parse_when(text: str, now: datetime, *, future: bool = True) -> When | None:
    """Find a preferred time window in free text (booking preferences).

    Returns None when the text holds no time expression at all.  Raises TimeParseError for an
    expression that is recognisably a date/time but invalid (25点, February 30, a date in the past
    when ``future`` is true).  Windows that already started are clipped to ``now`` when ``future``.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    sc = _Scan(text or "", now, "when").run()
    return _resolve_when(sc, future)


def parse_date(text: str, now: datetime) -> date | None:
    """A single calendar date in the past or today (purchase / delivery dates).

    The first date expression in the text wins.  Raises TimeParseError("invalid_date") for an
    impossible date and TimeParseError("future") for a date after today; None if no date is found.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    sc = _Scan(text or "", now, "date").run()
    if not sc.anchors:
        return None
    a = sc.anchors[0]
    today = sc.today
    k = a.kind
    if k == "day":
        d = a.v["dates"][0]
    elif k == "exact":
        d = a.v["at"].date()
    elif k == "range":
        d = a.v["start"].date()
    elif k == "wd":
        wd, mod = a.v["wd"], a.v["mod"]
        if mod is None:
            d = today - timedelta((today.weekday() - wd) % 7)
        elif mod == "last":
            d = today - timedelta((today.weekday() - wd) % 7 or 7)
        else:
            d = _monday(today) + timedelta(7 * mod + wd)
    elif k == "week":
        d = today + timedelta(7 * a.v["off"])
    elif k == "weekend":
        off = a.v["off"] if a.v["off"] is not None else (0 if today.weekday() >= 5 else -1)
        d = _monday(today) + timedelta(7 * off + 5)
    elif k == "month":
        first, sub = a.v["first"], a.v["sub"]
        if sub == "early":
            d = first
        elif sub == "mid":
            d = first.replace(day=15)
        elif sub == "end":
            d = first.replace(day=_month_len(first.year, first.month))
        elif a.v["relative"]:
            d = first.replace(day=min(today.day, _month_len(first.year, first.month)))
        else:
            d = first
    elif k == "year":
        d = _add_months(today, 12 * a.v["off"])
    else:  # pragma: no cover
        return None
    if d > today:
        raise TimeParseError("future", f"{d.isoformat()} is after today ({today.isoformat()})")
    return d
