"""Customers (search, profile, created from conversations, repeat complaints) and the case-card editor (issue 16),
against SQLite and the PostgreSQL server; the script is driven turn by turn as in tests/test_script.py."""
from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import select

from bot.services.case_edit import FactError, edit_fact, suggest_facts, validate
from bot.services.customers import CustomerError, profile, search
from bot.services.handoff import HandoffError, case_card
from bot.store.models import ChannelIdentity, Customer, Ticket, TicketEvent
from tests.test_handoff import TZ, desk_of, make_agent
from tests.test_script import NOW, Chat, tools  # noqa: F401 - the script's fixture, reused


def handed_off(tools, conversation: str, channel: str = "rest", phone: str = "13912345678", lang: str = "zh"):  # noqa: F811
    """A repair conversation that gave a phone and asked for a person."""
    chat = Chat(tools, conversation, language=lang, channel=channel)
    if lang == "zh":
        chat.say("我要报修，冰箱不制冷了", "request_repair")
        chat.say("对", "affirm")
        chat.say(phone, "inform")
        chat.say("转人工", "request_human")
    else:
        chat.say("I need a repair, my fridge is not cooling", "request_repair")
        chat.say("yes", "affirm")
        chat.say(phone, "inform")
        chat.say("I want to talk to a person", "request_human")
    assert chat.state["flow"] == "human"
    return chat


def claimed(uow, conversation: str, agent_name: str = "xiaowang"):
    desk = desk_of(uow)
    handoff = desk.open_for(conversation)
    agent = make_agent(uow, agent_name)
    desk.claim(handoff, agent, NOW + timedelta(minutes=10))
    return desk, handoff, agent


# --------------------------------------------------------------------------------------------- customers
def test_a_phone_given_in_a_conversation_creates_the_customer_once_across_channels(tools, uow_factory):  # noqa: F811
    first = handed_off(tools, "rest:alice-1", channel="rest", phone="139 1234 5678")
    second = handed_off(tools, "webchat:alice-2", channel="webchat", phone="+86 13912345678")
    with uow_factory() as uow:
        [customer] = uow.session.execute(select(Customer).where(Customer.phone == "+8613912345678")).scalars().all()
        tickets = uow.session.execute(select(Ticket).where(Ticket.customer_id == customer.id)).scalars().all()
        assert sorted(t.number for t in tickets) == sorted([first.state["ticket"], second.state["ticket"]])
        identities = uow.session.execute(select(ChannelIdentity.channel, ChannelIdentity.sender_id)
                                         .where(ChannelIdentity.customer_id == customer.id)).all()
        assert sorted(identities) == [("rest", "rest:alice-1"), ("webchat", "webchat:alice-2")]
        kinds = [e.kind for e in uow.session.execute(select(TicketEvent).order_by(TicketEvent.id)).scalars()]
        assert kinds.count("customer_created") == 1 and kinds.count("customer_linked") == 2
        # the second conversation's case card flags the repeat
        handoff = desk_of(uow).open_for("webchat:alice-2")
        card = case_card(uow.session, handoff)
        assert card["repeat_complaint"]["earlier"] == 1 and card["repeat_complaint"]["tickets"] == [first.state["ticket"]]
        assert case_card(uow.session, desk_of(uow).open_for("rest:alice-1"))["repeat_complaint"] is None


def test_search_by_phone_name_order_and_ticket_number(tools, uow_factory):  # noqa: F811
    chat = handed_off(tools, "rest:wang", phone="13812345678")  # the seeded 王芳
    number = chat.state["ticket"]
    with uow_factory() as uow:
        s = uow.session
        for query, matched in (("138-1234-5678", "phone"), ("+86 138 1234 5678", "phone"), ("JD240512345678", "order"),
                               ("jd240512345678", "order"), (number, "ticket"), (number.lower(), "ticket"),
                               ("王", "name"), ("芳", "name")):
            found = search(s, query).as_dict()
            assert [i["name"] for i in found["items"]] == ["王芳"], query
            assert found["items"][0]["matched_by"] == matched and found["items"][0]["phone"] == "13812345678"
            assert found["total"] == 1 and found["items"][0]["purchases"] == 2
        assert search(s, "13900000000").total == 0
        assert search(s, "SV-20991231-9999").total == 0
        assert search(s, "%").total == 0 and search(s, "_").total == 0  # LIKE wildcards are plain characters
        assert search(s, "王" * 500).total == 0  # cut to 100 characters, not an error
        with pytest.raises(CustomerError):
            search(s, "   ")


