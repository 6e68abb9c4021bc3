"""The agent console's desk pages (issue 13): alerts, the out-of-hours call-back work list, the engineers' day lists
with visit outcomes, closing and reopening tickets, and the figures. Routes are added to the console's blueprint
(bot/channels/agent_console.py) under /webhooks/agent/api/; every one needs the agent's bearer token."""
from __future__ import annotations

import json
from datetime import date, datetime, time, timedelta
from typing import Callable

from sanic import Blueprint
from sanic.request import Request

from bot.services.handoff import HandoffError

MAX_BODY = 16 * 1024  # bytes; the desk's forms are small
MAX_ID = 2 ** 31 - 1  # ids are 32-bit integers in the database: a larger one is simply not there
MAX_NUMBER = 32  # ticket numbers are like SV-20261204-0001
ALERT_DAYS = 90  # the alert list looks this far back
# Domain errors of the desk's services -> HTTP status (400 for anything else).
STATUS = {"ticket_not_found": 404, "callback_not_found": 404, "engineer_not_found": 404, "visit_not_found": 404,
          "bad_transition": 409, "visit_finished": 409, "not_started": 409}


def desk_error(exc) -> HandoffError:
    err = HandoffError(exc.code, str(exc))
    err.http_status = STATUS.get(exc.code, 400)
    return err


def _body(request: Request) -> dict:
    raw = request.body or b"{}"
    if len(raw) > MAX_BODY:
        raise HandoffError("bad_request", f"at most {MAX_BODY} bytes")
    try:
        data = json.loads(raw)
    except ValueError:
        raise HandoffError("bad_request", "the body is not JSON")
    if not isinstance(data, dict):
        raise HandoffError("bad_request", "the body is not a JSON object")
    return data


def _id(value: int, code: str) -> int:
    if not 0 < value <= MAX_ID:
        raise HandoffError("not_found", f"{code} {value}")
    return value


def _day(text: str | None, tz) -> date:
    if not text:
        return datetime.now(tz).date()
    try:
        return date.fromisoformat(text[:10])
    except ValueError:
        raise HandoffError("bad_request", "a date is YYYY-MM-DD")


