"""The promises the bot makes, as outbox rows: when each is scheduled, what it says when due (zh/en), and whether it
still holds. The customer's answers are read by the script (bot/flows/promise.py, the "promise" flow).

| kind | scheduled when | due |
| visit_reminder_day_before / _two_hours | a visit is booked | 24 h / 2 h before the window |
| visit_check_back | the desk marks the visit done (`schedule_check_back`) | 24 h later |
| self_check_call_back | the script shows a guided self-check | 2 h later (咨询后 2 小时回访) |
| agent_call_back_reminder | a call-back is promised out of hours / nobody online | 30 min after the promised time, if not done |
| survey | a ticket is resolved (`resolve_ticket`) | 10 min later |
| thank_you | a survey ends well and the case is closed | 1 min later (感谢函) |
| supervisor_call_back | a rating of 1-2 or "not solved" | 30 min after the call promised (2 h, in desk hours), if no call is recorded |
"""
from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.services.outbox import OutboxConfig, Outgoing, cancel_pending, load_outbox_config, schedule
from bot.services.tickets import TicketBook, add_event, as_utc
from bot.store.models import Handoff, OutboxItem, Ticket, TicketStatus, Visit
from bot.texts import Texts, load_texts

FINISHED = (TicketStatus.resolved.value, TicketStatus.closed.value)
ACTIVE_FLOWS = ("complaint", "status", "visit_change", "human")
WEEKDAYS = {"zh": "一二三四五六日", "en": ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]}


@lru_cache(maxsize=1)
def default_config() -> OutboxConfig:
    return load_outbox_config()


def _default_tz() -> ZoneInfo:
    from bot.settings import load_settings

    return load_settings().timezone


class Promises:
    """Scheduling promises inside the caller's unit of work (one session)."""

    def __init__(self, session: Session, tz: ZoneInfo, config: OutboxConfig | None = None):
        self.session = session
        self.tz = tz
        self.config = config or default_config()

    def _for_ticket(self, ticket: Ticket, kind: str, due: datetime, now: datetime, *, visit_id: int | None = None,
                    payload: dict | None = None, dedupe_key: str | None = None) -> OutboxItem:
        return schedule(self.session, kind=kind, channel=ticket.channel, conversation_id=ticket.conversation_id,
                        due_at=due, language=ticket.language, now=now, tz=self.tz, config=self.config, ticket=ticket,
                        visit_id=visit_id, payload=payload, dedupe_key=dedupe_key)

    def visit_reminders(self, visit: Visit, ticket: Ticket, now: datetime) -> list[OutboxItem]:
        """The day-before and two-hour reminders; one whose time has already passed at booking is not promised."""
        start = as_utc(visit.start)
        rows = []
        for kind, hours in (("visit_reminder_day_before", "visit_reminder_day_before"),
                            ("visit_reminder_two_hours", "visit_reminder_two_hours")):
            due = start - self.config.hours(hours)
            if due <= as_utc(now):
                continue
            rows.append(self._for_ticket(ticket, kind, due, now, visit_id=visit.id, dedupe_key=f"{kind}:{visit.id}"))
        return rows

    def check_back(self, visit: Visit, now: datetime) -> OutboxItem:
        """The survey waits for the customer's "yes, it works" at the check-back: one promised at the resolution
        is withdrawn (the check-back's answer promises it again)."""
        ticket = visit.ticket
        cancel_pending(self.session, now=now, why="waits for the check-back", ticket_id=ticket.id, kinds=("survey",))
        return self._for_ticket(ticket, "visit_check_back", as_utc(now) + self.config.hours("visit_check_back"), now,
                                visit_id=visit.id, dedupe_key=f"visit_check_back:{visit.id}")

    def self_check_call_back(self, ticket: Ticket, now: datetime, resume: dict) -> OutboxItem:
        """`resume`: the proposals still open, so a "no" goes on with the next remedy."""
        return self._for_ticket(ticket, "self_check_call_back", as_utc(now) + self.config.hours("self_check_call_back"),
                                now, payload={"resume": resume}, dedupe_key=f"self_check_call_back:{ticket.id}")

    def agent_call_back_reminder(self, handoff: Handoff, due: datetime, now: datetime) -> OutboxItem:
        ticket = handoff.ticket
        return schedule(self.session, kind="agent_call_back_reminder", channel=handoff.channel,
                        conversation_id=handoff.conversation_id,
                        due_at=as_utc(due) + self.config.minutes("agent_call_back_grace"), language=handoff.language,
                        now=now, tz=self.tz, config=self.config, ticket=ticket,
                        payload={"handoff_id": handoff.id, "promised": as_utc(due).isoformat()},
                        dedupe_key=f"agent_call_back_reminder:{handoff.id}:{as_utc(due).isoformat()}")

    def survey_once(self, ticket: Ticket, now: datetime) -> OutboxItem | None:
        """The survey, unless one is already promised or sent for this ticket since it was last reopened."""
        reopened = [as_utc(e.at) for e in ticket.events if e.kind == "status_changed" and e.data.get("to") == "reopened"]
        since = max(reopened) if reopened else None
        for row in self.session.execute(select(OutboxItem).where(OutboxItem.ticket_id == ticket.id,
                                                                 OutboxItem.kind == "survey")).scalars():
            if row.status != "cancelled" and (since is None or as_utc(row.created_at) >= since):
                return None
        return self.survey(ticket, now)

    def survey(self, ticket: Ticket, now: datetime) -> OutboxItem:
        return self._for_ticket(ticket, "survey", as_utc(now) + self.config.minutes("survey_delay"), now,
                                dedupe_key=f"survey:{ticket.id}:{as_utc(now).isoformat()}")

    def thank_you(self, ticket: Ticket, now: datetime) -> OutboxItem:
        return self._for_ticket(ticket, "thank_you", as_utc(now) + self.config.minutes("thank_you_delay"), now,
                                dedupe_key=f"thank_you:{ticket.id}")

    def supervisor_call_back(self, ticket: Ticket, now: datetime, promised: datetime) -> OutboxItem:
        """Due a little after the time the customer was promised: sent only if no call was recorded by then."""
        due = as_utc(promised) + self.config.minutes("agent_call_back_grace")
        return self._for_ticket(ticket, "supervisor_call_back", due, now,
                                payload={"promised": as_utc(promised).isoformat()},
                                dedupe_key=f"supervisor_call_back:{ticket.id}:{as_utc(now).isoformat()}")


