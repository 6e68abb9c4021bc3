"""Plain values that cross between the Rasa action and the conversation script: a turn in, a reply out."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class Turn:
    """One customer message, as NLU read it."""

    text: str
    intent: str | None
    language: str  # the language to answer in: zh or en
    now: datetime  # tz-aware
    conversation_id: str
    channel: str = "rest"
    confidence: float = 1.0
    ranking: tuple[tuple[str, float], ...] = ()
    entities: tuple[dict, ...] = ()
    detected: str | None = None  # language of this very message: zh, en, other, or None (no words)
    detected_confidence: float = 0.0
    anger: float = 0.0
    client: str | None = None  # the client's address (REST, web chat) or Telegram user, for look-up limits

    def entity(self, name: str) -> str | None:
        for ent in self.entities:
            if ent.get("entity") == name and ent.get("value") not in (None, ""):
                return str(ent["value"])
        return None

    def entity_text(self, name: str) -> str | None:
        for ent in self.entities:
            if ent.get("entity") == name:
                if ent.get("start") is not None and ent.get("end") and ent["end"] > ent["start"]:
                    return self.text[ent["start"]:ent["end"]]
                return str(ent.get("value") or "")
        return None


@dataclass
class Button:
    title: str
    payload: str


@dataclass
class Message:
    text: str
    buttons: list[Button] = field(default_factory=list)

    def as_dict(self) -> dict:
        data: dict = {"text": self.text}
        if self.buttons:
            data["buttons"] = [{"title": b.title, "payload": b.payload} for b in self.buttons]
        return data


@dataclass
class Reply:
    messages: list[Message]
    state: dict

    @property
    def flow(self) -> str | None:
        return self.state.get("flow")

    @property
    def texts(self) -> list[str]:
        return [m.text for m in self.messages]


def conversation_id(channel: str, raw: str | int) -> str:
    """The conversation (tracker sender) id for a sender `raw` on `channel` (rest, telegram, webchat, wechat):
    `<channel>:<raw>`, so a sender on one channel can never name another channel's conversation (a REST client
    sending `"sender": "123"` is `rest:123`, never Telegram chat 123, which is `telegram:123`).

    Every place that turns a channel's own sender into a conversation id, or a test that needs the id a channel
    gives a sender, goes through here."""
    return f"{channel}:{raw}"


def sender_of(channel: str, conversation: str) -> str:
    """The channel's own sender (chat id, session id) of a conversation id made by `conversation_id`."""
    prefix = f"{channel}:"
    return conversation[len(prefix):] if conversation.startswith(prefix) else conversation
