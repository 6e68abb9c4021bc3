"""Heuristic anger/frustration score (0..1) for zh/en customer messages: weighted lexicon, intensifiers,
punctuation storms, ALL CAPS, repeated characters and profanity, damped by politeness markers."""

from __future__ import annotations

import math
import re
from typing import List, Pattern, Tuple

__all__ = ["ANGRY_THRESHOLD", "CALM_THRESHOLD", "anger_score", "anger_signals", "lexicon_score"]

ANGRY_THRESHOLD = 0.6
CALM_THRESHOLD = 0.3
# P(angry) from which the classifier's word counts: the lowest cut whose out-of-fold precision (5-fold
# cross-validation on data/anger/ only, scripts/experiments/anger_cut.py) is >= 0.90 (2026-12-05: 0.55 gives
# P 0.905 / R 0.798 out of fold; 0.5 gave P 0.891 / R 0.847).
CLASSIFIER_CUT = 0.55


def _zh(pairs: List[Tuple[str, float]]) -> List[Tuple[Pattern[str], float]]:
    return [(re.compile(p), w) for p, w in pairs]


def _en(pairs: List[Tuple[str, float]]) -> List[Tuple[Pattern[str], float]]:
    return [(re.compile(rf"(?<![a-z])(?:{p})(?![a-z])", re.I), w) for p, w in pairs]


# Chinese lexicon: regex -> weight. Tiers: ~0.8 strong (alone clearly angry), ~0.55
# medium (angry unless softened), ~0.25 weak (frustration cue, needs company).
_ZH_LEXICON = _zh(
    [
        (r"气死|气炸|气疯|肺都气|气得我", 0.85),
        (r"(?<![倒扔丢捡清])垃圾(?![袋桶箱分带清堆站处])", 0.7),
        (r"(?<![打突划摔撞弄戳磨])破(?![了损裂洞坏掉皮解产费例])", 0.3),
        (r"骗子|骗钱|诈骗|骗鬼", 0.8),
        (r"骗人|欺骗|忽悠|糊弄", 0.55),
        (r"投诉", 0.55),
        (r"曝光|上新闻|找媒体|发微博|发抖音|全网|小红书", 0.6),
        (r"12315|消协|消费者协会|工商局|市场监管|举报", 0.65),
        (r"差评", 0.55),
        (r"太过分|过分了", 0.7),
        (r"过分", 0.3),
        (r"什么玩意|啥玩意|什么东西啊|什么鬼|搞什么鬼|什么狗屁", 0.7),
        (r"无语", 0.55),
        (r"退钱|还钱|赔钱|赔我|必须赔|谁赔|赔偿", 0.55),
        (r"坑人|坑爹|黑心|奸商|坑钱", 0.7),
        (r"耍我|耍人|玩我|好欺负|欺负人", 0.6),
        (r"敷衍|踢皮球|推卸|推脱|模板回复|扯皮", 0.45),
        (r"恶心", 0.6),
        (r"受够了|忍无可忍|忍不了|忍了.{0,4}了|别逼我|逼我", 0.7),
        (r"(?<!打)滚(?![筒轮动烫开])", 0.55),
        (r"妈的|他妈|你妈|尼玛|草泥马|操你|卧槽|我靠|傻逼|煞笔|(?<![A-Za-z])[sS][bB](?![A-Za-z])"
         r"|脑残|狗屁|放屁|去死|死了吗|瞎了眼", 0.85),
        (r"废物|白痴|蠢货|要你们何用|有什么用|一问三不知", 0.6),
        (r"律师|起诉|法院|告你们|告你|违法|法律", 0.65),
        (r"多少次|几次了|第[二三四五六七八九十]次|[N n]次|又坏了|又出|一拖再拖|拖了|拖下去|还要拖", 0.35),
        (r"最烂|最差|太差|差劲|烂透|太烂|很烂|真烂|烂货", 0.6),
        (r"不耐烦|态度恶劣|态度差|态度太差|什么素质|没素质|骂人", 0.55),
        (r"急死|烦死|烦透|崩溃|抓狂|心累", 0.5),
        (r"生气|愤怒|火大|恼火|发火|气人", 0.55),
        (r"离谱|搞什么|搞啥|笑话|开玩笑", 0.5),
        (r"有病|神经病", 0.6),
        (r"再也不买|再也不会买|最后一次买|拉黑|倒闭", 0.6),
        (r"后悔", 0.3),
        (r"到底|究竟", 0.15),
        (r"怎么还|还没|还不|一直没|没人来|没人接|没人管|没人理|不理人|不管了", 0.18),
        (r"凭什么|什么态度|说句人话|人话|机器人吗", 0.5),
        (r"必须|立刻|马上给我|给我个交代|给个说法|谁负责|负责吗|对不起就完了", 0.35),
        (r"放我鸽子|放鸽子|砸了|翻新机", 0.45),
    ]
)

