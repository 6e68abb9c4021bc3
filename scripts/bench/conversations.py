"""The scripted conversations the benchmark sends.

Ours: complaint and repair-visit booking conversations in Chinese and English that run the six-step script,
write tickets, ticket events and visits, and work against the seeded demo data (data/seed/catalogue.yml); the
lines are those of tests/test_conversations.py and tests/test_script.py (a button press is sent as its payload,
as a channel does). Each turn may carry the text the reply must contain (any one of them), so that a run where
the bot went off script is reported, not silently timed.

Reference: Rasa's starter assistant (`rasa init`, "moodbot") in its own kind of conversation: greetings and moods.
"""
from __future__ import annotations

Turn = tuple[str, tuple[str, ...]]  # (message, the reply contains one of these; empty: anything non-empty)

TICKET = ("SV-",)
# Confirming a visit: booked (the ticket number), or the window was just taken by a conversation running at the
# same time and the bot offers other windows; after that, the bot may still be waiting for a window to be picked.
BOOKED = ("SV-", "taken", "约走")

ZH_COMPLAINT: list[Turn] = [
    ("你们这什么破冰箱！！买了才几天就不制冷了，里面的肉全臭了", ()),
    ("我还专门请了一天假在家等着，气死我了", ()),
    ("你们打算怎么处理？", ("抱歉",)),
    ("对，就是这样", ("型号",)),
    ("不知道型号", ()),
    ("订单号JD240512345678", ("手机",)),  # an order number alone links nobody (issue 18): the phone on it does
    ("13812345678", ("地址",)),
    ("北京市朝阳区望京西路8号院3号楼1单元502", ("时间",)),
    ("明天下午", ("依据条款",)),
    ("可以", TICKET),
    ("我的工单到哪了", TICKET),
]

EN_COMPLAINT: list[Turn] = [
    ("I am so angry, my new washing machine is leaking water all over the floor!!", ()),
    ("and I had to take a day off work to deal with it", ()),
    ("that's all, what are you going to do?", ("sorry",)),
    ("yes", ("model",)),
    ("XQG100-HBD14126L", ()),
    ("order TM2026101500123", ("mobile",)),
    ("13998765432", ("address",)),
    ("Room 1202, 18 Tiyu West Road, Tianhe District, Guangzhou", ("When",)),
    ("tomorrow afternoon", ("Policy clause",)),
    ("yes that works", TICKET),
    ("where is my repair", TICKET),
]

# Out of warranty: self-check offered first (declined with the button), then a paid repair, a visit window picked
# with the first button and confirmed. Visits are booked in the engineers' real free windows; when a window is
# full the bot offers other ones, so the checks only ask for what every path shows.
ZH_BOOKING: list[Turn] = [
    ("冰箱不制冷了，帮我派人上门来修", ("抱歉",)),  # a first fault: a repair (a repeat failure is a complaint since issue 16)
    ("对", ("型号",)),
    ("BCD-215STPA", ()),
    ("四年前买的", ("手机号",)),
    ("13812345678", ("地址",)),
    ("北京市朝阳区望京西路8号院3号楼1单元502", ("时间",)),
    ("明天下午", ("依据条款",)),
    ("/deny", ("付费",)),
    ("可以", ()),
    ("1", ()),
    ("确认", BOOKED),
    ("冰箱保修多久", ("保修", "选一个")),
]

EN_BOOKING: list[Turn] = [
    ("my washing machine won't drain anymore, please send an engineer", ("sorry",)),
    ("yes", ("model",)),
    ("XQB80-Z3028", ()),
    ("bought it four years ago", ("mobile",)),
    ("13700001111", ("address",)),
    ("Room 1202, 18 Tiyu West Road, Tianhe District, Guangzhou", ("When",)),
    ("tomorrow afternoon", ("Policy clause",)),
    ("no", ("paid repair",)),
    ("ok", ()),
    ("1", ()),
    ("yes", BOOKED),
    ("how much is a call out for the washing machine", ("CNY", "pick one")),
]

OURS = [ZH_COMPLAINT, EN_COMPLAINT, ZH_BOOKING, EN_BOOKING]

# One long conversation: a repair request that opens a ticket and is put on hold, then status questions alternating
# with self-service questions (warranty, fees, self-check, service centres), in both languages, for as long as
# needed. Turn t >= 3 sends LONG_LOOP[(t - 3) % 8], so any 8 consecutive turns from turn 3 on are the same mix.
LONG_PREAMBLE: list[Turn] = [
    ("冰箱漏水了，帮我修一下", ("抱歉",)),
    ("不用了，先这样吧", TICKET),
]
LONG_LOOP: list[Turn] = [
    ("我的工单到哪了", TICKET),
    ("how long is the warranty on a fridge", ("months",)),
    ("我的工单到哪了", TICKET),
    ("洗衣机上门费多少钱", ("上门费",)),
    ("where is my repair", TICKET),
    ("洗衣机不排水怎么办", ("过滤器",)),
    ("我的工单到哪了", TICKET),
    ("where is your service centre in Shanghai", ("Zhangjiang",)),
]

REF_SAD = [("hello", ()), ("I am very sad", ()), ("yes", ()), ("bye", ())]
REF_HAPPY = [("hey there", ()), ("I am feeling great", ()), ("are you a bot?", ()), ("goodbye", ())]
REF_UNHAPPY = [("good morning", ()), ("I am unhappy", ()), ("no", ()), ("good night", ())]
REFERENCE = [REF_SAD, REF_HAPPY, REF_UNHAPPY]
REF_LONG_PREAMBLE: list[Turn] = [("hi", ()), ("how are you?", ())]
REF_LONG_LOOP: list[Turn] = [("hello", ()), ("I am sad", ()), ("yes", ()), ("great", ()),
                             ("hey", ()), ("not good", ()), ("no", ()), ("are you a bot?", ())]


def long_turns(preamble: list[Turn], loop: list[Turn], total: int) -> list[Turn]:
    return preamble + [loop[i % len(loop)] for i in range(total - len(preamble))]
