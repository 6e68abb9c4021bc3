"""Files a customer sends (photos of the fault, receipts, invoices): checked, stored, and recorded on the
conversation's current ticket.

Where the bytes go (one interface, `attachment_store`): on local disk under the var directory (the default), or in
the records database (table attachment_blobs; path `db:<ticket>/<name>`), so that every instance of a cluster reads
every file: BOT_ATTACHMENTS=db|disk, default db in the cluster profile (bot/cluster.py), disk otherwise.
`read_attachment` returns the bytes from either.

`save_attachment` works inside the caller's unit of work like `TicketBook` (the caller commits). It writes the file
before the rows are flushed; if the caller does not commit, it should call `discard_file(path)` so no orphan file
stays on disk.
"""
from __future__ import annotations

import logging
import os
import uuid
from datetime import datetime
from pathlib import Path

from sqlalchemy import select

from bot.services.tickets import SLA, TicketBook, add_event
from bot.store.db import UnitOfWork
from bot.store.models import OPEN_STATUSES, Attachment, AttachmentBlob, Ticket

log = logging.getLogger(__name__)

MAX_BYTES = 10 * 1024 * 1024  # 10 MB
# mime type -> file extension
ALLOWED_TYPES = {
    "image/jpeg": "jpg",
    "image/png": "png",
    "image/webp": "webp",
    "image/heic": "heic",
    "application/pdf": "pdf",
}
ALIASES = {"image/jpg": "image/jpeg", "image/pjpeg": "image/jpeg", "image/x-png": "image/png",
           "image/heif": "image/heic",
           "application/x-pdf": "application/pdf"}
_HEIC_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1", b"heif"}


class AttachmentError(ValueError):
    """A file the service desk does not accept; `code` is "too_large" or "bad_type"."""

    def __init__(self, code: str, detail: str = ""):
        super().__init__(f"{code}: {detail}" if detail else code)
        self.code = code


def normalise_mime(mime_type: str | None) -> str:
    mime = (mime_type or "").split(";", 1)[0].strip().lower()
    return ALIASES.get(mime, mime)


def sniff(data: bytes) -> str | None:
    """The type the bytes really are (a renamed .exe is not a photo)."""
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[4:8] == b"ftyp" and data[8:12] in _HEIC_BRANDS:
        return "image/heic"
    if data.lstrip(b"\r\n\t ")[:5] == b"%PDF-":
        return "application/pdf"
    return None


def check(data: bytes, mime_type: str | None) -> str:
    """The mime type the content really has, if the file is acceptable, else AttachmentError.

    The declared type must be one we accept (or unknown: octet-stream/empty) and the bytes must really be one of
    the accepted types; a mislabelled JPEG/PNG is stored under the type its content has."""
    if not data:
        raise AttachmentError("bad_type", "empty file")
    if len(data) > MAX_BYTES:
        raise AttachmentError("too_large", f"{len(data)} bytes > {MAX_BYTES}")
    declared = normalise_mime(mime_type)
    if declared and declared != "application/octet-stream" and declared not in ALLOWED_TYPES:
        raise AttachmentError("bad_type", f"declared {declared}")
    actual = sniff(data)
    if actual is None or actual not in ALLOWED_TYPES:
        raise AttachmentError("bad_type", f"declared {declared or '-'}, content not an accepted type")
    return actual


def current_ticket(uow: UnitOfWork, conversation_id: str) -> Ticket | None:
    """The newest open ticket of the conversation."""
    return uow.session.execute(
        select(Ticket).where(Ticket.conversation_id == conversation_id,
                             Ticket.status.in_([s.value for s in OPEN_STATUSES]))
        .order_by(Ticket.id.desc()).limit(1)).scalars().first()


DB_PREFIX = "db:"


def attachment_store(env: dict | None = None) -> str:
    """"db" or "disk": BOT_ATTACHMENTS, else "db" in the cluster profile, else "disk"."""
    from bot.cluster import profile_of

    env = os.environ if env is None else env
    chosen = (env.get("BOT_ATTACHMENTS") or "").strip().lower()
    if chosen not in ("", "db", "disk"):
        raise SystemExit(f"BOT_ATTACHMENTS must be 'db' or 'disk', not {chosen!r}")
    return chosen or ("db" if profile_of(env).cluster else "disk")


