"""Table-driven tests for bot.nlu.timeparse (bilingual date/time expressions)."""
from __future__ import annotations

import dataclasses
from datetime import date, datetime, time, timezone

import pytest
from zoneinfo import ZoneInfo

from bot.nlu.timeparse import TimeParseError, When, parse_date, parse_when

SH = ZoneInfo("Asia/Shanghai")
SUN = datetime(2026, 11, 22, 10, 30, tzinfo=SH)      # Sunday morning
WED = datetime(2026, 11, 25, 10, 30, tzinfo=SH)      # Wednesday morning
SUN_EVE = datetime(2026, 11, 22, 19, 0, tzinfo=SH)   # Sunday evening
MAR31 = datetime(2026, 3, 31, 9, 0, tzinfo=SH)       # month-end clamping
NOWS = {"SUN": SUN, "WED": WED, "SUN_EVE": SUN_EVE, "MAR31": MAR31}


def at(s: str, now: datetime) -> datetime:
    """'11-23 13:00' (year 2026), '2027-01-01 00:00', or 'now'."""
    if s == "now":
        return now
    day, hm = s.split()
    parts = [int(x) for x in day.split("-")]
    if len(parts) == 2:
        parts = [2026] + parts
    h, mi = (int(x) for x in hm.split(":"))
    return datetime(parts[0], parts[1], parts[2], h, mi, tzinfo=SH)


def _when_case(row):
    text, now_key, start, end, *rest = row
    excluded = rest[0] if rest else set()
    return pytest.param(text, now_key, start, end, frozenset(excluded), id=f"{now_key}:{text}")


