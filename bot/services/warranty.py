"""Warranty and service policy engine (China's 三包 rules).

Pure Python: plain values in, frozen dataclasses out. The engine knows nothing
about Rasa, channels or databases; the rules live in a versioned YAML file
(``data/policy/warranty.yml``) that :func:`load_policy` reads and validates.

Typical use::

    policy = load_policy(default_policy_path())
    decision = evaluate(policy, WarrantyCase(
        category="fridge", purchase_date=date(2026, 3, 1), today=date(2026, 3, 9),
        fault="quality"))
    [r.kind for r in decision.eligible]   # ['return', 'exchange', 'free_repair']

Conventions (also written down, and checked, in the YAML ``conventions`` block):

* **Start date** = ``delivery_date`` when given, else ``purchase_date``. It
  starts every window *and* the warranty.
* **Day count**: ``days_since_start = (today - start).days``; the start date is
  day 0, the next day day 1.
* **Windows are inclusive**: "within N days" means ``days_since_start <= N``.
  With the 7-day no-reason return, day 7 is in and day 8 is out.
* **Warranty end** = start + warranty months (calendar months); the end day is
  still in warranty, the day after is not. When the target month is shorter
  the end is clamped to its last day: 2024-02-29 + 12 months = 2025-02-28.
* **Warranty term**: if the case names a part that has its own term in the
  policy, that term applies (clause WARRANTY-PART), otherwise the whole-unit
  term (clause WARRANTY-UNIT). An unknown part name falls back to the unit term.

Rules (``evaluate``), remedies listed best-first for the customer
(return > exchange > free_repair > paid_repair / repair_at_cost):

* **return** – quality fault within ``quality_return_days`` (3B-15D-QUALITY);
  or any fault except customer damage within ``no_reason_return_days`` when the
  product is unopened *and* unused (3B-7D-RETURN). When both apply the quality
  clause is cited (the seller bears the costs of a quality return).
* **exchange** – quality fault within ``quality_exchange_days``
  (3B-15D-EXCHANGE); or quality fault in warranty whose same fault has already
  been repaired ``exchange_after_failed_repairs`` times or more
  (3B-REPEAT-REPAIR). The 15-day clause is cited when both apply.
* **free_repair** – quality fault in warranty (WARRANTY-PART / WARRANTY-UNIT).
* **paid_repair** – quality fault out of warranty (PAID-REPAIR), with fees.
* **repair_at_cost** – customer damage, in or out of warranty
  (CUSTOMER-DAMAGE), with fees; never return, exchange or free repair.
* fault ``"none"`` (change of mind): only the no-reason return, otherwise
  nothing is eligible and the decision explains why.

Every one of return / exchange / free_repair that is not eligible is listed in
``WarrantyDecision.unavailable`` with a bilingual reason. Paid kinds are never
listed as unavailable (they are not rights, just the fallback).

Errors: a broken policy file raises :class:`PolicyError` (a ``ValueError``)
naming every offending key path; an impossible case (``today`` before the
purchase, delivery before purchase or after ``today``, unknown category or
fault, negative repair count) raises ``ValueError``. ``policy.clause()`` with
an unknown id raises ``KeyError``.
"""

from __future__ import annotations

import calendar
import re
import string
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

import yaml

__all__ = [
    "PolicyError",
    "WarrantyCase",
    "Remedy",
    "Unavailable",
    "WarrantyDecision",
    "WarrantyPolicy",
    "load_policy",
    "parse_policy",
    "evaluate",
    "default_policy_path",
    "add_months",
    "FAULTS",
    "REMEDY_KINDS",
]

# --------------------------------------------------------------------------- #
# Constants describing what the engine implements.
# --------------------------------------------------------------------------- #

LANGS = ("zh", "en")
FAULTS = ("quality", "customer_damage", "none")
REMEDY_KINDS = ("return", "exchange", "free_repair", "paid_repair", "repair_at_cost")
#: Remedies that are customer rights; when not eligible they are explained.
_RIGHTS = ("return", "exchange", "free_repair")

_WINDOW_KEYS = ("no_reason_return_days", "quality_return_days", "quality_exchange_days")

#: rule name -> what the rule does (rule_clauses must map exactly these).
_RULES = (
    "no_reason_return",
    "quality_return",
    "quality_exchange",
    "repeat_repair_exchange",
    "unit_warranty_repair",
    "part_warranty_repair",
    "paid_repair",
    "customer_damage_repair",
)

_REASONS = (
    "return_window_passed",
    "return_opened_or_used",
    "exchange_window_passed",
    "exchange_window_passed_out_of_warranty",
    "warranty_expired",
    "customer_damage",
    "no_fault",
)

