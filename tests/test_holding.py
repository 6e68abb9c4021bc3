"""bot/services/holding.py: the hand-off's status says who holds a conversation; Rasa's pause is made to agree."""
from __future__ import annotations

from types import SimpleNamespace

from bot.services.holding import BOT, PERSON, holder_of, tracker_events
from bot.store.models import HandoffStatus


def test_a_person_holds_only_a_claimed_handoff():
    assert holder_of(SimpleNamespace(status=HandoffStatus.claimed.value)) == PERSON
    assert {holder_of(SimpleNamespace(status=s.value)) for s in HandoffStatus if s != HandoffStatus.claimed} == {BOT}
    assert holder_of(None) == BOT


def test_the_tracker_is_paused_resumed_or_left_as_it_agrees():
    assert tracker_events(PERSON, tracker_paused=False) == [{"event": "pause"}]
    assert tracker_events(BOT, tracker_paused=True) == [{"event": "resume"}]
    assert tracker_events(PERSON, tracker_paused=True) == []
    assert tracker_events(BOT, tracker_paused=False) == []