def schedule_check_back(uow, visit: Visit, now: datetime, *, tz: ZoneInfo | None = None,
                        config: OutboxConfig | None = None) -> OutboxItem:
    """The check-back after a visit ("is it working now?"): for the visit-done action. Writes in `uow`; the caller
    commits."""
    return Promises(uow.session, tz or _default_tz(), config).check_back(visit, now)


def resolve_ticket(session: Session, ticket: Ticket, now: datetime, *, tz: ZoneInfo, actor: str, note: str,
                   config: OutboxConfig | None = None) -> bool:
    """The remedy is carried out: the ticket is resolved (an event, from set_status) and the survey promised.
    False when the ticket cannot be resolved from where it is (already resolved or closed)."""
    from bot.store.models import TRANSITIONS

    if TicketStatus.resolved not in TRANSITIONS[TicketStatus(ticket.status)]:
        return False
    TicketBook(session, tz).set_status(ticket, TicketStatus.resolved.value, now, actor=actor, note=note)
    Promises(session, tz, config).survey(ticket, now)
    return True


def reopen_ticket(session: Session, ticket: Ticket, now: datetime, *, tz: ZoneInfo, actor: str, note: str) -> bool:
    """Not fixed after all: a resolved or closed ticket reopens, and what was promised for a finished case (survey,
    thank-you) is cancelled. False when the ticket was still open."""
    if ticket.status not in FINISHED:
        return False
    TicketBook(session, tz).set_status(ticket, TicketStatus.reopened.value, now, actor=actor, note=note)
    cancel_pending(session, now=now, why="ticket reopened", ticket_id=ticket.id, kinds=("survey", "thank_you"))
    return True


