"""Personal data (PIPL) kept out of sight: phone numbers, ID-card numbers, e-mail addresses and street addresses
masked in text (`mask_text`), in every log line (`PersonalDataFilter`, installed by `install_log_masking()` in every
process: bot/serve.py for the Rasa server, actions/__init__.py for the action server, bot/cli.py for the CLI, the
outbox runner and the Telegram poller), and in what the agent console shows to agents who do not hold the case.

The patterns are plain alternations and bounded repeats: no nested quantifiers, so no input makes them backtrack
(tests/test_privacy.py times a 300,000-character line).
"""
from __future__ import annotations

import logging
import re
import traceback

_CJK = "\u4e00-\u9fff"
# Most specific first: an ID-card number contains digits a phone pattern could take for a number.
_ID_CARD = (r"(?<![0-9A-Za-z])[1-9]\d{5}(?:18|19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}[0-9Xx]"
            r"(?![0-9A-Za-z])")
_EMAIL = r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63}){1,8}"
# Mainland mobiles (optionally +86, with spaces or dashes as people type them) and landlines with an area code.
_MOBILE = r"(?<![0-9])(?:(?:\+|00)?86[ -]?)?1[3-9]\d(?:[ -]?\d){8}(?![0-9])"
_LANDLINE = r"(?<![0-9A-Za-z])0\d{2,3}[ -]?\d{3,4}[ -]?\d{4}(?![0-9])"
# Numbers written internationally (+852 9123 4567, +44 20 7946 0958, E.164 as the bot stores them: issue 15).
_INTERNATIONAL = r"(?<![0-9A-Za-z])(?:\+|00)[1-9]\d{0,3}(?:[ -]?\d){6,13}(?![0-9])"
# Chinese street addresses: the place names before a road, the road and its number, and the building and room after.
_ZH_ADDRESS = (rf"[{_CJK}0-9]{{0,24}}(?:路|街|大道|道|巷|弄|胡同|里)\s?\d{{1,5}}\s?号"
               rf"(?:[{_CJK}0-9A-Za-z#-]{{0,30}})")
_ZH_PLACE = (rf"(?:[{_CJK}]{{2,8}}(?:省|自治区))?[{_CJK}]{{2,8}}市[{_CJK}]{{1,8}}(?:区|县)"
             rf"(?:[{_CJK}0-9]{{0,20}}(?:镇|乡|街道|小区|花园|苑|公寓|大厦|村|院|号楼|栋|单元|室))?")
_EN_ADDRESS = (r"(?:\b(?:Room|Rm|Flat|Apt|Apartment|Unit|Suite)\.?\s*[0-9A-Za-z-]{1,8},?\s*)?"
               r"\b\d{1,5}[A-Za-z]?\s+(?:[A-Z][A-Za-z'-]{0,30}\s+){1,4}"
               r"(?:Road|Rd|Street|St|Avenue|Ave|Lane|Ln|Boulevard|Blvd|Drive|Dr|Way|Court|Ct|Place|Pl|Highway|Hwy)"
               r"\b\.?"
               r"(?:,\s*[A-Z][A-Za-z' -]{1,30}\s(?:District|County|City))?")

PATTERNS: tuple[tuple[str, re.Pattern], ...] = (
    ("id", re.compile(_ID_CARD)),
    ("email", re.compile(_EMAIL)),
    ("phone", re.compile(_MOBILE)),
    ("phone", re.compile(_LANDLINE)),
    ("phone", re.compile(_INTERNATIONAL)),
    ("address", re.compile(_ZH_ADDRESS)),
    ("address", re.compile(_ZH_PLACE)),
    ("address", re.compile(_EN_ADDRESS)),
)
MASKS = {"id": "[id]", "email": "[email]", "address": "[address]"}


def _mask_phone(match: re.Match) -> str:
    digits = re.sub(r"\D", "", match.group(0))
    return f"[phone …{digits[-2:]}]"  # the last two digits: enough to tell two numbers apart, not to call one


def mask_text(text: str) -> str:
    """`text` with every phone number, ID-card number, e-mail and street address replaced by a marker."""
    if not text:
        return text
    for kind, pattern in PATTERNS:
        text = pattern.sub(_mask_phone if kind == "phone" else MASKS[kind], text)
    return text


def mask_value(value):
    """`mask_text` through JSON-like values (dicts, lists, strings); other values as they are."""
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, dict):
        return {k: mask_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [mask_value(v) for v in value]
    return value


class PersonalDataFilter(logging.Filter):
    """Masks a record's message, arguments and traceback in place; never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "_pii_masked", False):
            return True
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken format string is logging's problem, not ours to raise here
            message = str(record.msg)
        record.msg, record.args = mask_text(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = mask_text("".join(traceback.format_exception(*record.exc_info)).rstrip("\n"))
        if record.stack_info:
            record.stack_info = mask_text(record.stack_info)
        record._pii_masked = True
        return True


_FILTER = PersonalDataFilter()


def install_log_masking() -> None:
    """Mask every log record of this process, whichever logger or handler it goes through (also those set up
    later, e.g. by Rasa or Sanic): the filter runs as each record is made. Idempotent."""
    factory = logging.getLogRecordFactory()
    if getattr(factory, "_pii_masking", False):
        return

    def masked_record(*args, **kwargs) -> logging.LogRecord:
        record = factory(*args, **kwargs)
        _FILTER.filter(record)
        return record

    masked_record._pii_masking = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(masked_record)