# (text, now, expected start, expected end[, excluded weekdays])
CN_WHEN = [
    ("明天下午", "SUN", "11-23 13:00", "11-23 18:00"),
    ("明天下午三点", "SUN", "11-23 15:00", "11-23 16:00"),
    ("明天下午能来吗 我在家", "SUN", "11-23 13:00", "11-23 18:00"),
    ("下周三上午", "SUN", "11-25 09:00", "11-25 12:00"),
    ("周六下午两点", "SUN", "11-28 14:00", "11-28 15:00"),
    ("今晚", "SUN", "11-22 18:00", "11-22 21:00"),
    ("今天下午", "SUN", "11-22 13:00", "11-22 18:00"),
    ("今天", "SUN", "now", "11-23 00:00"),
    ("明天", "SUN", "11-23 00:00", "11-24 00:00"),
    ("后天", "SUN", "11-24 00:00", "11-25 00:00"),
    ("大后天", "SUN", "11-25 00:00", "11-26 00:00"),
    ("周末", "SUN", "now", "11-23 00:00"),
    ("这周末", "SUN", "now", "11-23 00:00"),
    ("下周末", "SUN", "11-28 00:00", "11-30 00:00"),
    ("这周", "SUN", "now", "11-23 00:00"),
    ("本周内", "SUN", "now", "11-23 00:00"),
    ("下周", "SUN", "11-23 00:00", "11-30 00:00"),
    ("下下周", "SUN", "11-30 00:00", "12-07 00:00"),
    ("月底前", "SUN", "now", "12-01 00:00"),
    ("这个月底之前", "SUN", "now", "12-01 00:00"),
    ("下个月", "SUN", "12-01 00:00", "2027-01-01 00:00"),
    ("周一不行", "SUN", "now", "12-06 10:30", {0}),
    ("除了周一", "SUN", "now", "12-06 10:30", {0}),
    ("周一和周二都不行", "SUN", "now", "12-06 10:30", {0, 1}),
    ("周一到周三不行", "SUN", "now", "12-06 10:30", {0, 1, 2}),
    ("下周都可以，周一不行", "SUN", "11-24 00:00", "11-30 00:00", {0}),
    ("六点之后", "SUN", "11-22 18:00", "11-22 21:00"),
    ("晚上七点以后", "SUN", "11-22 19:00", "11-22 21:00"),
    ("十点以前", "SUN", "11-23 08:00", "11-23 10:00"),
    ("下午3:30", "SUN", "11-22 15:30", "11-22 16:30"),
    ("两天后", "SUN", "11-24 00:00", "11-25 00:00"),
    ("2天以后", "SUN", "11-24 00:00", "11-25 00:00"),
    ("三天后上午", "SUN", "11-25 09:00", "11-25 12:00"),
    ("一个星期后", "SUN", "11-29 00:00", "11-30 00:00"),
    ("12月5日", "SUN", "12-05 00:00", "12-06 00:00"),
    ("12月5号下午", "SUN", "12-05 13:00", "12-05 18:00"),
    ("十二月五号", "SUN", "12-05 00:00", "12-06 00:00"),
    ("2026年12月5日上午", "SUN", "12-05 09:00", "12-05 12:00"),
    ("星期天", "SUN", "now", "11-23 00:00"),
    ("星期天下午两点半", "SUN", "11-22 14:30", "11-22 15:30"),
    ("礼拜三", "SUN", "11-25 00:00", "11-26 00:00"),
    ("下礼拜二", "SUN", "11-24 00:00", "11-25 00:00"),
    ("周日晚上", "SUN", "11-22 18:00", "11-22 21:00"),
    ("两点半", "SUN", "11-22 14:30", "11-22 15:30"),
    ("晚上七点一刻", "SUN", "11-22 19:15", "11-22 20:15"),
    ("十二点", "SUN", "11-22 12:00", "11-22 13:00"),
    ("中午", "SUN", "11-22 12:00", "11-22 14:00"),
    ("中午之前", "SUN", "now", "11-22 12:00"),
    ("明天中午", "SUN", "11-23 12:00", "11-23 14:00"),
    ("明天傍晚", "SUN", "11-23 17:00", "11-23 19:00"),
    ("后天晚上8点", "SUN", "11-24 20:00", "11-24 21:00"),
    ("明早8点", "SUN", "11-23 08:00", "11-23 09:00"),
    ("晚8点", "SUN", "11-22 20:00", "11-22 21:00"),
    ("凌晨2点", "SUN", "11-23 02:00", "11-23 03:00"),
    ("15点30分", "SUN", "11-22 15:30", "11-22 16:30"),
    ("3点到5点", "SUN", "11-22 15:00", "11-22 17:00"),
    ("下午2点到4点", "SUN", "11-22 14:00", "11-22 16:00"),
    ("明天上午10点到下午2点", "SUN", "11-23 10:00", "11-23 14:00"),
    ("今天3点之前", "SUN", "now", "11-22 15:00"),
    ("下午三点前", "SUN", "11-22 13:00", "11-22 15:00"),
    ("周二或周四", "SUN", "11-24 00:00", "11-27 00:00", {2}),
    ("明天或后天下午", "SUN", "11-23 13:00", "11-24 18:00"),
    ("周一到周三", "SUN", "11-23 00:00", "11-26 00:00"),
    ("下周三之前", "SUN", "now", "11-26 00:00"),
    ("周三以后", "SUN", "11-25 00:00", "12-09 00:00"),
    ("三天内", "SUN", "now", "11-25 10:30"),
    ("两小时后", "SUN", "11-22 12:30", "11-22 13:30"),
    ("下个月5号", "SUN", "12-05 00:00", "12-06 00:00"),
    ("12月初", "SUN", "12-01 00:00", "12-11 00:00"),
    ("双十二", "SUN", "12-12 00:00", "12-13 00:00"),
    ("明后天", "SUN", "11-23 00:00", "11-25 00:00"),
    ("工作日晚上", "SUN", "11-23 18:00", "12-04 21:00", {5, 6}),
    ("周五没空", "SUN", "now", "12-06 10:30", {4}),
    ("周一周二都不在家", "SUN", "now", "12-06 10:30", {0, 1}),
    ("我上周买的冰箱，明天下午能来修吗", "SUN", "11-23 13:00", "11-23 18:00"),
    ("请问周六上午9点可以吗？", "SUN", "11-28 09:00", "11-28 10:00"),
    ("週六下午", "SUN", "11-28 13:00", "11-28 18:00"),
    ("３点", "SUN", "11-22 15:00", "11-22 16:00"),
    ("周三", "WED", "now", "11-26 00:00"),
    ("这周三", "WED", "now", "11-26 00:00"),
    ("下周三", "WED", "12-02 00:00", "12-03 00:00"),
    ("周三上午", "WED", "now", "11-25 12:00"),
    ("周三上午9点", "WED", "12-02 09:00", "12-02 10:00"),
    ("今天上午10点", "WED", "now", "11-25 11:00"),
    ("周一", "WED", "11-30 00:00", "12-01 00:00"),
    ("这周", "WED", "now", "11-30 00:00"),
    ("下周", "WED", "11-30 00:00", "12-07 00:00"),
    ("周末", "WED", "11-28 00:00", "11-30 00:00"),
    ("下周末", "WED", "12-05 00:00", "12-07 00:00"),
    ("周五之前", "WED", "now", "11-28 00:00"),
    ("周五下午3点以后", "WED", "11-27 15:00", "11-27 21:00"),
    ("周末", "SUN_EVE", "11-28 00:00", "11-30 00:00"),
    ("周日晚上", "SUN_EVE", "now", "11-22 21:00"),
]