def add_desk_routes(bp: Blueprint, backend: Callable, as_agent: Callable, ok: Callable, guarded: Callable) -> None:
    """Add the desk's routes to the console blueprint. `as_agent(request, work)` runs `work(uow, agent, now)` in one
    unit of work as the signed-in agent and commits; `ok(data, status)` answers JSON; `guarded` turns errors into
    answers."""
    from bot.services.tickets import TicketError
    from bot.services.visits import VisitError

    def run(work):
        """Domain errors of the desk's services become HandoffError with their HTTP status."""
        def wrapped(uow, agent, now):
            try:
                return work(uow, agent, now)
            except (TicketError, VisitError) as exc:
                raise desk_error(exc) from exc
        return wrapped

    def tz():
        return backend().settings.timezone

    # --- alerts -----------------------------------------------------------------------------------
    @bp.route("/api/alerts", methods=["GET"])
    @guarded
    async def desk_alerts(request: Request):
        from bot.services.desk_loops import alerts

        every = request.args.get("all") in ("1", "true")

        def work(uow, agent, now):
            items = [a.as_dict() for a in alerts(uow.session, since=now - timedelta(days=ALERT_DAYS),
                                                 include_acknowledged=True)]
            open_items = [a for a in items if a["open"]]
            return {"open": len(open_items), "items": items if every else open_items}

        return ok(await as_agent(request, work))

    @bp.route("/api/alerts/<number:str>/ack", methods=["POST"])
    @guarded
    async def desk_alert_ack(request: Request, number: str):
        from bot.services.desk_loops import acknowledge_alert

        note = str(_body(request).get("note") or "")

        def work(uow, agent, now):
            ticket = acknowledge_alert(uow, number[:MAX_NUMBER], now, agent=agent.name, tz=tz(), note=note)
            return {"ticket": ticket.number, "acknowledged_by": agent.name, "acknowledged_at": now.isoformat()}

        return ok(await as_agent(request, run(work)))

    # --- call-backs -------------------------------------------------------------------------------
    @bp.route("/api/callbacks", methods=["GET"])
    @guarded
    async def desk_callbacks(request: Request):
        from bot.services.desk_loops import callback_json, callback_work_list

        every = request.args.get("all") in ("1", "true")

        def work(uow, agent, now):
            items = [callback_json(h, now) for h in callback_work_list(uow.session, include_done=every)]
            return {"to_do": sum(1 for i in items if not i["done"]),
                    "overdue": sum(1 for i in items if i["overdue"]), "items": items}

        return ok(await as_agent(request, work))

    @bp.route("/api/callbacks/<handoff_id:int>/done", methods=["POST"])
    @guarded
    async def desk_callback_done(request: Request, handoff_id: int):
        from bot.services.desk_loops import callback_json, mark_callback_done

        note = str(_body(request).get("note") or "")

        def work(uow, agent, now):
            return callback_json(mark_callback_done(uow, _id(handoff_id, "hand-off"), agent, now, note=note), now)

        return ok(await as_agent(request, run(work)))

    # --- engineers and visits ---------------------------------------------------------------------
    @bp.route("/api/engineers", methods=["GET"])
    @guarded
    async def desk_engineers(request: Request):
        from bot.services.records import engineers_json

        def work(uow, agent, now):
            return engineers_json(uow)

        return ok(await as_agent(request, work))

    @bp.route("/api/visits/day", methods=["GET"])
    @guarded
    async def desk_visits_day(request: Request):
        from bot.services.visits import day_list, day_list_json, find_engineer

        name = (request.args.get("engineer") or "")[:64]
        day = _day(request.args.get("date"), tz())

        def work(uow, agent, now):
            engineer = find_engineer(uow.session, name)
            return day_list_json(engineer, day, day_list(uow.session, engineer, day, tz()), tz())

        return ok(await as_agent(request, run(work)))

    @bp.route("/api/visits/<visit_id:int>/state", methods=["POST"])
    @guarded
    async def desk_visit_state(request: Request, visit_id: int):
        from bot.services.visits import record_visit_outcome, visit_json

        data = _body(request)
        state = str(data.get("state") or "")[:16]
        minutes = data.get("minutes")
        note = str(data.get("note") or "")

        def work(uow, agent, now):
            visit = record_visit_outcome(uow, _id(visit_id, "visit"), state, now, by=agent.name,
                                         late_minutes=minutes, note=note, tz=tz())
            return dict(visit_json(visit), ticket_status=visit.ticket.status)

        return ok(await as_agent(request, run(work)))

    # --- tickets: remedies carried out, reopening ------------------------------------------------
    @bp.route("/api/tickets/<number:str>/complete", methods=["POST"])
    @guarded
    async def desk_ticket_complete(request: Request, number: str):
        from bot.services.desk_loops import complete_remedy

        data = _body(request)
        remedy, note = str(data.get("remedy") or "")[:16], str(data.get("note") or "")

        def work(uow, agent, now):
            ticket = complete_remedy(uow, number[:MAX_NUMBER], remedy, now, agent=agent.name, tz=tz(), note=note)
            return {"ticket": ticket.number, "status": ticket.status, "remedy": remedy}

        return ok(await as_agent(request, run(work)))

    @bp.route("/api/tickets/<number:str>/reopen", methods=["POST"])
    @guarded
    async def desk_ticket_reopen(request: Request, number: str):
        from bot.services.desk_loops import reopen_ticket

        reason = str(_body(request).get("reason") or "")

        def work(uow, agent, now):
            ticket = reopen_ticket(uow, number[:MAX_NUMBER], reason, now, agent=agent.name, tz=tz())
            return {"ticket": ticket.number, "status": ticket.status, "reason": reason.strip()[:500]}

        return ok(await as_agent(request, run(work)))

    # --- figures ----------------------------------------------------------------------------------
    @bp.route("/api/figures", methods=["GET"])
    @guarded
    async def desk_figures_api(request: Request):
        from bot.services.desk_report import desk_figures

        zone = tz()
        until_day = _day(request.args.get("until"), zone) if request.args.get("until") else \
            datetime.now(zone).date() + timedelta(days=1)
        until = datetime.combine(until_day, time(0), tzinfo=zone)
        since = datetime.combine(_day(request.args.get("since"), zone), time(0), tzinfo=zone) \
            if request.args.get("since") else until - timedelta(days=30)
        if since >= until or until - since > timedelta(days=366):
            raise HandoffError("bad_request", "since must be before until, at most a year apart")

        def work(uow, agent, now):
            return desk_figures(uow.session, since=since, until=until, now=now, tz=zone)

        return ok(await as_agent(request, work))