def test_search_is_paginated(tools, uow_factory):  # noqa: F811
    with uow_factory() as uow:
        for n in range(5):
            uow.session.add(Customer(name=f"张{n}", phone=f"+86137000000{n:02d}", language="zh"))
        uow.commit()
    with uow_factory() as uow:
        pages = [search(uow.session, "张", page=p, per_page=2).as_dict() for p in (1, 2, 3, 4)]
        assert [len(p["items"]) for p in pages] == [2, 2, 1, 0]
        assert {p["total"] for p in pages} == {5} and pages[0]["pages"] == 3
        assert len({i["id"] for p in pages for i in p["items"]}) == 5
        assert search(uow.session, "张", per_page=10_000).per_page == 50


def test_profile_shows_purchases_tickets_and_conversations_on_two_channels(tools, uow_factory):  # noqa: F811
    handed_off(tools, "rest:wang-a", channel="rest", phone="13812345678")
    webchat = handed_off(tools, "webchat:wang-b", channel="webchat", phone="13812345678")
    with uow_factory() as uow:
        book_ticket = uow.session.execute(select(Ticket).where(Ticket.number == webchat.state["ticket"])).scalar_one()
        book_ticket.remedy_accepted, book_ticket.satisfaction, book_ticket.status = "free_repair", 4, "resolved"
        uow.commit()
    with uow_factory() as uow:
        [row] = search(uow.session, "13812345678").items
        found = profile(uow.session, row["id"])
        assert found["customer"]["name"] == "王芳"
        assert {p["order_id"] for p in found["purchases"]} == {"JD240512345678", "JD230312345670"}
        assert {t["channel"] for t in found["tickets"]["items"]} == {"rest", "webchat"}
        newest = found["tickets"]["items"][0]
        assert (newest["number"], newest["status"], newest["remedy"], newest["satisfaction"]) == (
            webchat.state["ticket"], "resolved", "free_repair", 4)
        assert [(c["channel"], c["conversation_id"], c["handoffs"]) for c in found["conversations"]] == [
            ("webchat", "webchat:wang-b", 1), ("rest", "rest:wang-a", 1)]
        one = profile(uow.session, row["id"], per_page=1, page=2)["tickets"]
        assert one["total"] == 2 and len(one["items"]) == 1 and one["items"][0]["channel"] == "rest"
        with pytest.raises(CustomerError):
            profile(uow.session, 999_999)


# --------------------------------------------------------------------------------------------- the card editor
GOOD = [
    ("phone", "138 1234 5678", {"phone": "+8613812345678"}),
    ("phone", "021-6438 1234", {"phone": "+862164381234"}),
    ("phone", "+44 20 7946 0958", {"phone": "+442079460958"}),
    ("address", "北京市朝阳区望京西路8号院3号楼1单元502", {"address": "北京市朝阳区望京西路8号院3号楼1单元502"}),
    ("address", "Room 502, 8 Wangjing West Road, Chaoyang District", None),
    ("model", "bcd-470wdpg", {"model": "BCD-470WDPG"}),  # the catalogue's spelling
    ("model", "型号是 KFR-35GW/BP3DN8Y", {"model": "KFR-35GW/BP3DN8Y"}),
    ("purchase_date", "2026-10-01", {"purchase_date": date(2026, 10, 1)}),
    ("purchase_date", "上个月15号", {"purchase_date": date(2026, 10, 15)}),
    ("symptom", "不制冷", {"symptom": "not_cooling"}),
    ("symptom", "门关上会吱吱响", {"symptom": "门关上会吱吱响"}),
]
BAD = [
    ("phone", "12345", "bad_phone"), ("phone", "JD240512345678", "bad_phone"),
    ("address", "在家", "bad_address"), ("address", "abc", "bad_address"),
    ("model", "不知道", "bad_model"), ("purchase_date", "2027-01-01", "bad_date_future"),
    ("purchase_date", "2026-02-30", "bad_date"), ("purchase_date", "不记得了", "bad_date"),
    ("symptom", "x", "bad_symptom"), ("remedy", "refund", "unknown_fact"), ("address", "  ", "empty_value"),
]