EN_WHEN = [
    ("tomorrow afternoon", "SUN", "11-23 13:00", "11-23 18:00"),
    ("can someone come tomorrow afternoon pls", "SUN", "11-23 13:00", "11-23 18:00"),
    ("tomorrow at 3pm", "SUN", "11-23 15:00", "11-23 16:00"),
    ("tomorrow evening", "SUN", "11-23 18:00", "11-23 21:00"),
    ("tomorrow night", "SUN", "11-23 18:00", "11-23 21:00"),
    ("tonight", "SUN", "11-22 18:00", "11-22 21:00"),
    ("next Tuesday morning", "SUN", "11-24 09:00", "11-24 12:00"),
    ("Saturday after 2pm", "SUN", "11-28 14:00", "11-28 21:00"),
    ("this weekend", "SUN", "now", "11-23 00:00"),
    ("next weekend", "SUN", "11-28 00:00", "11-30 00:00"),
    ("this week", "SUN", "now", "11-23 00:00"),
    ("sometime this week", "SUN", "now", "11-23 00:00"),
    ("next week", "SUN", "11-23 00:00", "11-30 00:00"),
    ("any time next week", "SUN", "11-23 00:00", "11-30 00:00"),
    ("the week after next", "SUN", "11-30 00:00", "12-07 00:00"),
    ("before the end of the month", "SUN", "now", "12-01 00:00"),
    ("by the end of month", "SUN", "now", "12-01 00:00"),
    ("not Monday", "SUN", "now", "12-06 10:30", {0}),
    ("anytime except Monday", "SUN", "now", "12-06 10:30", {0}),
    ("after 6pm", "SUN", "11-22 18:00", "11-22 21:00"),
    ("before 10am", "SUN", "11-23 08:00", "11-23 10:00"),
    ("3:30pm", "SUN", "11-22 15:30", "11-22 16:30"),
    ("3pm", "SUN", "11-22 15:00", "11-22 16:00"),
    ("3 pm", "SUN", "11-22 15:00", "11-22 16:00"),
    ("15:30", "SUN", "11-22 15:30", "11-22 16:30"),
    ("3.30pm", "SUN", "11-22 15:30", "11-22 16:30"),
    ("noon", "SUN", "11-22 12:00", "11-22 14:00"),
    ("at noon", "SUN", "11-22 12:00", "11-22 13:00"),
    ("before noon", "SUN", "now", "11-22 12:00"),
    ("in two days", "SUN", "11-24 00:00", "11-25 00:00"),
    ("in 2 days", "SUN", "11-24 00:00", "11-25 00:00"),
    ("2 days later", "SUN", "11-24 00:00", "11-25 00:00"),
    ("in a week", "SUN", "11-29 00:00", "11-30 00:00"),
    ("today", "SUN", "now", "11-23 00:00"),
    ("tomorrow", "SUN", "11-23 00:00", "11-24 00:00"),
    ("day after tomorrow", "SUN", "11-24 00:00", "11-25 00:00"),
    ("the day after tomorrow at 10am", "SUN", "11-24 10:00", "11-24 11:00"),
    ("tmrw 3pm", "SUN", "11-23 15:00", "11-23 16:00"),
    ("tmr morning", "SUN", "11-23 09:00", "11-23 12:00"),
    ("2moro evening", "SUN", "11-23 18:00", "11-23 21:00"),
    ("TOMORROW AT 3 PM", "SUN", "11-23 15:00", "11-23 16:00"),
    ("Dec 5", "SUN", "12-05 00:00", "12-06 00:00"),
    ("5 December", "SUN", "12-05 00:00", "12-06 00:00"),
    ("December 5th at 2pm", "SUN", "12-05 14:00", "12-05 15:00"),
    ("2026-12-05", "SUN", "12-05 00:00", "12-06 00:00"),
    ("12/5", "SUN", "12-05 00:00", "12-06 00:00"),
    ("on the 5th", "SUN", "12-05 00:00", "12-06 00:00"),
    ("the 28th at 4pm", "SUN", "11-28 16:00", "11-28 17:00"),
    ("Monday", "SUN", "11-23 00:00", "11-24 00:00"),
    ("mon", "SUN", "11-23 00:00", "11-24 00:00"),
    ("thu", "SUN", "11-26 00:00", "11-27 00:00"),
    ("Sunday", "SUN", "now", "11-23 00:00"),
    ("Sunday 9am", "SUN", "11-29 09:00", "11-29 10:00"),
    ("Wednesday afternoon", "SUN", "11-25 13:00", "11-25 18:00"),
    ("next wednesday", "SUN", "11-25 00:00", "11-26 00:00"),
    ("this coming friday", "SUN", "11-27 00:00", "11-28 00:00"),
    ("next friday evening", "SUN", "11-27 18:00", "11-27 21:00"),
    ("Friday at 4", "SUN", "11-27 16:00", "11-27 17:00"),
    ("half past two", "SUN", "11-22 14:30", "11-22 15:30"),
    ("quarter to 4", "SUN", "11-22 15:45", "11-22 16:45"),
    ("2-4pm", "SUN", "11-22 14:00", "11-22 16:00"),
    ("between 2 and 4pm", "SUN", "11-22 14:00", "11-22 16:00"),
    ("tomorrow between 2 and 4", "SUN", "11-23 14:00", "11-23 16:00"),
    ("from 9 to 11 tomorrow", "SUN", "11-23 09:00", "11-23 11:00"),
    ("tomorrow 9-11am", "SUN", "11-23 09:00", "11-23 11:00"),
    ("Tuesday or Thursday", "SUN", "11-24 00:00", "11-27 00:00", {2}),
    ("Tuesday or Wednesday afternoon", "SUN", "11-24 13:00", "11-25 18:00"),
    ("monday to wednesday", "SUN", "11-23 00:00", "11-26 00:00"),
    ("mon-wed", "SUN", "11-23 00:00", "11-26 00:00"),
    ("by Friday", "SUN", "now", "11-28 00:00"),
    ("before Friday", "SUN", "now", "11-27 00:00"),
    ("after Wednesday", "SUN", "11-26 00:00", "12-10 00:00"),
    ("next week except Monday", "SUN", "11-24 00:00", "11-30 00:00", {0}),
    ("I'm not home on Monday or Tuesday", "SUN", "now", "12-06 10:30", {0, 1}),
    ("Monday is bad for me", "SUN", "now", "12-06 10:30", {0}),
    ("can't do Thursday", "SUN", "now", "12-06 10:30", {3}),
    ("mon-wed is bad", "SUN", "now", "12-06 10:30", {0, 1, 2}),
    ("in 2 hours", "SUN", "11-22 12:30", "11-22 13:30"),
    ("within a week", "SUN", "now", "11-29 10:30"),
    ("next month", "SUN", "12-01 00:00", "2027-01-01 00:00"),
    ("in December", "SUN", "12-01 00:00", "2027-01-01 00:00"),
    ("early December", "SUN", "12-01 00:00", "12-11 00:00"),
    ("Could you come at 7?", "SUN", "11-22 19:00", "11-22 20:00"),
    ("I'm free after 5", "SUN", "11-22 17:00", "11-22 21:00"),
    ("around 3", "SUN", "11-22 15:00", "11-22 16:00"),
    ("hi, my washer broke, can someone come over sat morning?", "SUN", "11-28 09:00", "11-28 12:00"),
    ("on Friday, not Monday", "SUN", "11-27 00:00", "11-28 00:00", {0}),
    ("weekdays only, evenings", "SUN", "11-23 18:00", "12-04 21:00", {5, 6}),
    ("weekends only", "SUN", "now", "12-06 10:30", {0, 1, 2, 3, 4}),
    ("next Wednesday", "WED", "12-02 00:00", "12-03 00:00"),
    ("this Wednesday", "WED", "now", "11-26 00:00"),
    ("Wednesday 9am", "WED", "12-02 09:00", "12-02 10:00"),
    ("today 10am", "WED", "now", "11-25 11:00"),
    ("this weekend", "WED", "11-28 00:00", "11-30 00:00"),
    ("next weekend", "WED", "12-05 00:00", "12-07 00:00"),
    ("next week", "WED", "11-30 00:00", "12-07 00:00"),
    ("This weekend, Saturday afternoon", "WED", "11-28 13:00", "11-28 18:00"),
    ("this weekend", "SUN_EVE", "11-28 00:00", "11-30 00:00"),
    ("Sunday evening", "SUN_EVE", "now", "11-22 21:00"),
]