_LABELS = ("delivery", "purchase")

#: The only conventions implemented; the YAML must state them verbatim.
_CONVENTIONS = {
    "start_date": "delivery_else_purchase",
    "day_count": "elapsed_days",
    "window_bound": "inclusive",
    "warranty_end": "start_plus_months_inclusive",
    "month_end": "clamp_to_last_day",
}

_CLAUSE_PLACEHOLDERS = frozenset(_WINDOW_KEYS + ("exchange_after_failed_repairs",))
_REASON_PLACEHOLDERS = _CLAUSE_PLACEHOLDERS | {
    "days",
    "window",
    "start_label",
    "start_date",
    "prior_repairs",
    "repairs_needed",
    "warranty_ends",
    "months",
}

_TOP_LEVEL_KEYS = (
    "version",
    "effective_from",
    "currency",
    "conventions",
    "windows",
    "exchange_after_failed_repairs",
    "parts_at_cost",
    "rule_clauses",
    "clauses",
    "reasons",
    "labels",
    "categories",
)

_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")
_CLAUSE_ID_RE = re.compile(r"^[A-Z0-9][A-Z0-9-]*$")
_MONEY_RE = re.compile(r"^\d+(\.\d{1,2})?$")
_CURRENCY_RE = re.compile(r"^[A-Z]{3}$")
_CJK_RE = re.compile(r"[\u4e00-\u9fff]")


# --------------------------------------------------------------------------- #
# Public dataclasses
# --------------------------------------------------------------------------- #


class PolicyError(ValueError):
    """The policy file is missing, unreadable or invalid.

    ``str(err)`` names the file and every problem as ``key.path: why``;
    ``err.errors`` holds the individual problems.
    """

    def __init__(self, message: str, errors: tuple[str, ...] = ()):
        super().__init__(message)
        self.errors = tuple(errors) or (message,)


@dataclass(frozen=True)
class WarrantyCase:
    """One customer's situation. Dates are ``datetime.date``."""

    category: str  # one of the policy's categories
    purchase_date: date
    today: date
    delivery_date: date | None = None
    part: str | None = None  # e.g. "compressor"; None = whole unit / unknown
    fault: str = "quality"  # "quality" | "customer_damage" | "none"
    opened: bool = True
    used: bool = True
    prior_repairs_same_fault: int = 0  # repairs of this same fault done within warranty


@dataclass(frozen=True)
class Remedy:
    kind: str  # "return" | "exchange" | "free_repair" | "paid_repair" | "repair_at_cost"
    clause_id: str
    clause: dict[str, str]  # {"zh": ..., "en": ...}
    #: Paid kinds only. Keys: currency, call_out, labour, labour_tier,
    #: labour_tiers, parts ("at cost" | "list price"), part, part_price,
    #: subtotal_excl_parts, estimated_total. Money is Decimal; part /
    #: part_price / estimated_total are None when the part is unknown.
    fee: dict | None = None


@dataclass(frozen=True)
class Unavailable:
    kind: str
    reason: dict[str, str]  # {"zh": ..., "en": ...}
    reason_id: str = ""  # key in the policy's `reasons` block


@dataclass(frozen=True)
class WarrantyDecision:
    eligible: tuple[Remedy, ...]  # best first for the customer
    unavailable: tuple[Unavailable, ...]
    in_warranty: bool
    warranty_ends: date  # for the part asked about (or whole unit); inclusive
    days_since_start: int  # (today - start).days, start = delivery else purchase
    policy_version: str
    start_date: date | None = None  # the start actually used
    start_basis: str = ""  # "delivery" | "purchase"
    warranty_months: int = 0  # term applied
    warranty_scope: str = "unit"  # "unit" | "part"

    def kinds(self) -> tuple[str, ...]:
        return tuple(r.kind for r in self.eligible)

    def clause_ids(self) -> tuple[str, ...]:
        return tuple(r.clause_id for r in self.eligible)


@dataclass(frozen=True)
class PartPrice:
    price: Decimal
    labour_tier: str


@dataclass(frozen=True)
class CategoryTerms:
    name: str
    unit_months: int
    part_months: Mapping[str, int]
    call_out: Decimal
    labour: Mapping[str, Decimal]
    default_labour_tier: str
    part_prices: Mapping[str, PartPrice]

    @property
    def parts(self) -> Mapping[str, int]:
        """Alias of ``part_months``: parts with their own warranty term."""
        return self.part_months


