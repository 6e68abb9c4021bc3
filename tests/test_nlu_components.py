"""Table-driven tests for bot.nlu extract/language/anger and the Rasa components (tiny train+parse)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import List, Optional, Tuple

import pytest

from bot.nlu.anger import ANGRY_THRESHOLD, CALM_THRESHOLD, anger_score
from bot.nlu.extract import extract_entities
from bot.nlu.language import detect_language, normalize_language_tag

# --------------------------------------------------------------------------- #
# extract_entities: (text, [(entity, value, surface text), ...] in text order)
# --------------------------------------------------------------------------- #

E = Tuple[str, str, str]

ENTITY_CASES: List[Tuple[str, List[E]]] = [
    # phone
    ("我的手机号是138 1234 5678，请尽快联系", [("phone", "+8613812345678", "138 1234 5678")]),
    ("电话：+86 138-1234-5678", [("phone", "+8613812345678", "+86 138-1234-5678")]),
    ("0086 13912345678", [("phone", "+8613912345678", "0086 13912345678")]),
    ("+8613812345678", [("phone", "+8613812345678", "+8613812345678")]),
    ("008613812345678", [("phone", "+8613812345678", "008613812345678")]),
    ("联系电话 +86 139 1234 5678", [("phone", "+8613912345678", "+86 139 1234 5678")]),
    ("手机１３８１２３４５６７８", [("phone", "+8613812345678", "１３８１２３４５６７８")]),  # full-width
    (
        "call me on 13812345678 tomorrow afternoon",
        [("phone", "+8613812345678", "13812345678"), ("date_time", "tomorrow afternoon", "tomorrow afternoon")],
    ),
    (
        "my number is 138-1234-5678, call after 6pm",
        [("phone", "+8613812345678", "138-1234-5678"), ("date_time", "after 6pm", "after 6pm")],
    ),
    ("138-1234-5678-9", []),  # part of a longer dash-joined number
    ("12013812345678", [("order_id", "12013812345678", "12013812345678")]),  # phone digits inside an id
    # order_id
    ("订单号123813812345678", [("order_id", "123813812345678", "123813812345678")]),  # no phone inside
    ("订单号 JD1234567890 查一下", [("order_id", "JD1234567890", "JD1234567890")]),
    ("order TM-12345678901234 please", [("order_id", "TM12345678901234", "TM-12345678901234")]),
    ("order no. so12345678901 shipped", [("order_id", "SO12345678901", "so12345678901")]),
    ("订单JD-1234567890", [("order_id", "JD1234567890", "JD-1234567890")]),
    ("138123456789", [("order_id", "138123456789", "138123456789")]),  # 12 digits: not a phone
    ("tracking 1234567890123456789", [("order_id", "1234567890123456789", "1234567890123456789")]),
    (
        "电话138 1234 5678 订单 123456789012",
        [("phone", "+8613812345678", "138 1234 5678"), ("order_id", "123456789012", "123456789012")],
    ),
    ("1234567890123456789012", []),  # 22 digits: too long for anything
    # ticket_number
    ("工单号SV-20261120-0012进度", [("ticket_number", "SV-20261120-0012", "SV-20261120-0012")]),
    ("ticket sv202611200012 status", [("ticket_number", "SV-20261120-0012", "sv202611200012")]),
    ("SV 20261120 0012", [("ticket_number", "SV-20261120-0012", "SV 20261120 0012")]),
    ("SV-20261340-0012", []),  # month 13 is not a date
    # product_model (+ product)
    (
        "空调型号KFR-35GW/BP3DN8Y不制冷",
        [("product", "air_conditioner", "空调"), ("product_model", "KFR-35GW/BP3DN8Y", "KFR-35GW/BP3DN8Y")],
    ),
    (
        "BCD-470WDPG冰箱不制冷",
        [("product_model", "BCD-470WDPG", "BCD-470WDPG"), ("product", "fridge", "冰箱")],
    ),
    (
        "XQG100-HBD14126L 洗衣机 E4",
        [("product_model", "XQG100-HBD14126L", "XQG100-HBD14126L"), ("product", "washing_machine", "洗衣机")],
    ),
    (
        "JSQ30-16WH5热水器",
        [("product_model", "JSQ30-16WH5", "JSQ30-16WH5"), ("product", "water_heater", "热水器")],
    ),
    ("55E3F电视没有声音", [("product_model", "55E3F", "55E3F"), ("product", "tv", "电视")]),
    (
        "CXW-220-E900C11油烟机",
        [("product_model", "CXW-220-E900C11", "CXW-220-E900C11"), ("product", "range_hood", "油烟机")],
    ),
    (
        "WQP12-7201 dishwasher",
        [("product_model", "WQP12-7201", "WQP12-7201"), ("product", "dishwasher", "dishwasher")],
    ),
    ("EC6001-MC5 keeps beeping", [("product_model", "EC6001-MC5", "EC6001-MC5")]),
    ("model BCD-470WDPG/A.", [("product_model", "BCD-470WDPG/A", "BCD-470WDPG/A")]),
    ("空调显示E4", [("product", "air_conditioner", "空调")]),  # E4 is an error code
    (
        "the AC shows E4 at 3pm",
        [("product", "air_conditioner", "AC"), ("date_time", "at 3pm", "at 3pm")],
    ),
    ("it says 3pm on the screen", [("date_time", "3pm", "3pm")]),  # 3pm is not a model
    ("10AM works", [("date_time", "10AM", "10AM")]),
    ("WIFI6 router", []),
    ("220V socket", []),
    ("kfr-35gw/bp3dn8y", []),  # model codes are upper-case
    ("1.5匹的挂机", [("product", "air_conditioner", "挂机")]),  # 1.5匹 is a size
    # product gazetteer
    ("my ACcount is locked", []),  # "AC" only as a whole word
    ("a/c not cooling", [("product", "air_conditioner", "a/c")]),
    ("my aircon is leaking", [("product", "air_conditioner", "aircon")]),
    ("我的空掉坏了", [("product", "air_conditioner", "空掉")]),
    ("柜机不出风", [("product", "air_conditioner", "柜机")]),
    ("我的冰相坏了", [("product", "fridge", "冰相")]),
    (
        "my fridge and freezer",
        [("product", "fridge", "fridge"), ("product", "fridge", "freezer")],
    ),
    ("The refrigerator is noisy", [("product", "fridge", "refrigerator")]),
    ("滚筒漏水", [("product", "washing_machine", "滚筒")]),
    ("The washing machine is broken", [("product", "washing_machine", "washing machine")]),
    ("the boiler is leaking", [("product", "water_heater", "boiler")]),
    ("My AIR CONDITIONER isn't working", [("product", "air_conditioner", "AIR CONDITIONER")]),
    ("电视机黑屏", [("product", "tv", "电视机")]),
    ("good morning, my tv is broken", [("product", "tv", "tv")]),
    ("抽油烟机噪音大", [("product", "range_hood", "抽油烟机")]),
    ("the cooker hood is loud", [("product", "range_hood", "cooker hood")]),
    ("the extractor is loud", [("product", "range_hood", "extractor")]),
    ("洗碗机漏水", [("product", "dishwasher", "洗碗机")]),
    ("dish washer won't drain", [("product", "dishwasher", "dish washer")]),
    ("燃气灶打不着火", [("product", "gas_hob", "燃气灶")]),
    ("煤气灶打不着火", [("product", "gas_hob", "煤气灶")]),
    ("gas stove won't light", [("product", "gas_hob", "gas stove")]),
    ("微波炉不加热", [("product", "microwave", "微波炉")]),
    ("the Microwave sparks", [("product", "microwave", "Microwave")]),
    # date_time, Chinese
    ("明天下午三点可以上门吗", [("date_time", "明天下午三点", "明天下午三点")]),
    ("下周二上午", [("date_time", "下周二上午", "下周二上午")]),
    ("周六有空", [("date_time", "周六", "周六")]),
    ("晚上七点以后", [("date_time", "晚上七点以后", "晚上七点以后")]),
    ("大后天吧", [("date_time", "大后天", "大后天")]),
    ("月底前能修好吗", [("date_time", "月底前", "月底前")]),
    ("3月5号买的", [("date_time", "3月5号", "3月5号")]),
    ("2026年3月5日安装的", [("date_time", "2026年3月5日", "2026年3月5日")]),
    (
        "去年双十一买的冰箱",
        [("date_time", "去年双十一", "去年双十一"), ("product", "fridge", "冰箱")],
    ),
    (
        "上个月买的洗衣机",
        [("date_time", "上个月", "上个月"), ("product", "washing_machine", "洗衣机")],
    ),
    ("能不能今天晚上八点半来", [("date_time", "今天晚上八点半", "今天晚上八点半")]),
    ("这个月5号", [("date_time", "这个月5号", "这个月5号")]),
    ("三天后再来", [("date_time", "三天后", "三天后")]),
    ("周五前台联系我", [("date_time", "周五", "周五")]),  # 前 belongs to 前台
    ("快一点好吗", []),  # 一点 = "a little"
    ("下午好", []),  # greeting
    # date_time, English
    ("tomorrow afternoon", [("date_time", "tomorrow afternoon", "tomorrow afternoon")]),
    (
        "can someone come next Tuesday morning?",
        [("date_time", "next Tuesday morning", "next Tuesday morning")],
    ),
    ("this weekend", [("date_time", "this weekend", "this weekend")]),
    ("in two days", [("date_time", "in two days", "in two days")]),
    ("fix it at 15:30", [("date_time", "at 15:30", "at 15:30")]),
    ("what about March 5th at 3pm?", [("date_time", "March 5th at 3pm", "March 5th at 3pm")]),
    ("I bought it last March", [("date_time", "last March", "last March")]),
    ("I bought it 2 weeks ago", [("date_time", "2 weeks ago", "2 weeks ago")]),
    ("it broke yesterday", [("date_time", "yesterday", "yesterday")]),
    ("can an installer come on Saturday", [("date_time", "Saturday", "Saturday")]),
    ("installed in 2021", [("date_time", "2021", "2021")]),
    ("between 2 and 4pm", [("date_time", "between 2 and 4pm", "between 2 and 4pm")]),
    ("you may 5 times", []),  # modal "may" is not a month
    ("good morning", []),
]


@pytest.mark.parametrize("text,expected", ENTITY_CASES, ids=[c[0] for c in ENTITY_CASES])
def test_extract_entities(text: str, expected: List[E]) -> None:
    entities = extract_entities(text)
    assert [(e["entity"], e["value"], e["text"]) for e in entities] == expected
    for e in entities:
        assert set(e) == {"entity", "value", "start", "end", "text"}
        assert text[e["start"]:e["end"]] == e["text"]


def test_extract_offsets_exact() -> None:
    text = "电话13812345678，订单JD1234567890"
    assert extract_entities(text) == [
        {"entity": "phone", "value": "+8613812345678", "start": 2, "end": 13, "text": "13812345678"},
        {"entity": "order_id", "value": "JD1234567890", "start": 16, "end": 28, "text": "JD1234567890"},
    ]


@pytest.mark.parametrize("text", ["", "   ", "😀😀", "!!!"])
def test_extract_nothing(text: str) -> None:
    assert extract_entities(text) == []


# --------------------------------------------------------------------------- #
# detect_language
# --------------------------------------------------------------------------- #

LANGUAGE_CASES: List[Tuple[str, Optional[str]]] = [
    ("我的wifi连不上", "zh"),
    ("这个app打不开", "zh"),
    ("空调不制冷了", "zh"),
    ("你好", "zh"),
    ("好", "zh"),
    ("SV-20261120-0012 进度怎么样", "zh"),
    ("ok", "en"),
    ("yes", "en"),
    ("no", "en"),
    ("hi", "en"),
    ("thanks", "en"),
    ("heyyy", "en"),
    ("My fridge is not cooling", "en"),
    ("The AC shows E4", "en"),
    ("my 空调 is broken", "en"),
    ("ok 👍", "en"),
    ("Bonjour, mon frigo ne marche plus", "other"),
    ("Ça ne marche pas", "other"),
    ("Hola, mi nevera no funciona", "other"),
    ("Mein Kühlschrank funktioniert nicht mehr", "other"),
    ("Il mio frigorifero non funziona", "other"),
    ("冷蔵庫が壊れました", "other"),
    ("냉장고가 고장났어요", "other"),
    ("Мой холодильник не работает", "other"),
    ("ثلاجتي لا تعمل", "other"),
    ("😀😀", None),
    ("!!!???", None),
    ("13812345678", None),
    ("+86 138-1234-5678", None),
    ("KFR-35GW/BP3DN8Y", None),
    ("", None),
    ("   ", None),
]


@pytest.mark.parametrize("text,expected", LANGUAGE_CASES, ids=[repr(c[0]) for c in LANGUAGE_CASES])
def test_detect_language(text: str, expected: Optional[str]) -> None:
    code, confidence = detect_language(text)
    assert code == expected
    assert 0.0 <= confidence <= 1.0
    if expected is None:
        assert confidence == 0.0
    else:
        assert confidence >= 0.5


def test_pinyin_is_not_confident_english() -> None:
    code, confidence = detect_language("nihao")
    assert code == "en" and confidence < 0.5


@pytest.mark.parametrize(
    "tag,expected",
    [("zh-hans", "zh"), ("zh_CN", "zh"), ("en-GB", "en"), ("EN", "en"), ("fr", None), (None, None), ("", None)],
)
def test_normalize_language_tag(tag: Optional[str], expected: Optional[str]) -> None:
    assert normalize_language_tag(tag) == expected


# --------------------------------------------------------------------------- #
# anger_score: (text, "calm" < 0.3 | "angry" > 0.6 | "mid" in between)
# --------------------------------------------------------------------------- #

ANGER_CASES: List[Tuple[str, str]] = [
    ("你好，我的空调不制冷了，请帮忙看一下", "calm"),
    ("麻烦帮我查一下订单，谢谢", "calm"),
    ("明天下午可以上门吗", "calm"),
    ("滚筒洗衣机不转了", "calm"),
    ("请问怎么退货", "calm"),
    ("请尽快处理，谢谢！", "calm"),
    ("师傅没把垃圾带走", "calm"),
    ("Hi, my fridge is not cooling, could you help please?", "calm"),
    ("Thanks, that works for me", "calm"),
    ("Hello, is anyone there?", "calm"),
    ("the water heater model is JSQ30-16WH5", "calm"),
    ("I want to book a repair for my washing machine", "calm"),
    ("气死我了！！！", "angry"),
    ("什么破空调，垃圾！", "angry"),
    ("你们就是骗子，我要去12315投诉，还要曝光你们！！！", "angry"),
    ("太过分了，等了一个星期还没人来", "angry"),
    ("什么玩意，退钱！", "angry"),
    ("无语，差评！！", "angry"),
    ("这都第三次了，到底修不修？？？", "angry"),
    ("This is the WORST service ever!!!", "angry"),
    ("garbage product, absolutely useless", "angry"),
    ("This is ridiculous and unacceptable", "angry"),
    ("You are scammers, I will sue you", "angry"),
    ("I am furious. wtf", "angry"),
    ("I'll report you", "angry"),
    ("WHY IS NOBODY ANSWERING MY CALLS", "angry"),
    ("fucking useless", "angry"),
    ("还没到吗", "calm"),
    ("能不能快点？？？", "mid"),
    ("mildly annoyed the installer was late", "mid"),
    ("Please fix it, this is unacceptable", "mid"),
]


@pytest.mark.parametrize("text,level", ANGER_CASES, ids=[c[0] for c in ANGER_CASES])
def test_anger_score(text: str, level: str) -> None:
    score = anger_score(text)
    assert 0.0 <= score <= 1.0
    if level == "calm":
        assert score < CALM_THRESHOLD
    elif level == "angry":
        assert score > ANGRY_THRESHOLD
    else:
        assert CALM_THRESHOLD <= score <= ANGRY_THRESHOLD


def test_anger_threshold_constant_and_ordering() -> None:
    assert ANGRY_THRESHOLD == 0.6
    assert anger_score("") == 0.0
    assert anger_score("垃圾") < anger_score("垃圾！！！") < anger_score("真的太垃圾了！！！")
    assert anger_score("this is unacceptable") > anger_score("please, this is unacceptable")


# --------------------------------------------------------------------------- #
# Rasa components (direct)
# --------------------------------------------------------------------------- #


def _make(cls, config=None):
    from rasa.engine.graph import ExecutionContext
    from rasa.engine.storage.local_model_storage import LocalModelStorage
    from rasa.engine.storage.resource import Resource

    return cls.create(
        {**cls.get_default_config(), **(config or {})},
        LocalModelStorage(Path("/nonexistent-unused")),
        Resource(cls.__name__),
        ExecutionContext({}, "test"),
    )


def test_language_detector_component_sets_entity_property_and_hint() -> None:
    from rasa.shared.nlu.training_data.message import Message

    from bot.nlu.components import LanguageDetector

    detector = _make(LanguageDetector)
    zh = Message(data={"text": "我的wifi连不上", "metadata": {"language_code": "zh-hans"}})
    en = Message(data={"text": "my fridge is broken", "metadata": {"language": "en-GB"}})
    fr = Message(data={"text": "Bonjour, mon frigo ne marche plus", "metadata": {"language": "fr"}})
    emoji = Message(data={"text": "👍", "metadata": None})
    no_text = Message(data={"action_name": "utter_greet"})
    detector.process([zh, en, fr, emoji, no_text])

    assert [e["value"] for e in zh.get("entities")] == ["zh"]
    ent = zh.get("entities")[0]
    assert (ent["entity"], ent["start"], ent["end"], ent["extractor"]) == ("language", 0, 0, "LanguageDetector")
    assert zh.get("language_detected")["code"] == "zh"
    assert zh.get("language_hint") == "zh"
    assert en.get("language_hint") == "en"
    assert en.get("entities")[0]["value"] == "en"
    assert fr.get("entities", []) == [] and fr.get("language_detected")["code"] == "other"
    assert fr.get("language_hint") is None and "language_hint" in fr.output_properties
    assert emoji.get("language_detected") == {"code": None, "confidence": 0.0}
    assert "language_hint" not in emoji.data
    assert "language_detected" in zh.as_dict(only_output_properties=True)


def test_structured_extractor_keeps_existing_and_skips_duplicates() -> None:
    from rasa.shared.nlu.training_data.message import Message
    from rasa.shared.nlu.training_data.training_data import TrainingData

    from bot.nlu.components import StructuredEntityExtractor

    extractor = _make(StructuredEntityExtractor)
    existing = [
        {"entity": "phone", "value": "+8613812345678", "start": 2, "end": 13, "extractor": "DIETClassifier"},
        {"entity": "person", "value": "王", "start": 0, "end": 1},
    ]
    msg = Message(data={"text": "电话13812345678 明天上午", "entities": list(existing)})
    extractor.process([msg])
    ents = msg.get("entities")
    assert ents[:2] == existing
    assert [(e["entity"], e["value"], e["extractor"]) for e in ents[2:]] == [
        ("date_time", "明天上午", "StructuredEntityExtractor")
    ]
    only = _make(StructuredEntityExtractor, {"entities": ["phone"]})
    msg2 = Message(data={"text": "电话13812345678 明天上午"})
    only.process([msg2])
    assert [e["entity"] for e in msg2.get("entities")] == ["phone"]
    data = TrainingData([Message(data={"text": "hi", "intent": "greet"})])
    assert extractor.process_training_data(data) is data


def test_anger_scorer_component() -> None:
    from rasa.shared.nlu.training_data.message import Message
    from rasa.shared.nlu.training_data.training_data import TrainingData

    from bot.nlu.components import AngerScorer

    scorer = _make(AngerScorer)
    msgs = [Message(data={"text": "气死我了！！！"}), Message(data={"text": "谢谢"}), Message(data={})]
    scorer.process(msgs)
    assert msgs[0].get("anger") > ANGRY_THRESHOLD
    assert msgs[1].get("anger") == 0.0
    assert "anger" in msgs[0].as_dict(only_output_properties=True)
    assert msgs[0].get("anger") == round(msgs[0].get("anger"), 3)
    data = TrainingData([Message(data={"text": "hi", "intent": "greet"})])
    assert scorer.process_training_data(data) is data


# --------------------------------------------------------------------------- #
# End to end: rasa train nlu + parse
# --------------------------------------------------------------------------- #

_CONFIG = """
recipe: default.v1
language: en
assistant_id: nlu_components_test
pipeline:
  - name: bot.nlu.components.LanguageDetector
  - name: WhitespaceTokenizer
  - name: CountVectorsFeaturizer
  - name: bot.nlu.components.AngerScorer
  - name: LogisticRegressionClassifier
  - name: bot.nlu.components.StructuredEntityExtractor