@pytest.mark.parametrize("text,now_key,start,end,excluded", [_when_case(r) for r in CN_WHEN])
def test_parse_when_chinese(text, now_key, start, end, excluded):
    now = NOWS[now_key]
    w = parse_when(text, now)
    assert w is not None
    assert (w.start, w.end, w.excluded_weekdays) == (at(start, now), at(end, now), excluded)


@pytest.mark.parametrize("text,now_key,start,end,excluded", [_when_case(r) for r in EN_WHEN])
def test_parse_when_english(text, now_key, start, end, excluded):
    now = NOWS[now_key]
    w = parse_when(text, now)
    assert w is not None
    assert (w.start, w.end, w.excluded_weekdays) == (at(start, now), at(end, now), excluded)


# (text, now, expected date)
CN_DATE = [
    ("2026年3月5日", "SUN", date(2026, 3, 5)),
    ("二〇二六年三月五日", "SUN", date(2026, 3, 5)),
    ("3月5号", "SUN", date(2026, 3, 5)),
    ("2026-03-05", "SUN", date(2026, 3, 5)),
    ("2026/3/5", "SUN", date(2026, 3, 5)),
    ("12月5号", "SUN", date(2025, 12, 5)),
    ("购买日期：2026年10月1日", "SUN", date(2026, 10, 1)),
    ("在11月20号买的", "SUN", date(2026, 11, 20)),
    ("25号", "SUN", date(2026, 10, 25)),
    ("上个月", "SUN", date(2026, 10, 22)),
    ("上个月", "MAR31", date(2026, 2, 28)),
    ("上个月5号", "SUN", date(2026, 10, 5)),
    ("去年双十一", "SUN", date(2025, 11, 11)),
    ("双十一", "SUN", date(2026, 11, 11)),
    ("去年圣诞节", "SUN", date(2025, 12, 25)),
    ("去年国庆", "SUN", date(2025, 10, 1)),
    ("去年3月", "SUN", date(2025, 3, 1)),
    ("去年", "SUN", date(2025, 11, 22)),
    ("上周三", "SUN", date(2026, 11, 11)),
    ("上上周五", "SUN", date(2026, 11, 6)),
    ("周三", "SUN", date(2026, 11, 18)),
    ("上周", "SUN", date(2026, 11, 15)),
    ("上周末", "SUN", date(2026, 11, 14)),
    ("今天", "SUN", date(2026, 11, 22)),
    ("昨天", "SUN", date(2026, 11, 21)),
    ("前天", "SUN", date(2026, 11, 20)),
    ("大前天", "SUN", date(2026, 11, 19)),
    ("三天前", "SUN", date(2026, 11, 19)),
    ("十天前", "SUN", date(2026, 11, 12)),
    ("两周前", "SUN", date(2026, 11, 8)),
    ("一个月前", "SUN", date(2026, 10, 22)),
    ("一个月前", "MAR31", date(2026, 2, 28)),
    ("半个月前", "SUN", date(2026, 11, 7)),
    ("半年前", "SUN", date(2026, 5, 22)),
    ("一年半前", "SUN", date(2025, 5, 22)),
    ("两年前", "SUN", date(2024, 11, 22)),
]