@dataclass(frozen=True)
class WarrantyPolicy:
    """A validated, immutable policy. Build it with :func:`load_policy`."""

    version: str
    effective_from: date
    currency: str
    no_reason_return_days: int
    quality_return_days: int
    quality_exchange_days: int
    exchange_after_failed_repairs: int
    parts_at_cost: bool
    rule_clauses: Mapping[str, str]
    clause_texts: Mapping[str, Mapping[str, str]]  # templates, unformatted
    reason_texts: Mapping[str, Mapping[str, str]]
    labels: Mapping[str, Mapping[str, str]]
    terms: Mapping[str, CategoryTerms]
    source: str = field(default="<mapping>", compare=False)

    def __hash__(self) -> int:  # mappings are not hashable; identity enough
        return hash((self.version, self.effective_from, tuple(self.terms)))

    # -- lookups ---------------------------------------------------------- #

    def categories(self) -> tuple[str, ...]:
        """Category names in file order."""
        return tuple(self.terms)

    def windows(self) -> dict[str, int]:
        return {k: getattr(self, k) for k in _WINDOW_KEYS}

    def category_terms(self, category: str) -> CategoryTerms:
        key = _norm_name(category)
        if key not in self.terms:
            raise ValueError(
                f"unknown category {category!r}; policy {self.version} has: "
                + ", ".join(self.terms)
            )
        return self.terms[key]

    def has_part_warranty(self, category: str, part: str | None) -> bool:
        """True when ``part`` has its own warranty term in ``category``."""
        key = _norm_part(part)
        return key is not None and key in self.category_terms(category).part_months

    def warranty_months(self, category: str, part: str | None = None) -> int:
        """The part's own term if it has one, else the whole-unit term."""
        terms = self.category_terms(category)
        key = _norm_part(part)
        if key is not None and key in terms.part_months:
            return terms.part_months[key]
        return terms.unit_months

    def fee_schedule(self, category: str) -> dict:
        """A fresh copy of the category's fees (money as Decimal)."""
        terms = self.category_terms(category)
        return {
            "currency": self.currency,
            "call_out": terms.call_out,
            "labour": dict(terms.labour),
            "default_labour_tier": terms.default_labour_tier,
            "parts": {
                name: {"price": p.price, "labour_tier": p.labour_tier}
                for name, p in terms.part_prices.items()
            },
            "parts_at_cost": self.parts_at_cost,
        }

    def clause(self, clause_id: str) -> dict[str, str]:
        """Customer-facing clause text ``{"zh", "en"}`` with windows filled in."""
        if clause_id not in self.clause_texts:
            raise KeyError(f"unknown clause id {clause_id!r}")
        return _render(self.clause_texts[clause_id], self._clause_values())

    def clause_for_rule(self, rule: str) -> tuple[str, dict[str, str]]:
        clause_id = self.rule_clauses[rule]
        return clause_id, self.clause(clause_id)

    # -- internals -------------------------------------------------------- #

    def _clause_values(self) -> dict[str, Any]:
        values: dict[str, Any] = self.windows()
        values["exchange_after_failed_repairs"] = self.exchange_after_failed_repairs
        return values

    def _reason(self, reason_id: str, **values: Any) -> dict[str, str]:
        base = self._clause_values()
        base.update(values)
        return _render(self.reason_texts[reason_id], base)


# --------------------------------------------------------------------------- #
# Loading and validation
# --------------------------------------------------------------------------- #


def default_policy_path() -> Path:
    """``<repo>/data/policy/warranty.yml``, found relative to this package."""
    return Path(__file__).resolve().parents[2] / "data" / "policy" / "warranty.yml"


