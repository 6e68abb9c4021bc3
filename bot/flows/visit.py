"""Visits: offer real free windows, let the customer pick, confirm, book (VisitFlow, part of the complaint script);
rescheduling and cancelling a booked visit (VisitChangeFlow, the "visit_change" flow).
"""
from __future__ import annotations

import re
from datetime import datetime, time

from bot.flows.base import Flow
from bot.flows.context import TurnContext
from bot.flows.state import ComplaintStep, VisitChangeStep, keep_last_ticket
from bot.flows.words import NEW_REQUESTS
from bot.nlu import phones
from bot.services.conversation import Button, Message, Reply, Turn
from bot.services.tickets import TicketBook, as_utc
from bot.services.visits import VisitBook, VisitError, Window
from bot.store.models import Ticket, Visit

VISIT_STEPS = (ComplaintStep.visit_pick.value, ComplaintStep.visit_confirm.value)


def may_hold(state: dict) -> bool:
    """Whether the ticket may hold visit windows (issue 17): it is choosing one or was offered some."""
    return state.get("step") in VISIT_STEPS or bool(state.get("windows"))


WEEKDAYS = {"zh": "一二三四五六日", "en": ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]}
# Picking one of the offered windows by its place: an ordinal word anywhere ("the second one", 第二个), or a bare
# number on its own ("2", "option 2", "二"). A bare number inside other text is not a pick ("11:00", "二号上午" are
# times and dates), and "one" as in "the second one" is not "1".
ORDINALS = [
    (re.compile(r"第\s*[一1](?!\d)|\bfirst\b|\b1st\b", re.IGNORECASE),
     re.compile(r"^\s*(?:(?:number|option|no\.?|#)\s*)?(?:1|一|one)\s*(?:个|号)?\s*[.。!！]?\s*$", re.IGNORECASE)),
    (re.compile(r"第\s*[二2](?!\d)|\bsecond\b|\b2nd\b", re.IGNORECASE),
     re.compile(r"^\s*(?:(?:number|option|no\.?|#)\s*)?(?:2|二|two)\s*(?:个|号)?\s*[.。!！]?\s*$", re.IGNORECASE)),
    (re.compile(r"第\s*[三3](?!\d)|\bthird\b|\b3rd\b", re.IGNORECASE),
     re.compile(r"^\s*(?:(?:number|option|no\.?|#)\s*)?(?:3|三|three)\s*(?:个|号)?\s*[.。!！]?\s*$", re.IGNORECASE)),
]


def ordinal_choice(text: str, offered: int) -> int | None:
    """Index of the window named by its place, or None (none named, or more than one)."""
    named = [i for i, (word, _) in enumerate(ORDINALS[:offered]) if word.search(text)]
    if not named:
        named = [i for i, (_, bare) in enumerate(ORDINALS[:offered]) if bare.match(text)]
    return named[0] if len(named) == 1 else None


def window_dict(window: Window) -> dict:
    return {"engineer_id": window.engineer_id, "engineer_code": window.engineer_code,
            "engineer_name": dict(window.engineer_name), "start": window.start.isoformat(),
            "end": window.end.isoformat()}


def window_obj(data: dict) -> Window:
    return Window(engineer_id=data["engineer_id"], engineer_code=data["engineer_code"],
                  engineer_name=data["engineer_name"], start=datetime.fromisoformat(data["start"]),
                  end=datetime.fromisoformat(data["end"]))


class _When:
    """The slice of a parsed time expression the visit book needs."""

    def __init__(self, start: datetime, end: datetime, excluded: frozenset = frozenset(), daily=None):
        self.start, self.end, self.excluded_weekdays, self.daily = start, end, excluded, daily