# ---------------------------------------------------------------------------------------------- the answers' state
def promise_state(current: dict | None, question: dict) -> dict:
    """The script's state once a promise has asked its question: the "promise" flow, with whatever flow was open
    kept under `resume` (the customer may answer, or carry on where they were)."""
    current = dict(current or {})
    if current.get("flow") == "promise":
        current = dict(current.get("resume") or {})
    state = {"flow": "promise", "promise": dict(question),
             "last_ticket": question.get("ticket") or current.get("last_ticket")}
    if current.get("flow") in ACTIVE_FLOWS:
        state["resume"] = current
    elif current.get("last_ticket"):
        state["resume"] = {"last_ticket": current["last_ticket"]}
    return state


# ---------------------------------------------------------------------------------------------- rendering
def _window(visit: Visit, lang: str, tz: ZoneInfo) -> str:
    start, end = as_utc(visit.start).astimezone(tz), as_utc(visit.end).astimezone(tz)
    if lang == "zh":
        return f"{start.month}月{start.day}日(周{WEEKDAYS['zh'][start.weekday()]}) {start:%H:%M}-{end:%H:%M}"
    return f"{WEEKDAYS['en'][start.weekday()]} {start.day} {start:%b} {start:%H:%M}-{end:%H:%M}"


def _time(moment: datetime, lang: str, tz: ZoneInfo) -> str:
    local = as_utc(moment).astimezone(tz)
    return f"{local.month}月{local.day}日 {local:%H:%M}" if lang == "zh" else local.strftime("%d %b %H:%M").lstrip("0")


def _buttons(texts: Texts, lang: str, *pairs: tuple[str, str]) -> list[dict]:
    return [{"title": texts.get(key, lang), "payload": payload} for key, payload in pairs]


def _product(texts: Texts, ticket: Ticket, lang: str) -> str:
    key = f"product_{ticket.product}"
    return texts.get(key, lang) if ticket.product and key in texts else texts.get("product_unknown", lang)


def survey_question(texts: Texts, config: OutboxConfig, question_id: str, lang: str) -> dict:
    """One survey question as a message: rating buttons 5..1, yes/no, or a free comment with "skip"."""
    q = next(q for q in config.survey if q["id"] == question_id)
    if q["kind"] == "rating":
        buttons = [{"title": str(n), "payload": str(n)} for n in (5, 4, 3, 2, 1)]
    elif q["kind"] == "yes_no":
        buttons = _buttons(texts, lang, ("btn_survey_solved", "/affirm"), ("btn_survey_not_solved", "/deny"))
    else:
        buttons = _buttons(texts, lang, ("btn_survey_skip", "/deny"))
    return {"text": q[lang], "buttons": buttons}


def survey_questions(session: Session, ticket: Ticket, config: OutboxConfig) -> list[str]:
    """The ids of the questions this ticket gets: `when: visit` ones only after a visit."""
    had_visit = session.execute(select(Visit.id).where(Visit.ticket_id == ticket.id, Visit.status != "cancelled")
                                .limit(1)).first() is not None
    return [q["id"] for q in config.survey if q.get("when") != "visit" or had_visit]


def _callback_done_since(ticket: Ticket, since: datetime) -> bool:
    return any(e.kind == "callback_done" and as_utc(e.at) >= as_utc(since) for e in ticket.events)


def make_renderer(texts: Texts, tz: ZoneInfo, config: OutboxConfig):
    def render(session: Session, item: OutboxItem, now: datetime):
        return render_promise(session, item, now, texts=texts, tz=tz, config=config)
    return render


