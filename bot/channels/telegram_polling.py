"""Development mode without a public URL: `python -m bot telegram --polling`.

Long-polls Telegram (getUpdates) and forwards every update, as the JSON Telegram would have posted, to the local Rasa
server's Telegram webhook with the secret header, so the same code path (bot/channels/telegram.py) handles it.
Uses TELEGRAM_TOKEN, TELEGRAM_WEBHOOK_SECRET and TELEGRAM_API_URL like the channel; the Rasa server must run with the
same TELEGRAM_TOKEN / TELEGRAM_WEBHOOK_SECRET (e.g. `make run` in a shell where both are exported).

Telegram refuses getUpdates while a webhook is set, so polling first deletes the webhook (pending updates are kept).
An update is acknowledged (the offset moves past it) only once Rasa has answered it; while Rasa is unreachable or
answers 5xx the poller waits and retries the same update.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from typing import TYPE_CHECKING

# Kept light at import: `python -m bot` builds its parser with add_telegram_commands for every command, so PTB,
# aiohttp and the channel module (which imports Rasa) are imported only when polling actually runs.
if TYPE_CHECKING:  # pragma: no cover
    import aiohttp

    from bot.channels.telegram import TelegramConfig

log = logging.getLogger(__name__)

DEFAULT_RASA_URL = "http://127.0.0.1:5005/webhooks/telegram/webhook"


class PollingError(RuntimeError):
    """A problem retrying will not fix (wrong secret, channel not configured in Rasa, bad token)."""


class Poller:
    def __init__(self, config: TelegramConfig, rasa_url: str = DEFAULT_RASA_URL, *, poll_timeout: int = 30,
                 max_delay: float = 30.0, forward_attempts: int | None = None):
        from telegram import Bot
        from telegram.request import HTTPXRequest

        if not config.configured:
            raise PollingError("set " + " and ".join(config.missing) + " (the same values as the Rasa server's)")
        self.config = config
        self.rasa_url = rasa_url
        self.poll_timeout = poll_timeout
        self.max_delay = max_delay
        self.forward_attempts = forward_attempts  # None: keep retrying while Rasa is down
        self.offset: int | None = None
        api = config.api_url
        self.bot = Bot(config.token, base_url=f"{api}/bot", base_file_url=f"{api}/file/bot",
                       get_updates_request=HTTPXRequest(read_timeout=10.0, connect_timeout=10.0))
        self.forwarded = 0

    async def forward(self, http: aiohttp.ClientSession, update: dict) -> None:
        import aiohttp

        from bot.channels.telegram import SECRET_HEADER

        body = json.dumps(update, ensure_ascii=False).encode("utf-8")
        headers = {"Content-Type": "application/json", SECRET_HEADER: self.config.secret}
        delay, attempt = 0.5, 0
        while True:
            attempt += 1
            try:
                async with http.post(self.rasa_url, data=body, headers=headers) as resp:
                    text = await resp.text()
                    if resp.status == 200:
                        self.forwarded += 1
                        return
                    if resp.status in (403, 404, 503):
                        raise PollingError(f"Rasa answered {resp.status} at {self.rasa_url}: {text[:200]} "
                                           "(is the Telegram channel in credentials.yml and are TELEGRAM_TOKEN and "
                                           "TELEGRAM_WEBHOOK_SECRET the same for the Rasa server?)")
                    if 400 <= resp.status < 500:
                        log.error("Rasa refused update %s (%s): %s; skipped", update.get("update_id"), resp.status,
                                  text[:200])
                        return
                    problem = f"HTTP {resp.status}"
            except aiohttp.ClientError as exc:
                problem = f"{exc.__class__.__name__}: {exc}"
            if self.forward_attempts is not None and attempt >= self.forward_attempts:
                raise PollingError(f"could not forward update {update.get('update_id')} to {self.rasa_url}: {problem}")
            log.warning("Rasa not reachable at %s (%s); retrying in %.1fs", self.rasa_url, problem, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.max_delay)

    async def poll_once(self, http: aiohttp.ClientSession) -> int:
        """One getUpdates round; returns how many updates were forwarded."""
        from bot.channels.telegram import ALLOWED_UPDATES

        updates = await self.bot.get_updates(offset=self.offset, timeout=self.poll_timeout,
                                             allowed_updates=ALLOWED_UPDATES)
        for update in updates:
            await self.forward(http, update.to_dict())
            self.offset = update.update_id + 1
        return len(updates)

    async def run(self, *, once: bool = False, stop: asyncio.Event | None = None) -> int:
        import aiohttp
        from telegram.error import InvalidToken, NetworkError, RetryAfter, TimedOut

        from bot.channels.telegram import retry_after_seconds

        async with self.bot:
            me = self.bot.bot
            log.info("polling as @%s, forwarding to %s", me.username, self.rasa_url)
            await self.bot.delete_webhook(drop_pending_updates=False)
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as http:
                delay = 1.0
                while not (stop and stop.is_set()):
                    try:
                        await self.poll_once(http)
                        delay = 1.0
                    except RetryAfter as exc:
                        await asyncio.sleep(retry_after_seconds(exc))
                    except InvalidToken as exc:
                        raise PollingError(f"Telegram refused the token: {exc}") from exc
                    except (TimedOut, NetworkError) as exc:
                        if once:
                            raise
                        log.warning("getUpdates failed (%s); retrying in %.0fs", exc, delay)
                        await asyncio.sleep(delay)
                        delay = min(delay * 2, self.max_delay)
                    if once:
                        break
        return self.forwarded


def cmd_telegram(args) -> int:
    if not args.polling:
        print("nothing to do: use `python -m bot telegram --polling` (the webhook is served by the Rasa server)",
              file=sys.stderr)
        return 2
    from bot.channels.telegram import TelegramConfig

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        poller = Poller(TelegramConfig.load(), args.rasa_url, poll_timeout=args.timeout,
                        forward_attempts=4 if args.once else None)
        forwarded = asyncio.run(poller.run(once=args.once))
    except PollingError as exc:
        print(f"telegram polling: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    print(f"forwarded {forwarded} update(s)")
    return 0


def add_telegram_commands(subparsers: argparse._SubParsersAction) -> None:
    """`python -m bot telegram --polling [--rasa-url URL] [--timeout S] [--once]`."""
    tg = subparsers.add_parser("telegram", help="Telegram channel: long-polling for development",
                               description="Forward Telegram updates (getUpdates) to the local Rasa server's "
                                           "Telegram webhook. Needs TELEGRAM_TOKEN and TELEGRAM_WEBHOOK_SECRET; "
                                           "TELEGRAM_API_URL is optional.")
    tg.add_argument("--polling", action="store_true", help="long-poll getUpdates and forward each update to Rasa")
    tg.add_argument("--rasa-url", default=DEFAULT_RASA_URL, help=f"Rasa's Telegram webhook (default {DEFAULT_RASA_URL})")
    tg.add_argument("--timeout", type=int, default=30, help="long-poll timeout in seconds (default 30)")
    tg.add_argument("--once", action="store_true", help="one getUpdates round, then exit")
    tg.set_defaults(func=cmd_telegram)