_EN_LEXICON = _en(
    [
        (r"worst", 0.7),
        (r"garbage|trash|rubbish|junk|shoddy", 0.65),
        (r"useless|hopeless|pathetic|incompetent|clueless", 0.65),
        (r"ridiculous|outrageous|absurd|unbelievable", 0.6),
        (r"unacceptable|disgraceful|disgusting|shameful|appalling|a disgrace", 0.7),
        (r"scam(?:mer)?s?|fraud|rip[- ]?off|cheat(?:ed|ers?)?|liars?|lied|lying", 0.7),
        (r"furious|livid|enraged|outraged|fuming|raging|seething", 0.85),
        (r"angry|mad at|pissed(?: off)?|upset|annoyed|irritated|frustrated|frustrating", 0.5),
        (r"sue|suing|lawyers?|legal action|court|solicitor", 0.7),
        (r"report(?:ing)? (?:you|this|your company)|bbb|consumer protection|the press"
         r"|the media|(?:bad |negative )?reviews? on every|posting this everywhere", 0.65),
        (r"wtf|what the (?:hell|heck|fuck)|omfg", 0.75),
        (r"terrible|awful|horrible|horrendous|atrocious|rude", 0.5),
        (r"fed up|sick (?:and tired )?of|had enough|enough is enough|last straw", 0.7),
        (r"never again|never (?:buy|buying)|won'?t (?:buy|recommend)", 0.5),
        (r"(?:want|give me) my money back|refund me|money back|compensate", 0.45),
        (r"complain(?:t|ts|ing)?", 0.35),
        (r"bad review|1[- ]star|one star", 0.5),
        (r"joke|clowns?|kidding me|are you serious|seriously\?+|you deserve", 0.45),
        (r"how many times|again and again|still (?:not|no|broken|waiting)|nobody (?:called|came|cares)"
         r"|no one (?:called|came|cares)", 0.35),
        (r"waste of (?:money|time)|wast(?:ed|ing) (?:my|two|three|\w+ days)", 0.5),
        (r"thanks for nothing", 0.7),
        (r"stupid|idiots?|morons?|dumb", 0.6),
        (r"damn(?:ed|it)?|dammit|crap(?:py)?|hell|screw (?:you|your|this)|piece of (?:junk|crap)", 0.55),
        (r"shit(?:ty)?|bullshit|bs|fuck\w*|f\*+k|asshole|bastards?", 0.85),
        (r"hate", 0.5),
        (r"don'?t you dare|do your job|get me (?:your|a) manager|for once|excuses", 0.4),
        (r"are you (?:even )?listening|trying to kill", 0.45),
    ]
)
_ANGRY_EMOJI = re.compile("[\U0001F620\U0001F621\U0001F624\U0001F92C\U0001F4A2\U0001F47F\U0001F595]")
_DOWNTONERS = re.compile(
    r"有点|有些|稍微|稍稍|一点点|略微|略有|(?<![a-z])(?:a bit|a little|slightly|mildly|somewhat|"
    r"kind of|kinda|a tad)(?![a-z])",
    re.I,
)

_ZH_INTENSIFIERS = re.compile(r"太|真是|真的|非常|特别|简直|根本|实在|完全|超级|极其")
_EN_INTENSIFIERS = re.compile(
    r"(?<![a-z])(?:so|very|really|totally|absolutely|completely|extremely|utterly|fucking|"
    r"freaking|bloody)(?![a-z])",
    re.I,
)
_ZH_POLITE = re.compile(r"请|麻烦|谢谢|感谢|多谢|辛苦|劳驾|您好|不好意思|打扰")
_EN_POLITE = re.compile(
    r"(?<![a-z])(?:please|pls|plz|thanks|thank you|thx|appreciate|kindly|could you|"
    r"would you|sorry to bother|grateful)(?![a-z])",
    re.I,
)
_SARCASTIC_THANKS = re.compile(r"thanks for nothing|谢谢你们全家|谢了您嘞", re.I)
_CAPS_EXEMPT = {
    "TV", "AC", "APP", "WIFI", "SMS", "USB", "LED", "ID", "OK", "PM", "AM", "USA", "UK",
    "FAQ", "LCD", "OLED", "CEO", "HVAC", "ASAP", "FYI", "BTW", "II", "III", "IT", "EU",
}


def _count(pattern: Pattern[str], text: str) -> int:
    return len(pattern.findall(text))