EN_DATE = [
    ("5 March 2026", "SUN", date(2026, 3, 5)),
    ("March 5th", "SUN", date(2026, 3, 5)),
    ("purchased on 1 Oct 2026", "SUN", date(2026, 10, 1)),
    ("bought it on Nov 3rd", "SUN", date(2026, 11, 3)),
    ("Dec 5", "SUN", date(2025, 12, 5)),
    ("3/15", "SUN", date(2026, 3, 15)),
    ("delivered on 10/01/2026", "SUN", date(2026, 10, 1)),
    ("on the 5th", "SUN", date(2026, 11, 5)),
    ("last March", "SUN", date(2026, 3, 1)),
    ("in March", "SUN", date(2026, 3, 1)),
    ("March 2025", "SUN", date(2025, 3, 1)),
    ("Christmas", "SUN", date(2025, 12, 25)),
    ("today", "SUN", date(2026, 11, 22)),
    ("yesterday", "SUN", date(2026, 11, 21)),
    ("ystd", "SUN", date(2026, 11, 21)),
    ("the day before yesterday", "SUN", date(2026, 11, 20)),
    ("3 days ago", "SUN", date(2026, 11, 19)),
    ("a week ago", "SUN", date(2026, 11, 15)),
    ("I bought it 2 weeks ago", "SUN", date(2026, 11, 8)),
    ("two months ago", "SUN", date(2026, 9, 22)),
    ("half a year ago", "SUN", date(2026, 5, 22)),
    ("a year ago", "SUN", date(2025, 11, 22)),
    ("last Wednesday", "SUN", date(2026, 11, 18)),
    ("Wednesday", "SUN", date(2026, 11, 18)),
    ("last week", "SUN", date(2026, 11, 15)),
    ("last weekend", "SUN", date(2026, 11, 14)),
    ("last month", "SUN", date(2026, 10, 22)),
    ("last month", "MAR31", date(2026, 2, 28)),
    ("last year", "SUN", date(2025, 11, 22)),
]