"""

_NLU = """
version: "3.1"
nlu:
- intent: report_fault
  examples: |
    - my fridge is broken
    - the air conditioner is not cooling
    - washing machine leaking water
    - 空调不制冷
    - 冰箱坏了
- intent: complain
  examples: |
    - this is the worst service
    - garbage, I want a refund
    - you are useless
    - 垃圾售后
    - 我要投诉
"""


def test_train_and_parse_with_custom_components(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RASA_CACHE_DIRECTORY", str(tmp_path / "cache"))
    monkeypatch.setenv("RASA_TELEMETRY_ENABLED", "false")
    config = tmp_path / "config.yml"
    nlu = tmp_path / "nlu.yml"
    config.write_text(_CONFIG, encoding="utf-8")
    nlu.write_text(_NLU, encoding="utf-8")

    from rasa.core.agent import Agent
    from rasa.core.channels.channel import UserMessage
    from rasa.model import get_local_model
    from rasa.model_training import train_nlu

    out = tmp_path / "models"
    train_nlu(str(config), str(nlu), str(out), fixed_model_name="nlu")
    model_path = get_local_model(str(out))
    assert Path(model_path).name == "nlu.tar.gz"
    agent = Agent.load(model_path)

    async def run():
        parsed = await agent.parse_message("冰箱坏了，电话138 1234 5678，明天下午三点上门！！！垃圾")
        with_meta = await agent.processor.parse_message(
            UserMessage("hello, my washing machine is leaking", metadata={"language_code": "zh-hans"})
        )
        tracker = await agent.log_message(
            UserMessage("This is the WORST service, garbage!!!", sender_id="u1", metadata={"language": "en-GB"})
        )
        return parsed, with_meta, tracker

    parsed, with_meta, tracker = asyncio.run(run())

    ents = [(e["entity"], e["value"], e.get("extractor")) for e in parsed["entities"]]
    assert ents == [
        ("language", "zh", "LanguageDetector"),
        ("product", "fridge", "StructuredEntityExtractor"),
        ("phone", "+8613812345678", "StructuredEntityExtractor"),
        ("date_time", "明天下午三点", "StructuredEntityExtractor"),
    ]
    assert parsed["language_detected"]["code"] == "zh"
    assert parsed["language_detected"]["confidence"] >= 0.5
    assert parsed["anger"] > ANGRY_THRESHOLD
    assert parsed["intent"]["name"] in {"report_fault", "complain"}
    assert "language_hint" not in parsed  # no metadata given

    assert with_meta["language_hint"] == "zh"
    assert with_meta["language_detected"]["code"] == "en"
    assert with_meta["anger"] < CALM_THRESHOLD
    assert ("product", "washing_machine") in [(e["entity"], e["value"]) for e in with_meta["entities"]]

    latest = tracker.latest_message
    assert latest.parse_data["anger"] > ANGRY_THRESHOLD
    assert latest.parse_data["language_hint"] == "en"
    assert {"entity": "language", "value": "en"}.items() <= latest.entities[0].items()
