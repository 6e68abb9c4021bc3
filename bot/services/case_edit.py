"""Facts an agent adds or corrects on the case card (issue 16), checked as the bot checks them: phones to E.164
(bot/nlu/phones.py), purchase dates through bot/nlu/timeparse.py, model codes against the catalogue, addresses and
symptoms as the script reads them. Every change is a `fact_corrected` ticket event with the agent's name; an old
phone or address is kept in the event only masked. The bot reads the ticket's facts on every turn, so after the
hand-back it uses the corrected ones (it does not ask again, and a visit is booked at the corrected address).

Facts a customer types to the agent during a takeover are not recorded by themselves (a person may quote a
neighbour's address or an old phone): `suggest_facts` reads them with the bot's extractors and the card offers
each one to the agent, who accepts it with one click (the same `edit_fact`)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from types import SimpleNamespace

from sqlalchemy.orm import Session

from bot.nlu import phones
from bot.nlu.extract import extract_entities, model_code
from bot.nlu.timeparse import parse_date
from bot.services.tickets import TicketError
from bot.store.models import Agent, Handoff, Ticket

EDITABLE = ("address", "model", "phone", "purchase_date", "symptom")
PERSONAL = ("address", "phone")
MAX_VALUE = 300  # characters read from an agent's input
MAX_SUGGESTIONS = 10


class FactError(TicketError):
    """A value the bot would not take either; `code` names the bot's own complaint (bad_phone, bad_date, ...)."""


@dataclass(frozen=True)
class Suggestion:
    field: str
    value: str
    text: str  # the customer's message it came from

    def as_dict(self) -> dict:
        return {"field": self.field, "value": self.value, "text": self.text}


def _mask(field: str, value) -> str | None:
    if value in (None, ""):
        return None
    text = str(value)
    if field == "phone":
        return "*" * max(0, len(text) - 2) + text[-2:]
    if field == "address":
        return "[address]"
    return text


def validate(session: Session, ticket: Ticket, field: str, raw: str, local_now: datetime) -> dict:
    """The facts to record for `field` := `raw` (the model may bring its product), or FactError."""
    from bot.services import problems
    from bot.flows.facts import model_facts
    from bot.flows.words import ADDRESS_RE, MODEL_LEAD_RE

    text = str(raw or "").strip()[:MAX_VALUE]
    if field not in EDITABLE:
        raise FactError("unknown_fact", f"one of {', '.join(EDITABLE)}")
    if not text:
        raise FactError("empty_value")
    if field == "phone":
        phone = phones.normalize(text)
        if phone is None:
            raise FactError("bad_phone", "not a phone number")
        return {"phone": phone}
    if field == "address":
        if len(text) < 5 or not ADDRESS_RE.search(text):
            raise FactError("bad_address", "an address names a road, building, district or city")
        return {"address": text}
    if field == "model":
        bare = MODEL_LEAD_RE.sub("", text).strip(" .。,，")
        code = model_code(bare) or model_code(bare.upper())
        if not code:
            raise FactError("bad_model", "not a model code")
        return model_facts(code, SimpleNamespace(session=session), known_product=ticket.product)
    if field == "purchase_date":
        try:
            bought = parse_date(text, local_now)
        except ValueError as err:
            code = getattr(err, "code", "invalid_date")
            raise FactError("bad_date_future" if code == "future" else "bad_date", "not a date in the past")
        if bought is None:
            raise FactError("bad_date", "not a date")
        return {"purchase_date": bought}
    if len(text) < 2:
        raise FactError("bad_symptom", "say what is wrong")
    reading = problems.read_problem(text, problems.load_lexicon())
    return {"symptom": reading.symptoms[0] if len(reading.symptoms) == 1 else text[:200]}


def edit_fact(session: Session, handoff: Handoff, agent: Agent, field: str, raw: str, now: datetime, tz) -> dict:
    """Add or correct one fact on the hand-off's ticket as `agent` (who must hold the case). Returns the change."""
    from bot.services.handoff import HandoffError, holds
    from bot.services.tickets import _jsonable, add_event

    if not holds(agent, handoff):
        raise HandoffError("forbidden", "take the conversation over first")
    ticket = handoff.ticket
    facts = validate(session, ticket, field, raw, now.astimezone(tz))
    changes = {name: {"from": _mask(name, getattr(ticket, name)) if name in PERSONAL else getattr(ticket, name),
                      "to": value}
               for name, value in facts.items() if getattr(ticket, name) != value}
    for name in changes:
        setattr(ticket, name, facts[name])
    if changes:
        ticket.updated_at = now
        add_event(session, ticket, "fact_corrected", "agent", now, agent=agent.name, field=field,
                  changes=_jsonable(changes))
        if "phone" in changes and ticket.customer is None:
            from bot.services.customers import link_by_phone

            link_by_phone(session, ticket, now)
    value = facts[field]
    return {"ticket": ticket.number, "field": field, "value": value.isoformat() if isinstance(value, date) else value,
            "changed": sorted(changes), "agent": agent.name, "at": now.isoformat()}


def suggest_facts(messages: list[str], known: dict) -> list[Suggestion]:
    """Facts in what the customer wrote to the agent, read by the bot's extractors, that the ticket does not have
    yet in that form (phone, model, address)."""
    from bot.flows.words import ADDRESS_RE

    found: list[Suggestion] = []
    seen: set[tuple[str, str]] = set()
    for message in messages:
        text = (message or "")[:1000]
        entities = extract_entities(text)
        for entity in entities:
            field = {"phone": "phone", "product_model": "model"}.get(entity["entity"])
            if field is None:
                continue
            value = phones.normalize(entity["value"]) if field == "phone" else entity["value"]
            if value and (field, value) not in seen and known.get(field) != value:
                seen.add((field, value))
                found.append(Suggestion(field, value, text))
        address = _address_in(text, ADDRESS_RE, quoted_codes=bool(entities))
        if address and ("address", address) not in seen and known.get("address") != address:
            seen.add(("address", address))
            found.append(Suggestion("address", address, text))
    return found[-MAX_SUGGESTIONS:]


def _address_in(text: str, address_re, quoted_codes: bool = False) -> str | None:
    """The address part of a message ("我家地址是…", "my address is …"), when it reads as one. A message that also
    carries a phone, model or order number needs two address words ("型号" and "订单号" are not addresses)."""
    import re

    body = re.sub(r"^.*?(地址(?:是|在|为)?[:：]?|(?:my )?address(?: is)?[:：]?|住在|\blive at\b)\s*", "", text,
                  count=1, flags=re.IGNORECASE).strip(" 。.,，!！")
    if len(body) < 5 or len(body) > MAX_VALUE or not address_re.search(body):
        return None
    markers = len(address_re.findall(re.sub(r"(型号|订单号|单号|编号|电话号|手机号)", "", body)))
    if markers < 1 or (markers < 2 and (quoted_codes or not re.search(r"\d", body))):
        return None  # "路上" or "the city" alone is not an address
    return body