def read_attachment(uow: UnitOfWork, attachment: Attachment) -> bytes:
    """The bytes of a stored attachment, wherever they are."""
    if attachment.path.startswith(DB_PREFIX):
        blob = uow.session.get(AttachmentBlob, attachment.path[len(DB_PREFIX):])
        if blob is None:
            raise FileNotFoundError(attachment.path)
        return bytes(blob.data)
    return Path(attachment.path).read_bytes()


def discard_file(path: str | os.PathLike) -> None:
    if str(path).startswith(DB_PREFIX):  # rolled back or deleted with its row
        return
    try:
        Path(path).unlink()
    except FileNotFoundError:
        pass


def save_attachment(uow: UnitOfWork, *, conversation_id: str, channel: str, data: bytes, mime_type: str | None,
                    filename: str | None, language: str, now: datetime, var_dir: Path | str,
                    book: TicketBook | None = None, store: str | None = None) -> tuple[str, Attachment]:
    """Store the file under <var_dir>/attachments/<ticket number>/<uuid>.<ext> (or, `store` "db", in the
    database: see `attachment_store`) and record it on the conversation's newest open ticket (an "inquiry"
    ticket is opened if there is none).

    Returns (ticket number, Attachment). Raises AttachmentError (a ValueError) with code "too_large" or
    "bad_type" before anything is written. The caller commits. `book` (optional) is the TicketBook to open
    the inquiry ticket with; by default one with the time zone and SLA from the settings.
    """
    mime = check(data, mime_type)
    ticket = current_ticket(uow, conversation_id)
    if ticket is None:
        if book is None:
            from bot.settings import load_settings

            settings = load_settings()
            book = TicketBook(uow.session, settings.timezone,
                              SLA(settings.first_response_hours, settings.resolution_hours))
        ticket, _ = book.open(conversation_id=conversation_id, channel=channel, kind="inquiry", language=language,
                              now=now, actor="customer")
    name = f"{uuid.uuid4().hex}.{ALLOWED_TYPES[mime]}"
    in_db = (store or attachment_store()) == "db"
    if in_db:  # written with the rows, in the caller's transaction
        path = DB_PREFIX + f"{ticket.number}/{name}"
    else:
        folder = Path(var_dir).resolve() / "attachments" / ticket.number
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / name
        partial = path.with_name(path.name + ".part")
        partial.write_bytes(data)
        os.replace(partial, path)
    try:
        attachment = Attachment(ticket=ticket, path=str(path), mime_type=mime, size=len(data), channel=channel,
                                created_at=now)
        uow.session.add(attachment)
        ticket.updated_at = now
        add_event(uow.session, ticket, "attachment_added", "customer", now, path=str(path), mime_type=mime,
                  size=len(data), channel=channel, filename=(filename or "")[:200])
        uow.session.flush()
        if in_db:
            uow.session.add(AttachmentBlob(key=str(path)[len(DB_PREFIX):], attachment_id=attachment.id, data=data,
                                           created_at=now))
            uow.session.flush()
    except Exception:
        discard_file(path)
        raise
    log.info("attachment %s (%s, %d bytes) saved on %s%s", name, mime, len(data), ticket.number,
             " in the database" if in_db else "")
    return ticket.number, attachment


def store_attachment(uow: UnitOfWork, settings, *, conversation_id: str, channel: str, data: bytes,
                     mime_type: str | None, filename: str | None, language: str, now: datetime,
                     var_dir: Path | str | None = None) -> str:
    """`save_attachment` with the ticket book of the settings (time zone, SLA), committed; the file is removed
    again if the commit fails. Returns the ticket number. For a channel that just received a file."""
    book = TicketBook(uow.session, settings.timezone, SLA(settings.first_response_hours, settings.resolution_hours))
    number, attachment = save_attachment(uow, conversation_id=conversation_id, channel=channel, data=data,
                                         mime_type=mime_type, filename=filename, language=language, now=now,
                                         var_dir=var_dir or settings.var_dir, book=book)
    try:
        uow.commit()
    except Exception:
        discard_file(attachment.path)
        raise
    return number
