"""The agent console's customers page and case-card editing (issue 16). Routes are added to the console's blueprint
(bot/channels/agent_console.py) under /webhooks/agent/api/; every one needs the agent's bearer token:

    GET  /api/customers?q=&page=&per_page=        search by phone, name, order number or ticket number
    GET  /api/customers/<id>?page=&per_page=      the profile: purchases, tickets, visits, conversations
    POST /api/conversations/<id>/facts            {"field", "value"}: add or correct a fact on the case card

The database work is in bot/services/customers.py and bot/services/case_edit.py."""
from __future__ import annotations

import logging
from typing import Callable
from urllib.parse import unquote

from sanic import Blueprint
from sanic.request import Request

from bot.channels.agent_desk import _body, _id
from bot.services.handoff import HandoffError

log = logging.getLogger(__name__)

MAX_QUERY = 100  # characters of a search
MAX_PAGE = 10_000
STATUS = {"customer_not_found": 404, "empty_query": 400}


def _int(request: Request, name: str, default: int, top: int) -> int:
    raw = str(request.args.get(name, default))[:8]
    try:
        return max(1, min(int(raw), top))
    except ValueError:
        raise HandoffError("bad_request", f"{name} is a whole number")


def _customer_error(exc) -> HandoffError:
    err = HandoffError(exc.code, str(exc))
    err.http_status = STATUS.get(exc.code, 400)
    return err


def suggested_facts(card: dict) -> list[dict]:
    """Facts in what the customer wrote since the agent took over, offered on the card (one click to accept)."""
    from bot.services.case_edit import suggest_facts

    items = card.get("transcript") or []
    start = max((n for n, item in enumerate(items) if item.get("what") == "paused"), default=None)
    if start is None:
        return []
    said = [item.get("text") or "" for item in items[start:] if item.get("from") == "customer"]
    return [s.as_dict() for s in suggest_facts(said, card.get("facts") or {})]


def add_customer_routes(bp: Blueprint, backend: Callable, as_agent: Callable, ok: Callable, guarded: Callable,
                        handoff_of: Callable) -> None:
    """Add the customers page's and the card editor's routes to the console blueprint (see agent_desk.py for the
    arguments; `handoff_of(uow, conversation_id)` gives (desk, latest hand-off) or raises not_found)."""
    from bot.services.case_edit import FactError
    from bot.services.customers import CustomerError

    @bp.route("/api/customers", methods=["GET"])
    @guarded
    async def customers_search(request: Request):
        from bot.services.customers import search

        query = str(request.args.get("q") or "")[:MAX_QUERY]
        page, per_page = _int(request, "page", 1, MAX_PAGE), _int(request, "per_page", 20, 50)

        def work(uow, agent, now):
            try:
                found = search(uow.session, query, page=page, per_page=per_page)
            except CustomerError as exc:
                raise _customer_error(exc) from exc
            log.info("customers: %s searched (%d found)", agent.name, found.total)
            return {"q": query, **found.as_dict()}

        return ok(await as_agent(request, work))

    @bp.route("/api/customers/<customer_id:int>", methods=["GET"])
    @guarded
    async def customers_profile(request: Request, customer_id: int):
        from bot.services.customers import profile

        page, per_page = _int(request, "page", 1, MAX_PAGE), _int(request, "per_page", 20, 50)
        customer_id = _id(customer_id, "customer")

        def work(uow, agent, now):
            try:
                found = profile(uow.session, customer_id, page=page, per_page=per_page)
            except CustomerError as exc:
                raise _customer_error(exc) from exc
            log.info("customers: %s opened customer %d", agent.name, customer_id)
            return found

        return ok(await as_agent(request, work))

    @bp.route("/api/conversations/<conversation_id:str>/facts", methods=["POST"])
    @guarded
    async def case_facts(request: Request, conversation_id: str):
        from bot.services.case_edit import edit_fact

        conversation_id = unquote(conversation_id)[:160]
        data = _body(request)
        field, value = str(data.get("field") or "")[:32], str(data.get("value") or "")[:1000]

        def work(uow, agent, now):
            _desk, handoff = handoff_of(uow, conversation_id)
            try:
                return edit_fact(uow.session, handoff, agent, field, value, now, backend().settings.timezone)
            except FactError as exc:
                raise HandoffError(exc.code, str(exc)) from exc

        return ok(await as_agent(request, work))


def customer_openapi_paths(op: Callable, obj: dict) -> dict:
    """The customers page's and card editor's paths for the console's OpenAPI document."""
    paging = [{"name": "page", "in": "query", "schema": {"type": "integer", "minimum": 1, "default": 1}},
              {"name": "per_page", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 50,
                                                                "default": 20}}]
    return {
        "/api/customers": {"get": op(
            "Find customers by phone (any spelling), name (part), order number or ticket number", obj,
            params=[{"name": "q", "in": "query", "required": True, "schema": {"type": "string", "maxLength": 100}}]
            + paging, with_errors=("401",),
            description="{q, items: [{id, name, phone, language, since, matched_by, tickets, purchases}], total, "
                        "page, per_page, pages}")},
        "/api/customers/{customer_id}": {"get": op(
            "A customer's profile", obj, with_errors=("401", "404"),
            params=[{"name": "customer_id", "in": "path", "required": True, "schema": {"type": "integer"}}] + paging,
            description="{customer: {id, name, phone, language, since, identities}, purchases: [...], tickets: "
                        "{items: [{number, kind, status, channel, conversation_id, product, model, symptom, remedy, "
                        "remedy_accepted, satisfaction, created_at, order_id}], total, page, per_page, pages}, "
                        "visits: [...], conversations: [{conversation_id, channel, tickets, handoffs, first_at, "
                        "last_at}]}")},
        "/api/conversations/{conversation_id}/facts": {"post": op(
            "Add or correct a fact on the case card (the agent must hold the case); checked as the bot checks it",
            obj, with_errors=("401", "403", "404"),
            params=[{"name": "conversation_id", "in": "path", "required": True, "schema": {"type": "string"}}],
            body={"type": "object", "required": ["field", "value"], "properties": {
                "field": {"type": "string", "enum": ["address", "model", "phone", "purchase_date", "symptom"]},
                "value": {"type": "string", "maxLength": 300}}},
            description="{ticket, field, value (as stored: phone in E.164, date YYYY-MM-DD, model in the "
                        "catalogue's spelling), changed, agent, at}; 400 with error bad_phone, bad_address, "
                        "bad_model, bad_date, bad_date_future, bad_symptom, unknown_fact or empty_value")},
    }