def load_policy(path: str | Path) -> WarrantyPolicy:
    """Read and validate a policy YAML file. Raises :class:`PolicyError`."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError(f"cannot read warranty policy {p}: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise PolicyError(f"warranty policy {p} is not UTF-8: {exc}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PolicyError(f"warranty policy {p} is not valid YAML: {exc}") from exc
    return parse_policy(data, source=str(p))


def parse_policy(data: Any, source: str = "<mapping>") -> WarrantyPolicy:
    """Validate an already-parsed policy mapping. Raises :class:`PolicyError`."""
    return _Parser(source).parse(data)


class _Parser:
    def __init__(self, source: str):
        self.source = source
        self.errors: list[str] = []

    # -- error helpers ---------------------------------------------------- #

    def err(self, path: str, why: str) -> None:
        self.errors.append(f"{path}: {why}")

    def fail_if_errors(self) -> None:
        if self.errors:
            lines = "\n".join(f"  - {e}" for e in self.errors)
            n = len(self.errors)
            raise PolicyError(
                f"invalid warranty policy {self.source} ({n} problem{'s' if n > 1 else ''}):\n{lines}",
                tuple(self.errors),
            )

    # -- typed readers (return None after recording an error) -------------- #

    def mapping(self, value: Any, path: str, required: tuple[str, ...] | None = None,
                allowed: tuple[str, ...] | None = None, non_empty: bool = False) -> dict | None:
        if value is None:
            self.err(path, "is missing or empty; expected a mapping")
            return None
        if not isinstance(value, dict):
            self.err(path, f"must be a mapping, got {type(value).__name__}")
            return None
        for k in value:
            if not isinstance(k, str):
                self.err(f"{path}.{k}", f"key must be a string, got {type(k).__name__} "
                                        "(quote it in YAML)")
        if required is not None:
            for k in required:
                if k not in value:
                    self.err(f"{path}.{k}" if path else k, "required key is missing")
            known = set(required) | set(allowed or ())
            for k in value:
                if isinstance(k, str) and k not in known:
                    self.err(f"{path}.{k}" if path else k,
                             "unknown key (allowed: " + ", ".join(sorted(known)) + ")")
        if non_empty and not value:
            self.err(path, "must not be empty")
        return value

    def pos_int(self, value: Any, path: str) -> int | None:
        if isinstance(value, bool) or not isinstance(value, int):
            self.err(path, f"must be a positive integer, got {value!r}")
            return None
        if value <= 0:
            self.err(path, f"must be a positive integer, got {value}")
            return None
        return value

    def money(self, value: Any, path: str) -> Decimal | None:
        if isinstance(value, bool):
            self.err(path, f"must be an amount like \"50.00\", got {value!r}")
            return None
        if isinstance(value, float):
            self.err(path, f"must be a quoted decimal string like \"50.00\", got the float "
                           f"{value!r} (floats lose precision)")
            return None
        if isinstance(value, int):
            if value < 0:
                self.err(path, f"must not be negative, got {value}")
                return None
            return Decimal(value)
        if isinstance(value, str) and _MONEY_RE.match(value.strip()):
            return Decimal(value.strip())
        self.err(path, f"must be a non-negative amount with at most 2 decimals like "
                       f"\"50.00\", got {value!r}")
        return None

    def name(self, key: Any, path: str) -> bool:
        if not isinstance(key, str) or not _NAME_RE.match(key):
            self.err(path, "name must be lower_snake_case (a-z, 0-9, _)")
            return False
        return True

    def bilingual(self, value: Any, path: str, placeholders: frozenset) -> dict | None:
        m = self.mapping(value, path, required=LANGS)
        if m is None:
            return None
        ok = True
        for lang in LANGS:
            if lang not in m:
                ok = False
                continue
            text = m[lang]
            p = f"{path}.{lang}"
            if not isinstance(text, str) or not text.strip():
                self.err(p, "text must be a non-empty string")
                ok = False
                continue
            if lang == "zh" and not _CJK_RE.search(text):
                self.err(p, "zh text contains no Chinese characters (languages swapped?)")
                ok = False
            if lang == "en" and _CJK_RE.search(text):
                self.err(p, "en text contains Chinese characters (languages swapped?)")
                ok = False
            ok = self.placeholders(text, p, placeholders) and ok
        if not ok or len(m) != len(LANGS):
            return None
        return {lang: m[lang].strip() for lang in LANGS}

    def placeholders(self, text: str, path: str, allowed: frozenset) -> bool:
        try:
            parts = list(string.Formatter().parse(text))
        except ValueError as exc:
            self.err(path, f"bad {{placeholder}} syntax: {exc} (use {{{{ }}}} for literal braces)")
            return False
        ok = True
        for _literal, fname, spec, conv in parts:
            if fname is None:
                continue
            if fname not in allowed:
                self.err(path, f"unknown placeholder {{{fname}}}; allowed: "
                               + ", ".join(sorted(allowed)))
                ok = False
            elif spec or conv:
                self.err(path, f"placeholder {{{fname}}} must not have a format spec or conversion")
                ok = False
        return ok

    # -- the whole document ------------------------------------------------ #

    def parse(self, data: Any) -> WarrantyPolicy:
        if not isinstance(data, dict):
            self.err("(top level)", "the policy must be a YAML mapping, got "
                     + ("an empty file" if data is None else type(data).__name__))
            self.fail_if_errors()
        self.mapping(data, "", required=_TOP_LEVEL_KEYS)
        # Checked in the order of the file's sections, so that errors are reported in that order.
        version, effective_from, currency = self.parse_head(data)
        windows, repairs, parts_at_cost = self.parse_numbers(data)
        clauses, rule_clauses = self.parse_clauses(data)
        reasons, labels = self.parse_texts(data)
        terms = self.parse_categories(data)
        self.fail_if_errors()
        return WarrantyPolicy(
            version=version.strip(),
            effective_from=effective_from,
            currency=currency,
            no_reason_return_days=windows["no_reason_return_days"],
            quality_return_days=windows["quality_return_days"],
            quality_exchange_days=windows["quality_exchange_days"],
            exchange_after_failed_repairs=repairs,
            parts_at_cost=parts_at_cost,
            rule_clauses=MappingProxyType(dict(rule_clauses)),
            clause_texts=_frozen_texts(clauses),
            reason_texts=_frozen_texts(reasons),
            labels=_frozen_texts(labels),
            terms=MappingProxyType(terms),
            source=self.source,
        )


    def parse_head(self, data: dict) -> tuple:
        """version, effective_from, currency (and the conventions, checked)."""
        version = data.get("version")
        if "version" in data:
            if isinstance(version, (int, float)) and not isinstance(version, bool):
                self.err("version", f"must be a quoted string such as \"2026.1\" "
                                    f"(YAML read {version!r} as a number)")
            elif not isinstance(version, str) or not version.strip():
                self.err("version", "must be a non-empty string such as \"2026.1\"")

        effective_from = self.effective_from(data.get("effective_from"), "effective_from" in data)

        currency = data.get("currency")
        if "currency" in data and (not isinstance(currency, str) or not _CURRENCY_RE.match(currency)):
            self.err("currency", f"must be a 3-letter ISO code such as CNY, got {currency!r}")

        if "conventions" in data:
            conv = self.mapping(data["conventions"], "conventions", required=tuple(_CONVENTIONS))
            for k, expected in _CONVENTIONS.items():
                if conv and k in conv and conv[k] != expected:
                    self.err(f"conventions.{k}", f"only {expected!r} is implemented, got {conv[k]!r}")

        return version, effective_from, currency

    def parse_numbers(self, data: dict) -> tuple:
        """The windows in days, the failed repairs before an exchange, parts at cost."""
        windows: dict[str, int] = {}
        if "windows" in data:
            w = self.mapping(data["windows"], "windows", required=_WINDOW_KEYS)
            for k in _WINDOW_KEYS:
                if w and k in w:
                    v = self.pos_int(w[k], f"windows.{k}")
                    if v is not None:
                        windows[k] = v

        repairs = None
        if "exchange_after_failed_repairs" in data:
            repairs = self.pos_int(data["exchange_after_failed_repairs"], "exchange_after_failed_repairs")

        parts_at_cost = data.get("parts_at_cost")
        if "parts_at_cost" in data and not isinstance(parts_at_cost, bool):
            self.err("parts_at_cost", f"must be true or false, got {parts_at_cost!r}")

        return windows, repairs, parts_at_cost

    def parse_clauses(self, data: dict) -> tuple:
        """The clause texts and which clause each rule cites."""
        clauses: dict[str, dict] = {}
        if "clauses" in data:
            cm = self.mapping(data["clauses"], "clauses", non_empty=True)
            for cid, body in (cm or {}).items():
                path = f"clauses.{cid}"
                if not isinstance(cid, str) or not _CLAUSE_ID_RE.match(cid):
                    self.err(path, "clause id must be upper case letters, digits and '-'")
                    continue
                texts = self.bilingual(body, path, _CLAUSE_PLACEHOLDERS)
                if texts is not None:
                    clauses[cid] = texts
            # keep ids even when texts failed, so references are not double-reported
            known_clause_ids = set(cm or ())
        else:
            known_clause_ids = set()

        rule_clauses: dict[str, str] = {}
        if "rule_clauses" in data:
            rm = self.mapping(data["rule_clauses"], "rule_clauses", required=_RULES)
            for rule in _RULES:
                if not rm or rule not in rm:
                    continue
                cid = rm[rule]
                if not isinstance(cid, str) or not cid:
                    self.err(f"rule_clauses.{rule}", f"must be a clause id, got {cid!r}")
                elif cid not in known_clause_ids:
                    self.err(f"rule_clauses.{rule}", f"refers to clause {cid!r}, which is not "
                                                     "defined under clauses")
                else:
                    rule_clauses[rule] = cid

        return clauses, rule_clauses

    def parse_texts(self, data: dict) -> tuple:
        """The reason texts and the labels, each in zh and en."""
        reasons: dict[str, dict] = {}
        if "reasons" in data:
            rsm = self.mapping(data["reasons"], "reasons", required=_REASONS)
            for rid in _REASONS:
                if rsm and rid in rsm:
                    texts = self.bilingual(rsm[rid], f"reasons.{rid}", _REASON_PLACEHOLDERS)
                    if texts is not None:
                        reasons[rid] = texts

        labels: dict[str, dict] = {}
        if "labels" in data:
            lm = self.mapping(data["labels"], "labels", required=_LABELS)
            for lid in _LABELS:
                if lm and lid in lm:
                    texts = self.bilingual(lm[lid], f"labels.{lid}", frozenset())
                    if texts is not None:
                        labels[lid] = texts

        return reasons, labels

    def parse_categories(self, data: dict) -> dict:
        terms: dict[str, CategoryTerms] = {}
        if "categories" in data:
            cats = self.mapping(data["categories"], "categories", non_empty=True)
            for cat, body in (cats or {}).items():
                if self.name(cat, f"categories.{cat}"):
                    t = self.category(cat, body)
                    if t is not None:
                        terms[cat] = t

        return terms

    def effective_from(self, value: Any, present: bool) -> date | None:
        if not present:
            return None
        if isinstance(value, datetime):
            return value.date()
        if isinstance(value, date):
            return value
        if isinstance(value, str):
            try:
                return date.fromisoformat(value.strip())
            except ValueError:
                pass
        self.err("effective_from", f"must be a date like 2026-01-01, got {value!r}")
        return None

    def category(self, cat: str, body: Any) -> CategoryTerms | None:
        base = f"categories.{cat}"
        m = self.mapping(body, base, required=("warranty", "fees"))
        if m is None:
            return None
        n_errors = len(self.errors)
        unit_months, part_months = self.category_warranty(base, m)
        call_out, labour, default_tier, prices = self.category_fees(base, m, part_months)
        if len(self.errors) != n_errors:
            return None
        return CategoryTerms(
            name=cat,
            unit_months=unit_months,
            part_months=MappingProxyType(part_months),
            call_out=call_out,
            labour=MappingProxyType(labour),
            default_labour_tier=default_tier,
            part_prices=MappingProxyType(prices),
        )

    def category_warranty(self, base: str, m: dict) -> tuple:
        """The unit's warranty months and the parts with a term of their own."""
        unit_months = None
        part_months: dict[str, int] = {}
        w = self.mapping(m.get("warranty"), f"{base}.warranty", required=("unit_months", "parts")) \
            if "warranty" in m else None
        if w:
            if "unit_months" in w:
                unit_months = self.pos_int(w["unit_months"], f"{base}.warranty.unit_months")
            if "parts" in w:
                pm = w["parts"]
                if pm is None:
                    pm = {}  # `parts:` left empty = no part has its own term
                pm = self.mapping(pm, f"{base}.warranty.parts")
                for part, months in (pm or {}).items():
                    p = f"{base}.warranty.parts.{part}"
                    if not self.name(part, p):
                        continue
                    if months is None:
                        self.err(p, "part has no warranty months")
                        continue
                    v = self.pos_int(months, p)
                    if v is not None:
                        part_months[part] = v
        return unit_months, part_months

    def category_fees(self, base: str, m: dict, part_months: dict) -> tuple:
        """Call-out fee, labour tiers, the default tier, part prices."""
        call_out = None
        labour: dict[str, Decimal] = {}
        default_tier = None
        prices: dict[str, PartPrice] = {}
        f = self.mapping(m.get("fees"), f"{base}.fees",
                         required=("call_out", "labour", "default_labour_tier", "parts")) \
            if "fees" in m else None
        if f:
            if "call_out" in f:
                call_out = self.money(f["call_out"], f"{base}.fees.call_out")
            if "labour" in f:
                lm = self.mapping(f["labour"], f"{base}.fees.labour", non_empty=True)
                for tier, amount in (lm or {}).items():
                    p = f"{base}.fees.labour.{tier}"
                    if self.name(tier, p):
                        v = self.money(amount, p)
                        if v is not None:
                            labour[tier] = v
            if "default_labour_tier" in f:
                default_tier = f["default_labour_tier"]
                if _is_mapping(f.get("labour")) and default_tier not in (f.get("labour") or {}):
                    self.err(f"{base}.fees.default_labour_tier",
                             f"{default_tier!r} is not one of the labour tiers "
                             f"({', '.join(map(str, (f.get('labour') or {})))})")
            if "parts" in f:
                prices = self.fee_parts(base, f, part_months)
        return call_out, labour, default_tier, prices

    def fee_parts(self, base: str, f: dict, part_months: dict) -> dict[str, PartPrice]:
        """The parts' prices and labour tiers; every part with its own warranty term must have a price."""
        prices: dict[str, PartPrice] = {}
        pm = self.mapping(f["parts"], f"{base}.fees.parts")
        for part, spec in (pm or {}).items():
            p = f"{base}.fees.parts.{part}"
            if not self.name(part, p):
                continue
            sm = self.mapping(spec, p, required=("price", "labour_tier"))
            if not sm or "price" not in sm or "labour_tier" not in sm:
                continue
            price = self.money(sm["price"], f"{p}.price")
            tier = sm["labour_tier"]
            if _is_mapping(f.get("labour")) and tier not in (f.get("labour") or {}):
                self.err(f"{p}.labour_tier", f"{tier!r} is not one of the labour tiers "
                                             f"({', '.join(map(str, f['labour']))})")
                continue
            if price is not None:
                prices[part] = PartPrice(price=price, labour_tier=tier)
        for part in part_months:
            if isinstance(pm, dict) and part not in pm:
                self.err(f"{base}.warranty.parts.{part}",
                         f"part has its own warranty term but no price under {base}.fees.parts")

        return prices