@pytest.mark.parametrize("text,now_key,expected", CN_DATE, ids=[f"{n}:{t}" for t, n, _ in CN_DATE])
def test_parse_date_chinese(text, now_key, expected):
    assert parse_date(text, NOWS[now_key]) == expected


@pytest.mark.parametrize("text,now_key,expected", EN_DATE, ids=[f"{n}:{t}" for t, n, _ in EN_DATE])
def test_parse_date_english(text, now_key, expected):
    assert parse_date(text, NOWS[now_key]) == expected


WHEN_ERRORS = [
    ("25点", "invalid_time"),
    ("明天25点", "invalid_time"),
    ("13pm", "invalid_time"),
    ("25:00", "invalid_time"),
    ("3:75", "invalid_time"),
    ("2月30号", "invalid_date"),
    ("February 30", "invalid_date"),
    ("13月5号", "invalid_date"),
    ("2027-02-29", "invalid_date"),
    ("昨天下午", "past"),
    ("yesterday afternoon", "past"),
    ("上周三", "past"),
    ("last Monday", "past"),
    ("三天前", "past"),
    ("three days ago", "past"),
    ("2025年12月5日", "past"),
    ("today 9am", "past"),
    ("周一，但周一不行", "unrecognised"),
    ("周一到周日都不行", "unrecognised"),
]


@pytest.mark.parametrize("text,code", WHEN_ERRORS, ids=[t for t, _ in WHEN_ERRORS])
def test_parse_when_errors(text, code):
    with pytest.raises(TimeParseError) as exc:
        parse_when(text, SUN)
    assert exc.value.code == code
    assert isinstance(exc.value, ValueError)
    assert str(exc.value) != ""


