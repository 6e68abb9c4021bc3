"""Who gets which hand-off: routing by language and skill, transfers between agents, and the queue's fingerprint
for the console's live stream (issue 16).

Plain Python over a SQLAlchemy session (the caller's unit of work commits); nothing here knows Rasa or HTTP.

Routing: a waiting case is *offered* first to agents who speak the customer's language and, when an agent has
skills (product categories), who know the product. The others see it too, sorted after and dimmed, and it is offered
to them as well once it has waited `routing.others_after_seconds` (data/seed/desk.yml, default 60). An agent with
no languages or no skills recorded counts as speaking every language / knowing every product.

Transfer: the agent holding a case hands it to a colleague (it stays taken, now by them) or back to the queue
(waiting again, in its old place); the note goes with it, as a `handoff_transferred` ticket event that the receiving
agent sees in the queue and on the case card. The bot stays paused throughout: the customer still has a person.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path

import yaml
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from bot.services.handoff import AgentAccounts, HandoffDesk, HandoffError, agent_json, holds
from bot.services.tickets import add_event, iso
from bot.store.models import OPEN_HANDOFF_STATUSES, Agent, AgentSession, Handoff, HandoffStatus, TicketEvent

MAX_NOTE = 500
TRANSFERRED = "handoff_transferred"
RESOLUTION = "resolution_note"


@dataclass(frozen=True)
class RoutingConfig:
    others_after_seconds: int = 60


@lru_cache(maxsize=4)
def load_routing(path: str | Path) -> RoutingConfig:
    """The `routing` section of data/seed/desk.yml (absent: the defaults)."""
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    section = data.get("routing") or {}
    seconds = int(section.get("others_after_seconds", 60))
    if seconds < 0:
        raise ValueError(f"{path}: routing.others_after_seconds must be 0 or more")
    return RoutingConfig(others_after_seconds=seconds)


# ---------------------------------------------------------------------------------------------- routing
def speaks(agent: Agent, language: str | None) -> bool:
    languages = list(agent.languages or [])
    return not languages or not language or language in languages


def knows(agent: Agent, product: str | None) -> bool:
    skills = list(agent.skills or [])
    return not skills or not product or product in skills


def suits(agent: Agent, language: str | None, product: str | None) -> bool:
    """The case is for this agent first: their language, and their product when they have skills."""
    return speaks(agent, language) and knows(agent, product)


def route_queue(session: Session, items: list[dict], viewer: Agent, config: RoutingConfig) -> list[dict]:
    """The queue as `viewer` sees it: each item gets `offered` (waiting and for this agent now: language and skill,
    or waited past `others_after_seconds`), `routed` (for this agent first) and the last `transfer` (from, to,
    note, at) of its hand-off; the cases offered to the viewer come first, the others keep their order after."""
    transfers = last_transfers(session, [item["handoff_id"] for item in items])
    for item in items:
        routed = suits(viewer, item.get("language"), item.get("product"))
        waiting = item["status"] == HandoffStatus.waiting.value
        item["routed"] = routed
        item["offered"] = waiting and (routed or item["waiting_seconds"] >= config.others_after_seconds)
        item["transfer"] = transfers.get(item["handoff_id"])
    rank = {id(item): 0 if (item["offered"] or item["status"] != HandoffStatus.waiting.value) else 1
            for item in items}
    return sorted(items, key=lambda item: rank[id(item)])


def last_transfers(session: Session, handoff_ids: list[int]) -> dict[int, dict]:
    """The latest transfer of each of these hand-offs: {handoff_id: {from, to, to_display_name, note, at}}."""
    if not handoff_ids:
        return {}
    wanted = set(handoff_ids)
    rows = session.execute(
        select(TicketEvent).join(Handoff, Handoff.ticket_id == TicketEvent.ticket_id)
        .where(Handoff.id.in_(wanted), TicketEvent.kind == TRANSFERRED).order_by(TicketEvent.id)
    ).scalars()
    out: dict[int, dict] = {}
    for event in rows:
        data = event.data or {}
        if data.get("handoff_id") in wanted:
            out[data["handoff_id"]] = {"from": data.get("from"), "from_display_name": data.get("from_display_name"),
                                       "to": data.get("to"), "to_display_name": data.get("to_display_name"),
                                       "note": data.get("note"), "at": iso(event.at)}
    return out


def colleagues(session: Session, viewer: Agent, now: datetime, online_minutes: int) -> list[dict]:
    """Active agents other than the viewer, for the transfer menu: who is online, and their languages and skills."""
    from datetime import timedelta

    since = now - timedelta(minutes=online_minutes)
    online = set(session.execute(
        select(AgentSession.agent_id).where(AgentSession.revoked_at.is_(None), AgentSession.expires_at > now,
                                            AgentSession.last_seen_at >= since)).scalars())
    agents = session.execute(select(Agent).where(Agent.active.is_(True), Agent.id != viewer.id)
                             .order_by(Agent.name)).scalars()
    return [dict(agent_json(a), skills=list(a.skills or []), online=a.id in online) for a in agents]


# ---------------------------------------------------------------------------------------------- transfer
def transfer(desk: HandoffDesk, handoff: Handoff, agent: Agent, now: datetime, *, to: str | None,
             note: str) -> dict:
    """Hand a taken case to colleague `to` (a name), or back to the queue when `to` is empty, with a note.
    Only the agent holding it (or a supervisor) may; the note is required. Returns plain values."""
    note = (note or "").strip()[:MAX_NOTE]
    if not note:
        raise HandoffError("note_required", "say why, for the colleague who takes it")
    if handoff.status != HandoffStatus.claimed.value:
        raise HandoffError("not_claimed" if handoff.status == HandoffStatus.waiting.value else "finished",
                           f"hand-off {handoff.id} is {handoff.status}")
    if not holds(agent, handoff):
        raise HandoffError("forbidden")
    session = desk.session
    previous = handoff.agent
    target = None
    if to:
        target = AgentAccounts(session).get(str(to)[:64])
        if target is None or not target.active:
            raise HandoffError("not_found", f"no active agent {to}")
        if previous is not None and target.id == previous.id:
            raise HandoffError("bad_request", "the case is already theirs")
        handoff.agent_id = target.id
    else:
        # Back to the queue: waiting again, in its old place (requested_at is kept). HANDOFF_TRANSITIONS has no
        # claimed -> waiting on purpose (nothing else may do it), so the move is made here, guarded by the status.
        moved = session.execute(
            update(Handoff).where(Handoff.id == handoff.id, Handoff.status == HandoffStatus.claimed.value)
            .values(status=HandoffStatus.waiting.value, agent_id=None, claimed_at=None)
            .execution_options(synchronize_session=False)).rowcount
        if moved != 1:
            raise HandoffError("not_claimed", f"hand-off {handoff.id} changed meanwhile")
    session.flush()
    session.refresh(handoff)
    add_event(session, handoff.ticket, TRANSFERRED, "agent", now, handoff_id=handoff.id, agent=agent.name,
              **{"from": previous.name if previous else agent.name,
                 "from_display_name": previous.display_name if previous else agent.display_name},
              to=target.name if target else None, to_display_name=target.display_name if target else None,
              note=note)
    return {"handoff_id": handoff.id, "ticket": handoff.ticket.number, "status": handoff.status,
            "to": target.name if target else None, "to_display_name": target.display_name if target else None,
            "note": note, "language": handoff.language, "channel": handoff.channel}


def record_resolution(desk: HandoffDesk, handoff: Handoff, agent: Agent, now: datetime, note: str) -> None:
    """The resolution note an agent gives when closing a case, as a ticket event of its own."""
    add_event(desk.session, handoff.ticket, RESOLUTION, "agent", now, handoff_id=handoff.id, agent=agent.name,
              text=note[:MAX_NOTE])


# ---------------------------------------------------------------------------------------------- live stream
def queue_fingerprint(session: Session) -> str:
    """What changes when the queue does (a case starts waiting, is taken, transferred, handed back or closed)."""
    rows = session.execute(select(Handoff.id, Handoff.status, Handoff.agent_id)
                           .where(Handoff.status.in_(OPEN_HANDOFF_STATUSES)).order_by(Handoff.id)).all()
    return ";".join(f"{i}:{s}:{a or ''}" for i, s, a in rows)