def _is_mapping(value: Any) -> bool:
    return isinstance(value, dict)


def _frozen_texts(d: dict[str, dict]) -> Mapping[str, Mapping[str, str]]:
    return MappingProxyType({k: MappingProxyType(dict(v)) for k, v in d.items()})


# --------------------------------------------------------------------------- #
# Evaluation
# --------------------------------------------------------------------------- #


def add_months(start: date, months: int) -> date:
    """Calendar-month addition, clamped to the end of a shorter month."""
    y, m0 = divmod(start.month - 1 + months, 12)
    year, month = start.year + y, m0 + 1
    return date(year, month, min(start.day, calendar.monthrange(year, month)[1]))


def evaluate(policy: WarrantyPolicy, case: WarrantyCase) -> WarrantyDecision:
    """Decide which remedies the customer is entitled to. See module docstring."""
    terms, purchase, today, delivery, fault, prior, part = _checked(policy, case)
    unopened_unused = not case.opened and not case.used

    start, basis = (delivery, "delivery") if delivery is not None else (purchase, "purchase")
    days = (today - start).days
    own_part_term = part is not None and part in terms.part_months
    months = terms.part_months[part] if own_part_term else terms.unit_months
    ends = add_months(start, months)
    in_warranty = today <= ends

    # values available to reason texts
    common = {
        "days": days,
        "start_date": start.isoformat(),
        "start_label": policy.labels[basis],  # per-language, resolved in _render
        "prior_repairs": prior,
        "repairs_needed": policy.exchange_after_failed_repairs,
        "warranty_ends": ends.isoformat(),
        "months": months,
    }
    found = _Found(policy, common)
    _decide_return(found, fault, days, unopened_unused)
    _decide_exchange(found, fault, days, in_warranty and prior >= policy.exchange_after_failed_repairs, in_warranty)
    _decide_repair(found, fault, in_warranty, own_part_term, terms, part)
    return WarrantyDecision(
        eligible=tuple(found.eligible),
        unavailable=tuple(found.missing),
        in_warranty=in_warranty,
        warranty_ends=ends,
        days_since_start=days,
        policy_version=policy.version,
        start_date=start,
        start_basis=basis,
        warranty_months=months,
        warranty_scope="part" if own_part_term else "unit",
    )