DATE_ERRORS = [
    ("明天", "future"),
    ("tomorrow", "future"),
    ("后天送到", "future"),
    ("next Monday", "future"),
    ("in 3 days", "future"),
    ("2026年12月5日", "future"),
    ("2月30号", "invalid_date"),
    ("February 30", "invalid_date"),
    ("13月5号", "invalid_date"),
    ("2025-02-29", "invalid_date"),
]


@pytest.mark.parametrize("text,code", DATE_ERRORS, ids=[t for t, _ in DATE_ERRORS])
def test_parse_date_errors(text, code):
    with pytest.raises(TimeParseError) as exc:
        parse_date(text, SUN)
    assert exc.value.code == code


NO_TIME = [
    "我的冰箱坏了",
    "hello",
    "快一点来",
    "5号楼漏水",
    "订单号12345",
    "电话13812345678",
    "空调不制冷了，型号KFR-35GW",
    "my fridge is broken",
    "may I ask a question",
    "24/7 support",
    "good morning",
    "早上好",
    "",
]


@pytest.mark.parametrize("text", NO_TIME)
def test_parse_when_none(text):
    assert parse_when(text, SUN) is None


@pytest.mark.parametrize("text", ["我的冰箱坏了", "hello", "下午", "3点", "my washer is leaking", ""])
def test_parse_date_none(text):
    assert parse_date(text, SUN) is None


def test_future_false_keeps_past_windows():
    w = parse_when("昨天下午", SUN, future=False)
    assert (w.start, w.end) == (datetime(2026, 11, 21, 13, tzinfo=SH), datetime(2026, 11, 21, 18, tzinfo=SH))
    w = parse_when("yesterday", SUN, future=False)
    assert (w.start, w.end) == (datetime(2026, 11, 21, tzinfo=SH), datetime(2026, 11, 22, tzinfo=SH))
    # no clipping to now either
    w = parse_when("今天", SUN, future=False)
    assert (w.start, w.end) == (datetime(2026, 11, 22, tzinfo=SH), datetime(2026, 11, 23, tzinfo=SH))


def test_result_fields():
    w = parse_when("明天下午能来吗 我在家", SUN)
    assert w == When(start=datetime(2026, 11, 23, 13, tzinfo=SH), end=datetime(2026, 11, 23, 18, tzinfo=SH),
                     excluded_weekdays=frozenset(), text="明天下午", granularity="part_of_day", daily=None)
    w = parse_when("can someone come tomorrow at 3pm pls", SUN)
    assert (w.text, w.granularity) == ("tomorrow at 3pm", "time")
    w = parse_when("Tuesday or Wednesday afternoon", SUN)
    assert (w.granularity, w.daily) == ("range", (time(13, 0), time(18, 0)))
    w = parse_when("周一不行", SUN)
    assert (w.text, w.granularity, w.excluded_weekdays) == ("周一不行", "range", frozenset({0}))
    w = parse_when("after 6pm", SUN)
    assert (w.text, w.granularity) == ("after 6pm", "time_range")
    with pytest.raises(dataclasses.FrozenInstanceError):
        w.start = SUN  # type: ignore[misc]


def test_results_use_callers_timezone():
    utc_now = datetime(2026, 11, 22, 2, 30, tzinfo=timezone.utc)
    w = parse_when("tomorrow at 3pm", utc_now)
    assert w.start == datetime(2026, 11, 23, 15, tzinfo=timezone.utc)
    assert w.start.tzinfo is timezone.utc and w.end.tzinfo is timezone.utc
    assert parse_date("yesterday", utc_now) == date(2026, 11, 21)


def test_naive_now_rejected():
    with pytest.raises(ValueError):
        parse_when("明天", datetime(2026, 11, 22, 10, 30))


def test_table_sizes():
    assert len(CN_WHEN) >= 65 and len(EN_WHEN) >= 65
    assert len(CN_DATE) >= 20 and len(EN_DATE) >= 20