def anger_signals(text: str) -> dict:
    """Returns the raw signal breakdown used by :func:`anger_score` (for debugging)."""
    signals = {
        "lexicon": 0.0,
        "intensifiers": 0,
        "downtoners": 0,
        "punctuation": 0.0,
        "caps": 0.0,
        "repeats": 0.0,
        "emoji": 0.0,
        "politeness": 0,
    }
    if not isinstance(text, str) or not text.strip():
        return signals

    hits: List[float] = []
    for pattern, weight in _ZH_LEXICON + _EN_LEXICON:
        n = len(pattern.findall(text))
        if n:
            # repeated use of the same word adds a little, not linearly
            hits.append(weight * (1.0 + 0.25 * min(n - 1, 2)))
    hits.sort(reverse=True)
    # diminishing returns for many different hits
    signals["lexicon"] = sum(h * (0.8 ** i) for i, h in enumerate(hits))

    signals["intensifiers"] = _count(_ZH_INTENSIFIERS, text) + _count(_EN_INTENSIFIERS, text)
    signals["downtoners"] = _count(_DOWNTONERS, text)

    punct = 0.0
    for run in re.findall(r"[!！?？]{2,}", text):
        bangs = sum(ch in "!！" for ch in run)
        qs = len(run) - bangs
        if bangs and qs:
            punct += 0.3 + 0.05 * min(len(run) - 2, 4)
        elif bangs:
            punct += 0.2 + 0.1 * min(len(run) - 2, 3)
        else:
            punct += 0.15 + 0.08 * min(len(run) - 2, 3)
    if not re.search(r"[!！]{2,}", text):
        punct += 0.05 * min(len(re.findall(r"[!！]", text)), 2)
    signals["punctuation"] = min(punct, 0.7)

    # ignore codes such as JSQ30-16WH5 / SV-20240312-0087 when looking for shouting
    words = re.findall(r"[A-Za-z]{2,}", re.sub(r"(?<![A-Za-z0-9./-])[A-Za-z0-9./-]*\d[A-Za-z0-9./-]*", " ", text))
    caps = [w for w in words if len(w) >= 3 and w.isupper() and w not in _CAPS_EXEMPT]
    if caps:
        ratio = len(caps) / max(len([w for w in words if len(w) >= 3]), 1)
        if len(caps) >= 2 and ratio >= 0.8:
            signals["caps"] = 0.65  # the whole message is shouted
        elif len(caps) >= 2 and ratio >= 0.5:
            signals["caps"] = 0.45
        else:
            signals["caps"] = min(0.2 * len(caps), 0.4)

    repeats = len(re.findall(r"([A-Za-z])\1{2,}", text))  # sooooo, noooo
    repeats += len(re.findall(r"([啊呵哎唉靠操艹])\1{2,}", text))
    repeats += len(re.findall(r"([\u4e00-\u9fff]{2,4})\1{2,}", text))  # 投诉投诉投诉
    signals["repeats"] = min(0.15 * repeats, 0.3)

    emoji = len(_ANGRY_EMOJI.findall(text))
    signals["emoji"] = min(0.45 + 0.1 * (emoji - 1), 0.65) if emoji else 0.0

    polite = _count(_ZH_POLITE, text) + _count(_EN_POLITE, text)
    polite -= _count(_SARCASTIC_THANKS, text)
    signals["politeness"] = max(polite, 0)
    return signals


def anger_score(text: str) -> float:
    """Scores how angry a message sounds, in [0, 1]: the lexicon score below, raised into the angry range
    (>= ``ANGRY_THRESHOLD``) when the classifier trained on data/anger/ hears anger the lexicon missed
    (bot/nlu/anger_model.py). Calm messages stay below ``CALM_THRESHOLD`` (0.3) unless the classifier hears anger.
    """
    from bot.nlu.anger_model import anger_probability

    lexicon = lexicon_score(text)
    if not _classifier_applies(text):
        return lexicon
    return raised(lexicon, anger_probability(text, lexicon))


def raised(lexicon: float, p: float, cut: float = CLASSIFIER_CUT) -> float:
    """The lexicon score raised into the angry range by the classifier's P(angry) `p` when it reaches `cut`."""
    if p < cut:
        return lexicon
    return max(lexicon, round(ANGRY_THRESHOLD + (1.0 - ANGRY_THRESHOLD) * (p - cut) / (1.0 - cut), 4))


def _classifier_applies(text: str) -> bool:
    """Character n-grams say little about a very short message (fewer than 6 Chinese characters or 4 words:
    "还没到吗"), and a softened one ("mildly", 有点, "please") is not heard as anger by it either: the lexicon,
    which weighs softeners, scores those alone."""
    if not text or _DOWNTONERS.search(text) or anger_signals(text)["politeness"]:
        return False
    return len(_HAN_RUN.findall(text)) >= 6 or len(re.findall(r"[A-Za-z]+", text)) >= 4


_HAN_RUN = re.compile(r"[\u4e00-\u9fff]")


def lexicon_score(text: str) -> float:
    """The lexicon's own score in [0, 1]: clearly angry words, intensifiers, punctuation storms, CAPS, profanity,
    damped by politeness (calm < ``CALM_THRESHOLD``, clearly angry > ``ANGRY_THRESHOLD``)."""
    s = anger_signals(text)
    lexicon = s["lexicon"]
    if lexicon:
        # intensifiers amplify, downtoners ("a bit", 有点) soften an existing signal
        lexicon *= 1.0 + 0.2 * min(s["intensifiers"], 3)
        lexicon *= 0.55 ** min(s["downtoners"], 2)
    emphasis = s["punctuation"] + s["caps"] + s["repeats"] + s["emoji"]
    raw = lexicon + emphasis
    if lexicon and emphasis:
        # emphasis compounds with angry words
        raw += 0.5 * min(lexicon, 1.0) * emphasis
    if s["politeness"]:
        raw = max(0.0, raw - 0.25 * min(s["politeness"], 2)) * (0.85 if raw > 0.8 else 1.0)
    score = 1.0 - math.exp(-1.8 * raw)
    return round(max(0.0, min(1.0, score)), 4)