def _checked(policy: WarrantyPolicy, case: WarrantyCase) -> tuple:
    """The case's values, checked: (terms, purchase, today, delivery, fault, prior repairs, part)."""
    if not isinstance(policy, WarrantyPolicy):
        raise TypeError(f"policy must be a WarrantyPolicy, got {type(policy).__name__}")
    if not isinstance(case, WarrantyCase):
        raise TypeError(f"case must be a WarrantyCase, got {type(case).__name__}")

    terms = policy.category_terms(case.category)  # ValueError if unknown
    purchase = _as_date(case.purchase_date, "purchase_date")
    today = _as_date(case.today, "today")
    delivery = None if case.delivery_date is None else _as_date(case.delivery_date, "delivery_date")
    if today < purchase:
        raise ValueError(f"today ({today}) is before the purchase date ({purchase})")
    if delivery is not None:
        if delivery < purchase:
            raise ValueError(f"delivery date ({delivery}) is before the purchase date ({purchase})")
        if delivery > today:
            raise ValueError(f"delivery date ({delivery}) is after today ({today})")
    fault = case.fault.strip().lower() if isinstance(case.fault, str) else case.fault
    if fault not in FAULTS:
        raise ValueError(f"unknown fault {case.fault!r}; expected one of {', '.join(FAULTS)}")
    prior = case.prior_repairs_same_fault
    if isinstance(prior, bool) or not isinstance(prior, int) or prior < 0:
        raise ValueError(f"prior_repairs_same_fault must be an integer >= 0, got {prior!r}")
    return terms, purchase, today, delivery, fault, prior, _norm_part(case.part)