def render_promise(session: Session, item: OutboxItem, now: datetime, *, texts: Texts | None = None,
                   tz: ZoneInfo, config: OutboxConfig) -> Outgoing | str:
    """The promise as the customer reads it, or why it no longer holds (the row is then cancelled, not sent)."""
    texts = texts or load_texts()
    lang = item.language if item.language in ("zh", "en") else "zh"
    ticket = item.ticket
    if ticket is None:
        return "ticket gone"
    number = ticket.number
    question = None
    kind = item.kind
    if kind in ("visit_reminder_day_before", "visit_reminder_two_hours"):
        visit = session.get(Visit, item.visit_id) if item.visit_id else None
        if visit is None or visit.status != "booked" or as_utc(visit.start) <= as_utc(now):
            return "visit no longer booked or already begun"
        engineer = visit.engineer
        name = (engineer.name_zh if lang == "zh" else engineer.name_en) if engineer else "-"
        text = texts.get(f"promise_{kind}", lang, number=number, engineer=name, time=_window(visit, lang, tz),
                         product=_product(texts, ticket, lang))
        buttons = _buttons(texts, lang, ("btn_visit_confirm", "/affirm"), ("btn_visit_reschedule", "/reschedule_visit"),
                           ("btn_visit_cancel", "/cancel_visit"))
        messages = [{"text": text, "buttons": buttons}]
        question = {"kind": kind, "ticket": number, "visit_id": visit.id}
    elif kind in ("visit_check_back", "self_check_call_back"):
        if ticket.status == TicketStatus.closed.value:
            return "ticket closed"
        if kind == "self_check_call_back" and (ticket.remedy_accepted or ticket.status in FINISHED):
            return "the customer went on with another remedy"
        text = texts.get(f"promise_{kind}", lang, number=number, product=_product(texts, ticket, lang))
        messages = [{"text": text, "buttons": _buttons(texts, lang, ("btn_fixed", "/affirm"),
                                                       ("btn_not_fixed", "/deny"))}]
        question = {"kind": kind, "ticket": number, "visit_id": item.visit_id,
                    "resume": (item.payload or {}).get("resume")}
    elif kind == "survey":
        if ticket.status not in FINISHED:
            return "ticket no longer resolved"
        ids = survey_questions(session, ticket, config)
        messages = [{"text": texts.get("promise_survey_intro", lang, number=number)},
                    survey_question(texts, config, ids[0], lang)]
        question = {"kind": kind, "ticket": number, "questions": ids, "q": 0, "outbox_id": item.id}
    elif kind in ("agent_call_back_reminder", "supervisor_call_back"):
        payload = item.payload or {}
        if kind == "agent_call_back_reminder":
            handoff = session.get(Handoff, payload.get("handoff_id")) if payload.get("handoff_id") else None
            if handoff is None or handoff.status != "waiting":
                return "the desk has taken the conversation"
        if _callback_done_since(ticket, item.created_at):
            return "the call-back was made"
        promised = datetime.fromisoformat(payload["promised"]) if payload.get("promised") else item.due_at
        messages = [{"text": texts.get(f"promise_{kind}", lang, number=number, time=_time(promised, lang, tz))}]
    elif kind == "thank_you":
        messages = [{"text": texts.get("promise_thank_you", lang, number=number, product=_product(texts, ticket, lang))}]
    else:
        return f"unknown promise kind {kind}"
    if question is not None:
        question["outbox_id"] = item.id
    return Outgoing(outbox_id=item.id, kind=kind, channel=item.channel, conversation_id=item.conversation_id,
                    language=lang, messages=messages, question=question)


def low_satisfaction(session: Session, ticket: Ticket, now: datetime, *, tz: ZoneInfo, why: str,
                     callback_time: datetime, config: OutboxConfig | None = None) -> datetime:
    """A rating of 1-2 or "not solved": the ticket reopens, the desk is alerted (`desk_alerted`, for the console's
    badge and list) and a supervisor's call-back is promised. Returns the time promised."""
    reopen_ticket(session, ticket, now, tz=tz, actor="customer", note=why)
    add_event(session, ticket, "desk_alerted", "bot", now, why=why)
    Promises(session, tz, config).supervisor_call_back(ticket, now, callback_time)
    return callback_time


def close_well(session: Session, ticket: Ticket, now: datetime, *, tz: ZoneInfo,
               config: OutboxConfig | None = None) -> None:
    """A survey that ended well closes the case, and the thank-you (感谢函) is promised."""
    if ticket.status == TicketStatus.resolved.value:
        TicketBook(session, tz).set_status(ticket, TicketStatus.closed.value, now, actor="customer",
                                           note="survey answered: satisfied and solved")
    Promises(session, tz, config).thank_you(ticket, now)

