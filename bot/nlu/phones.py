"""Phone numbers through Google's libphonenumber (the `phonenumbers` package): mainland mobiles and landlines with
their area codes, Hong Kong, Macau, Taiwan and international numbers, all stored in E.164 (`+8613812345678`,
`+862164381234`, `+85291234567`, `+442079460958`).

A number without a country code is read as a mainland (CN) number. Mainland mobiles written as 11 digits were
stored as such before E.164; `equivalent_forms` gives both spellings so that look-ups find either.
"""
from __future__ import annotations

import re
from typing import Iterator

import phonenumbers
from phonenumbers import Leniency, PhoneNumberFormat, PhoneNumberMatcher

DEFAULT_REGION = "CN"
MAX_INPUT = 64  # a phone answer longer than this is not one number
_MAINLAND_MOBILE_RE = re.compile(r"^(?:\+?86|0086)?(1[3-9]\d{9})$")
# A match from the library counts only when the customer wrote a prefix that makes the reading unambiguous: a
# "+"/"00" country code, a domestic trunk "0" (landlines with their area code, 021-6438 1234) or a 400/800 service
# number. Bare digit runs (order numbers, serials) are left to the order-number and mainland-mobile patterns.
_PREFIX_OK_RE = re.compile(r"^(?:\+|00|\(\s*\+|\(0|0[1-9]|[48]00)")


def _e164(number: phonenumbers.PhoneNumber) -> str:
    return phonenumbers.format_number(number, PhoneNumberFormat.E164)


def normalize(raw: str | None, region: str = DEFAULT_REGION) -> str | None:
    """E.164 of a valid number written in any usual way, else None."""
    if not raw or not isinstance(raw, str):
        return None
    text = raw.strip()[:MAX_INPUT]
    if text.startswith("00"):
        text = "+" + text[2:]
    compact = re.sub(r"[\s\-().]", "", text)
    mobile = _MAINLAND_MOBILE_RE.match(compact)
    if mobile:
        return "+86" + mobile.group(1)
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    return _e164(number) if phonenumbers.is_valid_number(number) else None


def is_valid(value: str | None) -> bool:
    return normalize(value) is not None


def equivalent_forms(value: str | None) -> list[str]:
    """The spellings one number may be stored under: E.164, and for a mainland mobile its bare 11 digits."""
    e164 = normalize(value)
    if e164 is None:
        return [value] if value else []
    forms = [e164]
    if e164.startswith("+861") and len(e164) == 14:
        forms.append(e164[3:])
    return forms


def same_number(a: str | None, b: str | None) -> bool:
    return bool(a and b) and normalize(a) is not None and normalize(a) == normalize(b)


def find_numbers(text: str, region: str = DEFAULT_REGION) -> Iterator[tuple[int, int, str]]:
    """(start, end, E.164) of the numbers libphonenumber finds in `text` (written with a prefix, see above)."""
    if sum(ch.isdigit() for ch in text) < 7:
        return
    for match in PhoneNumberMatcher(text, region, leniency=Leniency.VALID):
        if _PREFIX_OK_RE.match(match.raw_string):
            yield match.start, match.end, _e164(match.number)