class _Found:
    """The remedies found so far: those the customer is entitled to, and those not (with the reason)."""

    def __init__(self, policy: WarrantyPolicy, common: dict) -> None:
        self.policy, self.common = policy, common
        self.eligible: list[Remedy] = []
        self.missing: list[Unavailable] = []

    def remedy(self, kind: str, rule: str, fee: dict | None = None) -> None:
        cid, text = self.policy.clause_for_rule(rule)
        self.eligible.append(Remedy(kind=kind, clause_id=cid, clause=text, fee=fee))

    def unavailable(self, kind: str, reason_id: str, **extra: Any) -> None:
        self.missing.append(Unavailable(kind=kind, reason=self.policy._reason(reason_id, **self.common, **extra),
                                        reason_id=reason_id))


def _decide_return(found: _Found, fault: str, days: int, unopened_unused: bool) -> None:
    policy = found.policy
    if fault == "quality" and days <= policy.quality_return_days:
        found.remedy("return", "quality_return")
    elif fault != "customer_damage" and unopened_unused and days <= policy.no_reason_return_days:
        found.remedy("return", "no_reason_return")
    elif fault == "customer_damage":
        found.unavailable("return", "customer_damage")
    elif fault == "quality":
        found.unavailable("return", "return_window_passed", window=policy.quality_return_days)
    elif days > policy.no_reason_return_days:
        found.unavailable("return", "return_window_passed", window=policy.no_reason_return_days)
    else:
        found.unavailable("return", "return_opened_or_used")