def test_edit_validation_is_the_bots(tools, uow_factory):  # noqa: F811
    local_now = NOW.astimezone(TZ)
    with uow_factory() as uow:
        ticket = Ticket(number="SV-20261122-0099", kind="repair", channel="rest", conversation_id="rest:v",
                        product="fridge")
        for field, raw, expected in GOOD:
            facts = validate(uow.session, ticket, field, raw, local_now)
            assert facts == (expected or {field: raw}), raw
        for field, raw, code in BAD:
            with pytest.raises(FactError) as caught:
                validate(uow.session, ticket, field, raw, local_now)
            assert caught.value.code == code, raw


def test_an_edit_is_an_event_with_the_agents_name_and_the_old_personal_value_masked(tools, uow_factory):  # noqa: F811
    chat = handed_off(tools, "rest:edit", phone="13912345678")
    at = NOW + timedelta(minutes=11)
    with uow_factory() as uow:
        other = make_agent(uow, "lazy")
        desk, handoff, agent = claimed(uow, "rest:edit")
        with pytest.raises(HandoffError) as caught:
            edit_fact(uow.session, handoff, other, "address", "上海市浦东新区张江路100号", at, TZ)
        assert caught.value.code == "forbidden"
        result = edit_fact(uow.session, handoff, agent, "phone", "13712345678", at, TZ)
        assert result["value"] == "+8613712345678" and result["changed"] == ["phone"]
        again = edit_fact(uow.session, handoff, agent, "phone", "137 1234 5678", at, TZ)
        assert again["changed"] == []  # the same number in another spelling: nothing to record
        edit_fact(uow.session, handoff, agent, "model", "bcd-470wdpg", at, TZ)
        with pytest.raises(FactError):
            edit_fact(uow.session, handoff, agent, "purchase_date", "明年", at, TZ)
        uow.commit()
    with uow_factory() as uow:
        ticket = uow.session.execute(select(Ticket).where(Ticket.number == chat.state["ticket"])).scalar_one()
        assert (ticket.phone, ticket.model) == ("+8613712345678", "BCD-470WDPG")
        edits = [e for e in ticket.events if e.kind == "fact_corrected"]
        assert [(e.actor, e.data["agent"], e.data["field"]) for e in edits] == [
            ("agent", "xiaowang", "phone"), ("agent", "xiaowang", "model")]
        assert edits[0].data["changes"]["phone"] == {"from": "*" * 12 + "78", "to": "+8613712345678"}
        assert "13912345678" not in str(edits[0].data)


def test_the_bot_uses_the_facts_the_agent_entered_after_the_hand_back(tools, uow_factory):  # noqa: F811
    chat = handed_off(tools, "rest:after", phone="13912345678")
    number = chat.state["ticket"]
    at = NOW + timedelta(minutes=11)
    with uow_factory() as uow:
        desk, handoff, agent = claimed(uow, "rest:after")
        for field, value in (("model", "BCD-470WDPG"), ("purchase_date", "2026-11-17"),
                             ("address", "北京市朝阳区望京西路8号院3号楼1单元502")):
            edit_fact(uow.session, handoff, agent, field, value, at, TZ)
        desk.hand_back(handoff, agent, at)
        uow.commit()
    chat.now = at
    chat.state = {"flow": "survey", "last_ticket": number}  # what the console sets on hand-back
    chat.say("我还是要报修", "request_repair")
    out = chat.say("对", "affirm")
    assert chat.state["ticket"] == number and chat.state.get("asking") == "contact_time", out
    assert not any("地址" in o or "型号" in o or "购买" in o for o in out), out
    chat.say("明天下午", "inform")
    ticket = chat.ticket()
    assert ticket["facts"]["address"] == "北京市朝阳区望京西路8号院3号楼1单元502"
    assert ticket["facts"]["model"] == "BCD-470WDPG" and ticket["facts"]["purchase_date"] == "2026-11-17"


def test_facts_the_customer_typed_to_the_agent_are_offered(tools):  # noqa: F811
    said = ["我家地址是上海市浦东新区张江路100号3栋201室", "电话 13912345678", "型号是KFR-35GW",
            "I live at 12 Main Road, Pudong, Shanghai", "我在路上", "my order number is JD240512345678"]
    found = [(s.field, s.value) for s in suggest_facts(said, {"phone": "+8613912345678"})]
    assert found == [("address", "上海市浦东新区张江路100号3栋201室"), ("model", "KFR-35GW"),
                     ("address", "12 Main Road, Pudong, Shanghai")]