def desk_openapi_paths(op: Callable, obj: dict) -> dict:
    """The desk's paths for the console's OpenAPI document; `op(summary, schema, ...)` as in openapi_document."""
    number = {"name": "number", "in": "path", "required": True, "schema": {"type": "string"},
              "description": "the ticket number, e.g. SV-20261204-0001"}
    every = {"name": "all", "in": "query", "schema": {"type": "string", "enum": ["0", "1"]},
             "description": "1: also the acknowledged alerts / the call-backs already made"}
    note = {"type": "object", "properties": {"note": {"type": "string", "maxLength": 500}}}
    day = {"name": "date", "in": "query", "schema": {"type": "string", "format": "date"},
           "description": "a day in the desk's time zone (default: today)"}
    return {
        "/api/alerts": {"get": op("Alerts of the last 90 days: tickets rated 1-2, answered \"not solved\" or reopened",
                                  obj, params=[every], with_errors=("401",),
                                  description="`open` is the badge: alerts not acknowledged since their last "
                                              "trigger. Each item: ticket, reasons (low_rating, not_solved, "
                                              "reopened), score, first_at, last_at, open, acknowledged_at/by.")},
        "/api/alerts/{number}/ack": {"post": op("Acknowledge an alert (event alert_acknowledged)", obj,
                                                params=[number], body=note, with_errors=("401", "404"))},
        "/api/callbacks": {"get": op("The out-of-hours call-back work list: to make (earliest first), then made",
                                     obj, params=[every], with_errors=("401",))},
        "/api/callbacks/{handoff_id}/done": {"post": op(
            "Mark a call-back made: who and when are stored (event callback_done)", obj, body=note,
            params=[{"name": "handoff_id", "in": "path", "required": True, "schema": {"type": "integer"}}],
            with_errors=("401", "404"))},
        "/api/engineers": {"get": op("The engineers (code, name in zh and en, city)", obj, with_errors=("401",))},
        "/api/visits/day": {"get": op("One engineer's visits on one day", obj, with_errors=("401", "404"), params=[
            {"name": "engineer", "in": "query", "required": True, "schema": {"type": "string"},
             "description": "code (E001) or name in either language"}, day])},
        "/api/visits/{visit_id}/state": {"post": op(
            "Record a visit's outcome: done (resolves the ticket), no_show, or late (with minutes)", obj,
            params=[{"name": "visit_id", "in": "path", "required": True, "schema": {"type": "integer"}}],
            body={"type": "object", "required": ["state"], "properties": {
                "state": {"type": "string", "enum": ["done", "no_show", "late"]},
                "minutes": {"type": "integer", "minimum": 1, "maximum": 1440},
                "note": {"type": "string", "maxLength": 500}}})},
        "/api/tickets/{number}/complete": {"post": op(
            "The return, exchange or refund was carried out: the ticket is resolved", obj, params=[number],
            body={"type": "object", "required": ["remedy"], "properties": {
                "remedy": {"type": "string", "enum": ["return", "exchange", "refund"]},
                "note": {"type": "string", "maxLength": 500}}}, with_errors=("401", "404", "409"))},
        "/api/tickets/{number}/reopen": {"post": op(
            "Reopen a resolved or closed ticket, with a reason", obj, params=[number],
            body={"type": "object", "required": ["reason"], "properties": {
                "reason": {"type": "string", "maxLength": 500}}}, with_errors=("401", "404", "409"))},
        "/api/figures": {"get": op("The desk's figures (as `python -m bot tickets report --json`)", obj,
                                   with_errors=("401",), params=[
            {"name": "since", "in": "query", "schema": {"type": "string", "format": "date"},
             "description": "first day (default: 30 days before until)"},
            {"name": "until", "in": "query", "schema": {"type": "string", "format": "date"},
             "description": "day after the last (default: tomorrow)"}])},
    }