class VisitFlow(Flow):
    def window_label(self, window: dict, lang: str) -> str:
        start = datetime.fromisoformat(window["start"]).astimezone(self.settings.timezone)
        end = datetime.fromisoformat(window["end"]).astimezone(self.settings.timezone)
        if lang == "zh":
            return f"{start.month}月{start.day}日(周{WEEKDAYS['zh'][start.weekday()]}) {start:%H:%M}-{end:%H:%M}"
        return f"{WEEKDAYS['en'][start.weekday()]} {start.day} {start:%b} {start:%H:%M}-{end:%H:%M}"

    def preferred_when(self, state: dict):
        window = state.get("contact_window")
        if not window:
            return None
        daily = state.get("contact_daily")
        return _When(datetime.fromisoformat(window[0]), datetime.fromisoformat(window[1]),
                     frozenset(state.get("contact_excluded", [])),
                     (time.fromisoformat(daily[0]), time.fromisoformat(daily[1])) if daily else None)

    def offer_windows(self, ctx: TurnContext, when=None, after_rejection: bool = False) -> list[Message]:
        """Propose the three earliest windows that fit area, product and the customer's wish."""
        turn, state, ticket, book, uow = ctx
        visits = self.visits(uow)
        lang = turn.language
        when = when if when is not None else self.preferred_when(state)
        out: list[Message] = []
        try:
            # Offered windows are held for this customer (VisitBook.offer): others booking now get other ones.
            windows = visits.offer(ticket=ticket, category=ticket.product or "", address=ticket.address or "",
                                   now=turn.now, when=when) if when is not None else []
            own_wish_kept = bool(windows)
            if when is not None and not windows:
                out.append(self.msg("visit_none_in_wish", turn))
            if not windows:
                windows = visits.offer(ticket=ticket, category=ticket.product or "", address=ticket.address or "",
                                       now=turn.now)
        except VisitError as err:
            return self.visit_impossible(ctx, err.code)
        if not windows:
            return self.visit_impossible(ctx, "no_window")
        # The promise is ours to keep only where the customer left the time to us: a customer who asked for a later
        # day gets it without an apology for the wait.
        if not own_wish_kept and not visits.within_promise(windows, turn.now, self.settings.visit_promise_hours):
            out.append(self.msg("visit_promise_missed", turn, hours=self.settings.visit_promise_hours))
        state["windows"] = [window_dict(w) for w in windows]
        state["step"] = "visit_pick"
        labels = [self.window_label(w, lang) for w in state["windows"]]
        buttons = [Button(label, str(i)) for i, label in enumerate(labels, 1)]
        if any(m.text == self.t.get("visit_promise_missed", lang, hours=self.settings.visit_promise_hours)
               for m in out):
            buttons.append(self.button("btn_human", turn, "/request_human"))
        listing = "\n".join(f"{i}. {label}" for i, label in enumerate(labels, 1))
        hold = self.t.get("visit_hold_note", lang, minutes=self.tools.roster.hold_minutes)
        out.append(Message(self.t.get("visit_offer", lang) + "\n" + listing + "\n" + hold, buttons))
        return out

    def visit_impossible(self, ctx: TurnContext, code: str) -> list[Message]:
        turn, state, ticket, book, _ = ctx
        key = {"outside_service_area": "visit_outside_area", "no_engineer": "visit_no_engineer"}.get(code,
                                                                                                  "visit_no_window")
        queued = self.script.handoff.queue_for_person(ticket, book, turn, f"visit_{code}")
        return [self.msg(key, turn)] + queued + self.script.complaint.follow_up(ctx, handed_off=True)

    def chosen_window(self, turn: Turn, state: dict):
        """The window the customer picked: button label, ordinal, or a time inside one of them."""
        text = (turn.text or "").strip()
        windows = state.get("windows") or []
        for i, window in enumerate(windows):
            if text in (self.window_label(window, "zh"), self.window_label(window, "en")):
                return i
        picked = ordinal_choice(text, len(windows))
        if picked is not None:
            return picked
        try:
            when = self.tools.parse_when(text, self.local(turn.now))
        except ValueError:
            return None
        if when is None:
            return None
        for i, window in enumerate(windows):
            start = datetime.fromisoformat(window["start"])
            if when.start <= start < when.end:
                return i
        return when

    def visit_pick_turn(self, ctx: TurnContext) -> list[Message]:
        turn, state, ticket, book, uow = ctx
        if turn.intent in ("deny",) and not turn.entities:
            return [self.msg("visit_ask_other_time", turn)]
        choice = self.chosen_window(turn, state)
        if isinstance(choice, int):
            window = state["windows"][choice]
            if not self.hold_choice(turn, ticket, window, uow):
                return [self.msg("visit_taken", turn)] + self.offer_windows(ctx)
            state["chosen"] = choice
            state["step"] = "visit_confirm"
            return [self.msg("visit_confirm", turn, [self.button("btn_confirm", turn, "/affirm"),
                                                      self.button("btn_change_time", turn, "/deny")],
                             time=self.window_label(window, turn.language), address=ticket.address or "-",
                             product=self.product_name(ticket.product, turn.language),
                             symptom=self.symptom_text(ticket, turn.language))]
        if choice is not None:  # a time outside the offered windows: look there
            return self.offer_windows(ctx, when=choice)
        try:
            self.tools.parse_when(turn.text or "", self.local(turn.now))
        except ValueError as err:
            key = {"past": "bad_time_past", "invalid_time": "bad_time_invalid",
                   "invalid_date": "bad_date"}.get(getattr(err, "code", ""), "bad_time")
            return [self.msg(key, turn), self.msg("visit_pick_again", turn)]
        return [self.msg("visit_pick_again", turn)]

    def hold_choice(self, turn: Turn, ticket: Ticket, window: dict, uow) -> bool:
        """The picked window is held afresh for this customer, the other offered ones are released (issue 17)."""
        return self.visits(uow).keep_hold(ticket, window_obj(window), turn.now)

    def settle_holds(self, uow, ticket: Ticket, state: dict, held: bool) -> None:
        """Outside the visit steps (booked, handed off, stopped, moved on) the ticket holds no window. `held`: the
        turn began where the ticket may hold windows (`may_hold` of the state before the turn); when neither it
        nor the state after the turn has offered windows, there is nothing to release and no query is made."""
        if not held and not state.get("windows"):
            return
        if state.get("flow") != "complaint" or state.get("step") not in VISIT_STEPS:
            self.visits(uow).release_holds(ticket.id, keep_booked=True)

    def visit_confirm_turn(self, ctx: TurnContext) -> list[Message]:
        turn, state, ticket, book, uow = ctx
        if turn.intent == "affirm":
            window = window_obj(state["windows"][state["chosen"]])
            visits = self.visits(uow)
            live = visits.live_visit(ticket)
            if live is not None and not state.get("reschedule_visit_id"):
                return self.already_booked(turn, state, ticket, live)  # a replayed or repeated confirmation
            try:
                if state.get("reschedule_visit_id"):
                    old = uow.session.get(Visit, state["reschedule_visit_id"])
                    if old is None or old.ticket_id != ticket.id:  # never a visit of another ticket
                        raise VisitError("visit_not_found", "not this ticket's visit")
                    visit = visits.reschedule(old, window, turn.now)
                else:
                    visit = visits.book(ticket=ticket, window=window, address=ticket.address or "", now=turn.now)
            except VisitError as err:
                if err.code == "already_booked":  # the database's one-live-visit rule caught a race
                    uow.rollback()
                    return self.already_booked(turn, state, ticket, visits.live_visit(ticket))
                if err.code == "slot_taken":
                    return [self.msg("visit_taken", turn)] + self.offer_windows(ctx)
                return [self.msg("visit_failed", turn)] + self.offer_windows(ctx)
            if state.get("reschedule_visit_id") and visit.id != old.id:
                self.script.promise.cancel_visit_promises(uow, old, turn.now, "visit rescheduled")
            # The booking message promises reminders the day before and two hours before: kept by the outbox.
            self.script.promise.promises(uow).visit_reminders(visit, ticket, turn.now)
            state["visit"] = {"start": as_utc(visit.start).isoformat(), "end": as_utc(visit.end).isoformat(),
                              "engineer": window.engineer_name}
            if state.get("reschedule_visit_id"):
                label = self.window_label(state["windows"][state["chosen"]], turn.language)
                state.clear()
                state["last_ticket"] = ticket.number
                return self.script.visit_change.finish_visit_change(turn, ticket, "visit_rescheduled", label)
            return self.script.complaint.follow_up(ctx)
        # Anything else: they want another time.
        choice = self.chosen_window(turn, state)
        if isinstance(choice, int) and choice != state.get("chosen"):
            state["step"] = "visit_pick"
            return self.visit_pick_turn(ctx)
        if choice is not None and not isinstance(choice, int):
            return self.offer_windows(ctx, when=choice)
        state["step"] = "visit_pick"
        return [self.msg("visit_ask_other_time", turn)]

    def already_booked(self, turn: Turn, state: dict, ticket: Ticket, visit: Visit | None) -> list[Message]:
        state.clear()
        state["last_ticket"] = ticket.number
        if visit is None:
            return [self.msg("visit_failed", turn)]
        name = (visit.engineer.name_zh if turn.language == "zh" else visit.engineer.name_en) if visit.engineer else "-"
        return [self.msg("visit_already_booked", turn, number=ticket.number, time=self.visit_label(visit, turn.language),
                         engineer=name)]

    def symptom_text(self, ticket: Ticket, lang: str) -> str:
        from bot.services import problems

        if ticket.kind == "installation":
            return self.t.get("kind_installation", lang)
        if ticket.symptom and ticket.symptom in self.lexicon.symptoms:
            return problems.symptom_label(ticket.symptom, lang, self.lexicon)
        return ticket.symptom or "-"

    def visit_label(self, visit: Visit, lang: str) -> str:
        return self.window_label({"start": as_utc(visit.start).isoformat(), "end": as_utc(visit.end).isoformat()}, lang)

    def visits(self, uow) -> VisitBook:
        return VisitBook(uow.session, self.settings.timezone, self.tools.roster)


