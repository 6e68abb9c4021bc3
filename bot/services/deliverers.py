"""The runner's Deliverers: each channel's promise goes to the Rasa server's outbox gate
(bot/channels/outbox_gate.py), which pushes it through the customer's channel and writes it into the conversation.

One class, registered per channel name (telegram, webchat, rest, wechat): what differs per channel — Telegram's
Bot API, the widget's socket.io room (`held` when nobody has it open), REST's tracker — happens on the server
side, where those channels live. A channel that needs something else registers its own Deliverer.
"""
from __future__ import annotations

import json
import urllib.error
import urllib.request

from bot.services.outbox import DeliveryError, DeliveryResult, Deliverers, Outgoing

CHANNELS = ("telegram", "webchat", "rest", "wechat")


class GateDeliverer:
    def __init__(self, channel: str, url: str, token: str, timeout: float = 30.0):
        self.channel = channel
        self.url = url.rstrip("/") + "/webhooks/outbox/deliver"
        self.token = token
        self.timeout = timeout

    def deliver(self, item: Outgoing) -> str:
        body = json.dumps(item.as_dict(), ensure_ascii=False).encode("utf-8")
        request = urllib.request.Request(self.url, data=body, method="POST", headers={
            "Content-Type": "application/json", "Authorization": f"Bearer {self.token}"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as resp:
                answer = json.loads(resp.read(65536) or b"{}")
        except urllib.error.HTTPError as exc:
            try:
                detail = json.loads(exc.read(4096) or b"{}")
            except ValueError:
                detail = {}
            retryable = bool(detail.get("retryable", exc.code >= 500 or exc.code == 429))
            raise DeliveryError(f"gate answered {exc.code} {detail.get('error', '')}".strip(), retryable) from exc
        except (OSError, ValueError) as exc:  # refused, timed out, reset: the Rasa server is down or busy
            raise DeliveryError(f"gate unreachable: {exc.__class__.__name__}", True) from exc
        return DeliveryResult.held if answer.get("status") == "held" else DeliveryResult.sent


def gate_deliverers(url: str, token: str, channels=CHANNELS) -> Deliverers:
    return Deliverers(GateDeliverer(channel, url, token) for channel in channels)
