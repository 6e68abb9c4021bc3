"""What the Rasa server's channels share: the process's one App (bot/bootstrap.py: settings, records database) and
saving a file a customer sent. Channels translate and deliver; what is stored goes through bot/services."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any


class ChannelRecords:
    """Mixed into a channel: `app` is the process's App (built on first use, inside the server), `save_file` records
    a received file on the conversation's current ticket and returns the ticket number."""

    _records_app: Any = None
    _var_dir: str | None = None  # where files go (default: the settings' var directory)

    @property
    def app(self) -> Any:
        if self._records_app is None:
            from bot.bootstrap import process_app

            self._records_app = process_app()
        return self._records_app

    def save_file(self, conversation: str, *, data: bytes, mime_type: str | None, filename: str | None,
                  language: str) -> str:
        from bot.services.attachments import store_attachment

        app = self.app
        with app.uow() as uow:
            return store_attachment(uow, app.settings, conversation_id=conversation, channel=self.name(),  # type: ignore[attr-defined]
                                    data=data, mime_type=mime_type, filename=filename, language=language,
                                    now=datetime.now(timezone.utc), var_dir=self._var_dir)