class VisitChangeFlow(Flow):
    def start(self, turn: Turn, state: dict, intent: str) -> Reply:
        state = {"flow": "visit_change", "action": intent, "last_ticket": state.get("last_ticket"), "fails": 0}
        return self.handle(turn, state, first=True)

    def handle(self, turn: Turn, state: dict, first: bool = False) -> Reply:
        if not first and turn.intent in ("stop", "deny") and not state.get("visit_id"):
            return Reply([self.msg("status_stopped", turn)], {"last_ticket": state.get("last_ticket")})
        if (not first and not state.get("visit_id") and turn.intent not in ("reschedule_visit", "cancel_visit")
                and turn.intent in NEW_REQUESTS and not (turn.entity("ticket_number") or turn.entity("phone"))):
            # asked for the ticket, the customer wants something else: serve that instead
            return self.script.idle.handle(turn, keep_last_ticket(state))
        with self.tools.uow() as uow:
            book = self.book(uow)
            visits = self.script.visit.visits(uow)
            if not state.get("visit_id"):
                ticket = self.identify_ticket(turn, state, book, uow)
                uow.commit()  # a proof, or a failed attempt, is kept whatever is answered
                if ticket is None:
                    return Reply([self.msg(state.pop("_ask", "visit_change_need_ticket"), turn)], state)
                visit = visits.live_visit(ticket)
                if visit is None:
                    return Reply([self.msg("visit_none_booked", turn, number=ticket.number)],
                                 {"last_ticket": ticket.number})
                state.update(visit_id=visit.id, ticket=ticket.number, last_ticket=ticket.number)
                label = self.script.visit.visit_label(visit, turn.language)
                if state["action"] == "cancel_visit":
                    state["step"] = VisitChangeStep.cancel_confirm.value
                    return Reply([self.msg("visit_cancel_confirm", turn, self.yes_no(turn), time=label,
                                           number=ticket.number)], state)
                state["step"] = VisitChangeStep.reschedule_when.value
                return Reply([self.msg("visit_reschedule_when", turn, time=label, number=ticket.number)], state)
            # Re-read from the database: the ticket must still be this conversation's, the visit that ticket's.
            ticket = self.owned(uow, state.get("ticket"), turn)
            visit = uow.session.get(Visit, state["visit_id"]) if ticket is not None else None
            if visit is None or visit.ticket_id != ticket.id:
                return Reply([self.msg("visit_change_need_ticket", turn)], {})
            step = state.get("step")
            if step == VisitChangeStep.cancel_confirm.value:
                if turn.intent == "affirm":
                    label = self.script.visit.visit_label(visit, turn.language)
                    visits.cancel(visit, turn.now, actor="customer")
                    self.script.promise.cancel_visit_promises(uow, visit, turn.now, "visit cancelled")
                    uow.commit()
                    return Reply(self.finish_visit_change(turn, ticket, "visit_cancelled", label), {"last_ticket": ticket.number})
                return Reply([self.msg("visit_kept", turn)], {"last_ticket": ticket.number})
            if step == VisitChangeStep.reschedule_when.value:
                try:
                    when = self.tools.parse_when(turn.text or "", self.local(turn.now))
                except ValueError:
                    when = None
                # the complaint flow takes over at the visit pick (without this flow's own keys)
                flow_state = {k: v for k, v in state.items() if k not in ("action", "fails")}
                flow_state.update(step=ComplaintStep.visit_pick.value, reschedule_visit_id=visit.id)
                out = self.script.visit.offer_windows(TurnContext(turn, flow_state, ticket, book, uow), when=when)
                uow.commit()
                flow_state["flow"] = "complaint" if flow_state.get("step") in ("visit_pick",) else flow_state.get("flow")
                flow_state.setdefault("kind", ticket.kind)
                return Reply(out, flow_state)
        return Reply([], {"last_ticket": state.get("last_ticket")})

    def identify_ticket(self, turn: Turn, state: dict, book: TicketBook, uow) -> Ticket | None:
        """The ticket whose visit is to change: this conversation's own, or one proved with the phone plus the
        ticket or order number (Assistant.prove_tickets). None, with `state["_ask"]` set, otherwise."""
        number = turn.entity("ticket_number")
        phone = phones.normalize(turn.entity("phone"))
        if phone:
            state["phone"] = phone
        if number:
            state["number"] = number.upper()
        candidate = state.get("number") or state.get("last_ticket")
        if not candidate and not state.get("phone"):
            return None
        found, ask = self.script.status.prove_tickets(uow, book, turn, number=candidate, phone=state.get("phone"),
                                        order_id=None if candidate else turn.entity("order_id"))
        if found:
            return found[0]
        if ask in ("status_mismatch", "lookup_locked"):
            state.pop("number", None)
        state["_ask"] = ask or "visit_change_need_ticket"
        return None

    def finish_visit_change(self, turn: Turn, ticket: Ticket, key: str, label: str) -> list[Message]:
        return [self.msg(key, turn, number=ticket.number, time=label)]