def _decide_exchange(found: _Found, fault: str, days: int, repeat: bool, in_warranty: bool) -> None:
    policy = found.policy
    if fault == "quality" and days <= policy.quality_exchange_days:
        found.remedy("exchange", "quality_exchange")
    elif fault == "quality" and repeat:
        found.remedy("exchange", "repeat_repair_exchange")
    elif fault == "customer_damage":
        found.unavailable("exchange", "customer_damage")
    elif fault == "none":
        found.unavailable("exchange", "no_fault")
    elif in_warranty:
        found.unavailable("exchange", "exchange_window_passed", window=policy.quality_exchange_days)
    else:
        found.unavailable("exchange", "exchange_window_passed_out_of_warranty", window=policy.quality_exchange_days)


def _decide_repair(found: _Found, fault: str, in_warranty: bool, own_part_term: bool, terms: CategoryTerms,
                   part: str | None) -> None:
    if fault == "quality" and in_warranty:
        found.remedy("free_repair", "part_warranty_repair" if own_part_term else "unit_warranty_repair")
    elif fault == "quality":
        found.unavailable("free_repair", "warranty_expired")
        found.remedy("paid_repair", "paid_repair", _fee(found.policy, terms, part))
    elif fault == "customer_damage":
        found.unavailable("free_repair", "customer_damage")
        found.remedy("repair_at_cost", "customer_damage_repair", _fee(found.policy, terms, part))
    else:
        found.unavailable("free_repair", "no_fault")


def _fee(policy: WarrantyPolicy, terms: CategoryTerms, part: str | None) -> dict:
    priced = terms.part_prices.get(part) if part is not None else None
    tier = priced.labour_tier if priced else terms.default_labour_tier
    labour = terms.labour[tier]
    subtotal = terms.call_out + labour
    return {
        "currency": policy.currency,
        "call_out": terms.call_out,
        "labour": labour,
        "labour_tier": tier,
        "labour_tiers": dict(terms.labour),
        "parts": "at cost" if policy.parts_at_cost else "list price",
        "part": part,
        "part_price": priced.price if priced else None,
        "subtotal_excl_parts": subtotal,
        "estimated_total": subtotal + priced.price if priced else None,
    }


def _render(template: Mapping[str, str], values: Mapping[str, Any]) -> dict[str, str]:
    out = {}
    for lang in LANGS:
        vals = {k: (v[lang] if isinstance(v, Mapping) else v) for k, v in values.items()}
        out[lang] = template[lang].format(**vals)
    return out


def _as_date(value: Any, name: str) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    raise ValueError(f"{name} must be a datetime.date, got {value!r}")


def _norm_name(value: Any) -> str:
    if not isinstance(value, str):
        return repr(value)
    return re.sub(r"[\s\-]+", "_", value.strip().lower())


def _norm_part(part: Any) -> str | None:
    if part is None:
        return None
    key = _norm_name(part)
    return key or None
