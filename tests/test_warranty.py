"""Tests for the 三包 warranty policy engine (bot/services/warranty.py).

Conventions under test (see data/policy/warranty.yml):
* start = delivery date if known else purchase date; days_since_start = (today - start).days
* "within N days" is inclusive: day N in, day N + 1 out
* warranty end = start + months (clamped to month end), end day inclusive
"""

from __future__ import annotations

import copy
import dataclasses
import re
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import yaml

from bot.services.warranty import (
    PolicyError,
    Remedy,
    Unavailable,
    WarrantyCase,
    WarrantyDecision,
    WarrantyPolicy,
    add_months,
    default_policy_path,
    evaluate,
    load_policy,
)

P = date(2026, 3, 1)  # default purchase date
CJK = re.compile(r"[\u4e00-\u9fff]")

RETURN_7D = ("return", "3B-7D-RETURN")
RETURN_Q = ("return", "3B-15D-QUALITY")
EXCH_Q = ("exchange", "3B-15D-EXCHANGE")
EXCH_REPEAT = ("exchange", "3B-REPEAT-REPAIR")
FREE_UNIT = ("free_repair", "WARRANTY-UNIT")
FREE_PART = ("free_repair", "WARRANTY-PART")
PAID = ("paid_repair", "PAID-REPAIR")
AT_COST = ("repair_at_cost", "CUSTOMER-DAMAGE")

ALL3 = ("return", "exchange", "free_repair")


def day(n: int, start: date = P) -> date:
    return start + timedelta(days=n)


@pytest.fixture(scope="module")
def policy() -> WarrantyPolicy:
    return load_policy(default_policy_path())


@pytest.fixture(scope="module")
def raw() -> dict:
    return yaml.safe_load(default_policy_path().read_text(encoding="utf-8"))


def write_policy(tmp_path: Path, data: dict, name: str = "warranty.yml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def case(category="fridge", today=P, purchase=P, **kw) -> WarrantyCase:
    return WarrantyCase(category=category, purchase_date=purchase, today=today, **kw)


def check_decision(policy: WarrantyPolicy, d: WarrantyDecision) -> None:
    """Invariants every decision must satisfy."""
    assert d.policy_version == policy.version
    order = ["return", "exchange", "free_repair", "paid_repair", "repair_at_cost"]
    ranks = [order.index(r.kind) for r in d.eligible]
    assert ranks == sorted(ranks) and len(set(ranks)) == len(ranks)
    for r in d.eligible:
        assert isinstance(r, Remedy)
        assert r.clause == policy.clause(r.clause_id)
        assert r.clause["zh"] and r.clause["en"] and "{" not in r.clause["zh"] + r.clause["en"]
        if r.kind in ("paid_repair", "repair_at_cost"):
            assert r.fee is not None
            for key in ("call_out", "labour", "subtotal_excl_parts"):
                assert isinstance(r.fee[key], Decimal)
        else:
            assert r.fee is None
    eligible_kinds = {r.kind for r in d.eligible}
    for u in d.unavailable:
        assert isinstance(u, Unavailable)
        assert u.kind in ALL3 and u.kind not in eligible_kinds
        assert set(u.reason) == {"zh", "en"}
        assert CJK.search(u.reason["zh"]) and not CJK.search(u.reason["en"])
        assert "{" not in u.reason["zh"] + u.reason["en"]
    # every customer right is either granted or explained
    assert {u.kind for u in d.unavailable} | (eligible_kinds & set(ALL3)) == set(ALL3)


# --------------------------------------------------------------------------- #
# The decision table
# --------------------------------------------------------------------------- #

TABLE = [
    # id, case kwargs, eligible (kind, clause) in order, unavailable kinds, in_warranty
    # -- 7-day no-reason return: day 7 vs day 8, opened vs unopened --------------
    ("none-unopened-day0", dict(today=day(0), fault="none", opened=False, used=False),
     [RETURN_7D], ("exchange", "free_repair"), True),
    ("none-unopened-day7", dict(today=day(7), fault="none", opened=False, used=False),
     [RETURN_7D], ("exchange", "free_repair"), True),
    ("none-unopened-day8", dict(today=day(8), fault="none", opened=False, used=False),
     [], ALL3, True),
    ("none-opened-unused-day7", dict(today=day(7), fault="none", opened=True, used=False),
     [], ALL3, True),
    ("none-sealed-but-used-day3", dict(today=day(3), fault="none", opened=False, used=True),
     [], ALL3, True),
    ("none-change-of-mind-after-use-day2", dict(today=day(2), fault="none"),
     [], ALL3, True),
    ("none-change-of-mind-after-use-day30", dict(today=day(30), fault="none"),
     [], ALL3, True),
    # -- quality fault: day 15 vs day 16 ------------------------------------------
    ("quality-unopened-day7", dict(today=day(7), opened=False, used=False),
     [RETURN_Q, EXCH_Q, FREE_UNIT], (), True),
    ("quality-opened-day7", dict(today=day(7)),
     [RETURN_Q, EXCH_Q, FREE_UNIT], (), True),
    ("quality-opened-day8", dict(today=day(8)),
     [RETURN_Q, EXCH_Q, FREE_UNIT], (), True),
    ("quality-day15", dict(today=day(15)),
     [RETURN_Q, EXCH_Q, FREE_UNIT], (), True),
    ("quality-day16", dict(today=day(16)),
     [FREE_UNIT], ("return", "exchange"), True),
    ("quality-unopened-day16", dict(today=day(16), opened=False, used=False),
     [FREE_UNIT], ("return", "exchange"), True),
    # -- customer damage ----------------------------------------------------------
    ("damage-unopened-day2", dict(today=day(2), fault="customer_damage", opened=False, used=False),
     [AT_COST], ALL3, True),
    ("damage-opened-day5", dict(today=day(5), fault="customer_damage"),
     [AT_COST], ALL3, True),
    ("damage-out-of-warranty", dict(today=date(2031, 3, 1), fault="customer_damage"),
     [AT_COST], ALL3, False),
    # -- whole-unit warranty: last day vs day after (fridge 36 months) -------------
    ("fridge-unit-last-day", dict(today=date(2029, 3, 1)),
     [FREE_UNIT], ("return", "exchange"), True),
    ("fridge-unit-day-after", dict(today=date(2029, 3, 2)),
     [PAID], ALL3, False),
    # -- parts with a longer term than the unit -----------------------------------
    ("fridge-compressor-after-unit", dict(today=date(2029, 3, 2), part="compressor"),
     [FREE_PART], ("return", "exchange"), True),
    ("fridge-compressor-last-day-144m", dict(today=date(2038, 3, 1), part="compressor"),
     [FREE_PART], ("return", "exchange"), True),
    ("fridge-compressor-day-after", dict(today=date(2038, 3, 2), part="compressor"),
     [PAID], ALL3, False),
    ("fridge-part-name-normalised", dict(today=date(2029, 3, 2), part=" Compressor "),
     [FREE_PART], ("return", "exchange"), True),
    ("fridge-unknown-part-uses-unit-term", dict(today=date(2029, 3, 2), part="door_handle"),
     [PAID], ALL3, False),
    ("ac-compressor-year5", dict(category="air_conditioner", today=date(2030, 6, 1), part="compressor"),
     [FREE_PART], ("return", "exchange"), True),
    ("ac-unit-year5", dict(category="air_conditioner", today=date(2030, 6, 1)),
     [FREE_UNIT], ("return", "exchange"), True),
    ("ac-compressor-year7", dict(category="air_conditioner", today=date(2033, 3, 1), part="compressor"),
     [FREE_PART], ("return", "exchange"), True),
    ("ac-pcb-year7-no-own-term", dict(category="air_conditioner", today=date(2033, 3, 1), part="pcb"),
     [PAID], ALL3, False),
    ("washer-motor-month40", dict(category="washing_machine", today=date(2029, 7, 1), part="motor"),
     [FREE_PART], ("return", "exchange"), True),
    ("washer-unit-month40", dict(category="washing_machine", today=date(2029, 7, 1)),
     [PAID], ALL3, False),
    ("heater-inner-tank-year7", dict(category="water_heater", today=date(2033, 3, 1), part="inner_tank"),
     [FREE_PART], ("return", "exchange"), True),
    ("heater-element-year7", dict(category="water_heater", today=date(2033, 3, 1), part="heating_element"),
     [PAID], ALL3, False),
    ("tv-panel-month18", dict(category="tv", today=date(2027, 9, 1), part="panel"),
     [FREE_PART], ("return", "exchange"), True),
    ("tv-unit-month18", dict(category="tv", today=date(2027, 9, 1)),
     [PAID], ALL3, False),
    ("microwave-magnetron-year2", dict(category="microwave", today=date(2028, 3, 1), part="magnetron"),
     [FREE_PART], ("return", "exchange"), True),
    ("range-hood-motor-year4", dict(category="range_hood", today=date(2030, 3, 1), part="motor"),
     [FREE_PART], ("return", "exchange"), True),
    ("dishwasher-motor-year3", dict(category="dishwasher", today=date(2029, 3, 1), part="motor"),
     [FREE_PART], ("return", "exchange"), True),
    ("gas-hob-valve-year4", dict(category="gas_hob", today=date(2030, 1, 1), part="gas_valve"),
     [FREE_PART], ("return", "exchange"), True),
    # -- repeated repairs of the same fault ---------------------------------------
    ("repeat-1-prior-repair", dict(today=day(200), prior_repairs_same_fault=1),
     [FREE_UNIT], ("return", "exchange"), True),
    ("repeat-2-prior-repairs", dict(today=day(200), prior_repairs_same_fault=2),
     [EXCH_REPEAT, FREE_UNIT], ("return",), True),
    ("repeat-3-prior-repairs", dict(today=day(200), prior_repairs_same_fault=3),
     [EXCH_REPEAT, FREE_UNIT], ("return",), True),
    ("repeat-2-out-of-warranty", dict(today=date(2029, 3, 2), prior_repairs_same_fault=2),
     [PAID], ALL3, False),
    ("repeat-2-compressor-part-term", dict(today=date(2030, 3, 1), part="compressor",
                                           prior_repairs_same_fault=2),
     [EXCH_REPEAT, FREE_PART], ("return",), True),
    ("repeat-2-customer-damage", dict(today=day(200), fault="customer_damage", prior_repairs_same_fault=2),
     [AT_COST], ALL3, True),
    ("repeat-2-no-fault", dict(today=day(200), fault="none", prior_repairs_same_fault=2),
     [], ALL3, True),
    ("repeat-2-within-15-days-cites-15d", dict(today=day(10), prior_repairs_same_fault=2),
     [RETURN_Q, EXCH_Q, FREE_UNIT], (), True),
    # -- delivery date (when known) is the start ----------------------------------
    ("delivery-day7-unopened", dict(today=date(2026, 3, 17), delivery_date=date(2026, 3, 10),
                                    fault="none", opened=False, used=False),
     [RETURN_7D], ("exchange", "free_repair"), True),
    ("delivery-day8-unopened", dict(today=date(2026, 3, 18), delivery_date=date(2026, 3, 10),
                                    fault="none", opened=False, used=False),
     [], ALL3, True),
    ("no-delivery-same-today-is-day16", dict(today=date(2026, 3, 17), fault="none", opened=False, used=False),
     [], ALL3, True),
    ("delivery-day15-quality", dict(today=date(2026, 3, 25), delivery_date=date(2026, 3, 10)),
     [RETURN_Q, EXCH_Q, FREE_UNIT], (), True),
    ("delivery-day16-quality", dict(today=date(2026, 3, 26), delivery_date=date(2026, 3, 10)),
     [FREE_UNIT], ("return", "exchange"), True),
    ("tv-warranty-from-delivery", dict(category="tv", today=date(2027, 3, 20), delivery_date=date(2026, 3, 20)),
     [FREE_UNIT], ("return", "exchange"), True),
    ("tv-warranty-from-delivery-day-after", dict(category="tv", today=date(2027, 3, 21),
                                                 delivery_date=date(2026, 3, 20)),
     [PAID], ALL3, False),
    ("tv-warranty-from-purchase-without-delivery", dict(category="tv", today=date(2027, 3, 15)),
     [PAID], ALL3, False),
    # -- leap-day purchase: 2024-02-29 + 12 months = 2025-02-28 -------------------
    ("leap-tv-last-day", dict(category="tv", purchase=date(2024, 2, 29), today=date(2025, 2, 28)),
     [FREE_UNIT], ("return", "exchange"), True),
    ("leap-tv-day-after", dict(category="tv", purchase=date(2024, 2, 29), today=date(2025, 3, 1)),
     [PAID], ALL3, False),
    ("leap-tv-panel-36m-last-day", dict(category="tv", purchase=date(2024, 2, 29), today=date(2027, 2, 28),
                                        part="panel"),
     [FREE_PART], ("return", "exchange"), True),
    ("leap-tv-panel-36m-day-after", dict(category="tv", purchase=date(2024, 2, 29), today=date(2027, 3, 1),
                                         part="panel"),
     [PAID], ALL3, False),
]


@pytest.mark.parametrize("kwargs, expected, unavailable, in_warranty",
                         [row[1:] for row in TABLE], ids=[row[0] for row in TABLE])
def test_decision_table(policy, kwargs, expected, unavailable, in_warranty):
    d = evaluate(policy, case(**kwargs))
    assert [(r.kind, r.clause_id) for r in d.eligible] == list(expected)
    assert d.kinds() == tuple(k for k, _ in expected)
    assert d.clause_ids() == tuple(c for _, c in expected)
    assert tuple(u.kind for u in d.unavailable) == tuple(unavailable)
    assert d.in_warranty is in_warranty
    check_decision(policy, d)


def test_table_is_big_enough():
    assert len(TABLE) >= 35
    assert len({row[0] for row in TABLE}) == len(TABLE)


# --------------------------------------------------------------------------- #
# Dates, days and warranty end
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("kwargs, days, start, basis, ends, months, scope", [
    (dict(today=P), 0, P, "purchase", date(2029, 3, 1), 36, "unit"),
    (dict(today=day(8)), 8, P, "purchase", date(2029, 3, 1), 36, "unit"),
    (dict(today=date(2026, 3, 17), delivery_date=date(2026, 3, 10)), 7, date(2026, 3, 10), "delivery",
     date(2029, 3, 10), 36, "unit"),
    (dict(today=day(1), part="compressor"), 1, P, "purchase", date(2038, 3, 1), 144, "part"),
    (dict(category="tv", purchase=date(2024, 2, 29), today=date(2024, 3, 1)), 1, date(2024, 2, 29), "purchase",
     date(2025, 2, 28), 12, "unit"),
    (dict(category="air_conditioner", purchase=date(2026, 1, 31), today=date(2026, 2, 1)), 1,
     date(2026, 1, 31), "purchase", date(2032, 1, 31), 72, "unit"),
])
def test_days_start_and_warranty_end(policy, kwargs, days, start, basis, ends, months, scope):
    d = evaluate(policy, case(**kwargs))
    assert d.days_since_start == days
    assert d.start_date == start and d.start_basis == basis
    assert d.warranty_ends == ends
    assert d.warranty_months == months and d.warranty_scope == scope


@pytest.mark.parametrize("start, months, expected", [
    (date(2024, 2, 29), 12, date(2025, 2, 28)),
    (date(2024, 2, 29), 48, date(2028, 2, 29)),
    (date(2026, 1, 31), 1, date(2026, 2, 28)),
    (date(2026, 3, 1), 36, date(2029, 3, 1)),
    (date(2026, 11, 30), 3, date(2027, 2, 28)),
    (date(2026, 12, 15), 12, date(2027, 12, 15)),
])
def test_add_months(start, months, expected):
    assert add_months(start, months) == expected


def test_datetime_values_are_accepted_as_dates(policy):
    d = evaluate(policy, case(purchase=datetime(2026, 3, 1, 18, 30), today=datetime(2026, 3, 8, 9, 0),
                              fault="none", opened=False, used=False))
    assert d.days_since_start == 7 and d.kinds() == ("return",)


@pytest.mark.parametrize("kwargs, message", [
    (dict(today=date(2026, 2, 28)), "before the purchase date"),
    (dict(today=day(5), delivery_date=date(2026, 2, 27)), "delivery date (2026-02-27) is before the purchase"),
    (dict(today=day(5), delivery_date=day(6)), "is after today"),
    (dict(category="toaster", today=day(1)), "unknown category 'toaster'"),
    (dict(today=day(1), fault="broken"), "unknown fault 'broken'"),
    (dict(today=day(1), prior_repairs_same_fault=-1), "prior_repairs_same_fault"),
    (dict(today="2026-03-05"), "today must be a datetime.date"),
])
def test_impossible_cases_raise_value_error(policy, kwargs, message):
    with pytest.raises(ValueError) as exc:
        evaluate(policy, case(**kwargs))
    assert message in str(exc.value)
    assert not isinstance(exc.value, PolicyError)


# --------------------------------------------------------------------------- #
# Reasons for unavailable remedies
# --------------------------------------------------------------------------- #


def reasons(d: WarrantyDecision) -> dict[str, Unavailable]:
    return {u.kind: u for u in d.unavailable}


def test_reason_no_reason_window_passed(policy):
    r = reasons(evaluate(policy, case(today=day(8), fault="none", opened=False, used=False)))
    assert r["return"].reason_id == "return_window_passed"
    assert "超过7天" in r["return"].reason["zh"]
    assert "8 days since purchase (2026-03-01)" in r["return"].reason["en"]
    assert "7-day return period" in r["return"].reason["en"]
    assert r["exchange"].reason_id == "no_fault" and r["free_repair"].reason_id == "no_fault"


def test_reason_opened_within_7_days(policy):
    r = reasons(evaluate(policy, case(today=day(3), fault="none")))
    assert r["return"].reason_id == "return_opened_or_used"
    assert "未拆封" in r["return"].reason["zh"] and "unopened" in r["return"].reason["en"]


def test_reason_quality_after_15_days_uses_delivery_label(policy):
    d = evaluate(policy, case(today=date(2026, 3, 26), delivery_date=date(2026, 3, 10)))
    r = reasons(d)
    assert r["return"].reason_id == "return_window_passed"
    assert "16 days since delivery (2026-03-10)" in r["return"].reason["en"]
    assert "距收货之日" in r["return"].reason["zh"] and "15天" in r["return"].reason["zh"]
    assert r["exchange"].reason_id == "exchange_window_passed"
    assert "repaired 0 time(s)" in r["exchange"].reason["en"]


def test_reason_out_of_warranty(policy):
    r = reasons(evaluate(policy, case(today=date(2029, 3, 2))))
    assert r["free_repair"].reason_id == "warranty_expired"
    assert r["free_repair"].reason == {"zh": "36个月的保修期已于2029-03-01结束。",
                                       "en": "The 36-month warranty ended on 2029-03-01."}
    assert r["exchange"].reason_id == "exchange_window_passed_out_of_warranty"


def test_reason_customer_damage(policy):
    r = reasons(evaluate(policy, case(today=day(2), fault="customer_damage", opened=False, used=False)))
    assert {u.reason_id for u in r.values()} == {"customer_damage"}
    assert "人为损坏" in r["return"].reason["zh"] and "misuse" in r["return"].reason["en"]


# --------------------------------------------------------------------------- #
# Fees (exact Decimal values from the YAML)
# --------------------------------------------------------------------------- #


def only(d: WarrantyDecision, kind: str) -> Remedy:
    (r,) = [r for r in d.eligible if r.kind == kind]
    return r


def test_fee_paid_repair_fridge_compressor(policy):
    fee = only(evaluate(policy, case(today=date(2038, 3, 2), part="compressor")), "paid_repair").fee
    assert fee == {
        "currency": "CNY",
        "call_out": Decimal("50.00"),
        "labour": Decimal("350.00"),
        "labour_tier": "major",
        "labour_tiers": {"minor": Decimal("80.00"), "major": Decimal("350.00")},
        "parts": "at cost",
        "part": "compressor",
        "part_price": Decimal("900.00"),
        "subtotal_excl_parts": Decimal("400.00"),
        "estimated_total": Decimal("1300.00"),
    }


def test_fee_paid_repair_unknown_part_uses_default_tier(policy):
    fee = only(evaluate(policy, case(category="air_conditioner", today=date(2032, 3, 2))), "paid_repair").fee
    assert fee["call_out"] == Decimal("50.00") and fee["labour"] == Decimal("80.00")
    assert fee["labour_tier"] == "minor"
    assert fee["part"] is None and fee["part_price"] is None and fee["estimated_total"] is None
    assert fee["subtotal_excl_parts"] == Decimal("130.00")
    assert fee["parts"] == "at cost"


def test_fee_paid_repair_tv_panel(policy):
    fee = only(evaluate(policy, case(category="tv", today=date(2029, 3, 2), part="panel")), "paid_repair").fee
    assert (fee["call_out"], fee["labour"], fee["part_price"], fee["estimated_total"]) == (
        Decimal("60.00"), Decimal("200.00"), Decimal("2800.00"), Decimal("3060.00"))


def test_fee_customer_damage_washer_door_seal(policy):
    fee = only(evaluate(policy, case(category="washing_machine", today=day(3), part="door_seal",
                                     fault="customer_damage")), "repair_at_cost").fee
    assert (fee["call_out"], fee["labour"], fee["labour_tier"], fee["part_price"]) == (
        Decimal("50.00"), Decimal("60.00"), "minor", Decimal("180.00"))
    assert fee["estimated_total"] == Decimal("290.00")


def test_fee_schedule_matches_yaml_exactly(policy, raw):
    assert policy.categories() == tuple(raw["categories"])
    for cat, body in raw["categories"].items():
        fees = policy.fee_schedule(cat)
        assert fees["call_out"] == Decimal(body["fees"]["call_out"])
        assert fees["labour"] == {t: Decimal(v) for t, v in body["fees"]["labour"].items()}
        assert fees["parts"] == {p: {"price": Decimal(s["price"]), "labour_tier": s["labour_tier"]}
                                 for p, s in body["fees"]["parts"].items()}
        assert fees["parts_at_cost"] is True and fees["currency"] == "CNY"
        for v in [fees["call_out"], *fees["labour"].values()]:
            assert isinstance(v, Decimal)


def test_required_named_parts_are_priced(policy):
    names = {p for cat in policy.categories() for p in policy.fee_schedule(cat)["parts"]}
    assert {"capacitor", "compressor", "pcb", "door_seal", "heating_element", "remote"} <= names


def test_fee_schedule_is_a_copy(policy):
    fees = policy.fee_schedule("fridge")
    fees["call_out"] = Decimal("0")
    fees["labour"]["minor"] = Decimal("0")
    assert policy.fee_schedule("fridge")["call_out"] == Decimal("50.00")
    assert policy.fee_schedule("fridge")["labour"]["minor"] == Decimal("80.00")


# --------------------------------------------------------------------------- #
# Policy API
# --------------------------------------------------------------------------- #


def test_policy_basics(policy):
    assert policy.version == "2026.1"
    assert policy.effective_from == date(2026, 1, 1)
    assert set(policy.categories()) == {"air_conditioner", "fridge", "washing_machine", "water_heater", "tv",
                                        "range_hood", "dishwasher", "gas_hob", "microwave"}
    assert policy.windows() == {"no_reason_return_days": 7, "quality_return_days": 15,
                                "quality_exchange_days": 15}
    assert policy.exchange_after_failed_repairs == 2 and policy.parts_at_cost is True
    assert default_policy_path() == Path(__file__).resolve().parents[1] / "data" / "policy" / "warranty.yml"


@pytest.mark.parametrize("category, part, months", [
    ("air_conditioner", None, 72), ("air_conditioner", "compressor", 120), ("air_conditioner", "pcb", 72),
    ("fridge", None, 36), ("fridge", "compressor", 144), ("washing_machine", "motor", 120),
    ("water_heater", "inner_tank", 96), ("tv", None, 12), ("tv", "panel", 36), ("microwave", "magnetron", 36),
])
def test_warranty_months(policy, category, part, months):
    assert policy.warranty_months(category, part) == months


def test_clauses_are_bilingual_and_filled(policy):
    c = policy.clause("3B-7D-RETURN")
    assert c["zh"] == "购机（已知收货日期的自收货之日起）7日内，商品未拆封、未使用，可无理由退货。"
    assert c["en"].startswith("Within 7 days of purchase")
    assert "15日内" in policy.clause("3B-15D-QUALITY")["zh"]
    assert "2次修理" in policy.clause("3B-REPEAT-REPAIR")["zh"]
    for cid in ("3B-15D-EXCHANGE", "WARRANTY-UNIT", "WARRANTY-PART", "PAID-REPAIR", "CUSTOMER-DAMAGE"):
        text = policy.clause(cid)
        assert CJK.search(text["zh"]) and text["en"] and not CJK.search(text["en"])
    with pytest.raises(KeyError):
        policy.clause("NO-SUCH-CLAUSE")


def test_policy_and_results_are_immutable(policy):
    with pytest.raises(dataclasses.FrozenInstanceError):
        policy.quality_return_days = 30  # type: ignore[misc]
    with pytest.raises(TypeError):
        policy.terms["fridge"] = None  # type: ignore[index]
    with pytest.raises(TypeError):
        policy.terms["fridge"].part_months["compressor"] = 1  # type: ignore[index]
    d = evaluate(policy, case(today=day(1)))
    with pytest.raises(dataclasses.FrozenInstanceError):
        d.in_warranty = False  # type: ignore[misc]
    d.eligible[0].clause["en"] = "changed"  # callers get copies; the policy is untouched
    assert policy.clause(d.eligible[0].clause_id)["en"] != "changed"


# --------------------------------------------------------------------------- #
# Configurable windows: modified policies
# --------------------------------------------------------------------------- #


def modified(tmp_path, raw, **windows) -> WarrantyPolicy:
    data = copy.deepcopy(raw)
    repairs = windows.pop("exchange_after_failed_repairs", None)
    data["windows"].update(windows)
    if repairs is not None:
        data["exchange_after_failed_repairs"] = repairs
    data["version"] = "2026.1-test"
    return load_policy(write_policy(tmp_path, data))


@pytest.mark.parametrize("windows, kwargs, expected", [
    # "one month" for quality return and exchange
    (dict(quality_return_days=30, quality_exchange_days=30), dict(today=day(30)), [RETURN_Q, EXCH_Q, FREE_UNIT]),
    (dict(quality_return_days=30, quality_exchange_days=30), dict(today=day(31)), [FREE_UNIT]),
    (dict(quality_return_days=30, quality_exchange_days=30), dict(today=day(16)), [RETURN_Q, EXCH_Q, FREE_UNIT]),
    # the no-reason window is independent of the quality windows
    (dict(quality_return_days=30, quality_exchange_days=30),
     dict(today=day(8), fault="none", opened=False, used=False), []),
    # return and exchange windows configured separately
    (dict(quality_return_days=15, quality_exchange_days=30), dict(today=day(15)), [RETURN_Q, EXCH_Q, FREE_UNIT]),
    (dict(quality_return_days=15, quality_exchange_days=30), dict(today=day(20)), [EXCH_Q, FREE_UNIT]),
    (dict(quality_return_days=15, quality_exchange_days=30), dict(today=day(31)), [FREE_UNIT]),
    # longer no-reason window
    (dict(no_reason_return_days=10), dict(today=day(10), fault="none", opened=False, used=False), [RETURN_7D]),
    # three failed repairs needed instead of two
    (dict(exchange_after_failed_repairs=3), dict(today=day(200), prior_repairs_same_fault=2), [FREE_UNIT]),
    (dict(exchange_after_failed_repairs=3), dict(today=day(200), prior_repairs_same_fault=3),
     [EXCH_REPEAT, FREE_UNIT]),
])
def test_configurable_windows(tmp_path, raw, windows, kwargs, expected):
    pol = modified(tmp_path, raw, **windows)
    d = evaluate(pol, case(**kwargs))
    assert [(r.kind, r.clause_id) for r in d.eligible] == expected
    assert d.policy_version == "2026.1-test"
    check_decision(pol, d)


def test_configured_window_appears_in_texts(tmp_path, raw):
    pol = modified(tmp_path, raw, quality_return_days=30, quality_exchange_days=30)
    d = evaluate(pol, case(today=day(30)))
    assert "30日内" in d.eligible[0].clause["zh"] and "Within 30 days" in d.eligible[0].clause["en"]
    later = reasons(evaluate(pol, case(today=day(31))))
    assert "30-day return period" in later["return"].reason["en"]


# --------------------------------------------------------------------------- #
# Broken policy files
# --------------------------------------------------------------------------- #


def _set(path: str, value):
    def mutate(d):
        *head, last = path.split("/")
        for k in head:
            d = d[k]
        d[last] = value
    return mutate


def _del(path: str):
    def mutate(d):
        *head, last = path.split("/")
        for k in head:
            d = d[k]
        del d[last]
    return mutate


BROKEN = [
    ("missing-version", _del("version"), "version: required key is missing"),
    ("version-is-a-number", _set("version", 2026.1), "version: must be a quoted string"),
    ("unknown-top-level-key", _set("windowz", {}), "windowz: unknown key"),
    ("zero-window", _set("windows/quality_return_days", 0),
     "windows.quality_return_days: must be a positive integer, got 0"),
    ("negative-window", _set("windows/quality_exchange_days", -1),
     "windows.quality_exchange_days: must be a positive integer"),
    ("string-window", _set("windows/no_reason_return_days", "7"),
     "windows.no_reason_return_days: must be a positive integer, got '7'"),
    ("missing-window", _del("windows/quality_exchange_days"), "windows.quality_exchange_days: required key is missing"),
    ("bool-repairs", _set("exchange_after_failed_repairs", True),
     "exchange_after_failed_repairs: must be a positive integer"),
    ("parts-at-cost-not-bool", _set("parts_at_cost", "yes please"), "parts_at_cost: must be true or false"),
    ("missing-unit-months", _del("categories/fridge/warranty/unit_months"),
     "categories.fridge.warranty.unit_months: required key is missing"),
    ("part-without-months", _set("categories/fridge/warranty/parts/compressor", None),
     "categories.fridge.warranty.parts.compressor: part has no warranty months"),
    ("part-zero-months", _set("categories/tv/warranty/parts/panel", 0),
     "categories.tv.warranty.parts.panel: must be a positive integer"),
    ("unknown-category-key", _set("categories/tv/colour", "black"), "categories.tv.colour: unknown key"),
    ("empty-categories", _set("categories", {}), "categories: must not be empty"),
    ("rule-refers-to-missing-clause", _set("rule_clauses/paid_repair", "PAID-REPAIR-V2"),
     "rule_clauses.paid_repair: refers to clause 'PAID-REPAIR-V2', which is not defined"),
    ("rule-missing", _del("rule_clauses/customer_damage_repair"),
     "rule_clauses.customer_damage_repair: required key is missing"),
    ("clause-missing-en", _del("clauses/PAID-REPAIR/en"), "clauses.PAID-REPAIR.en: required key is missing"),
    ("clause-empty-zh", _set("clauses/3B-7D-RETURN/zh", "   "),
     "clauses.3B-7D-RETURN.zh: text must be a non-empty string"),
    ("clause-languages-swapped", _set("clauses/WARRANTY-UNIT/en", "整机保修"),
     "clauses.WARRANTY-UNIT.en: en text contains Chinese characters"),
    ("clause-unknown-placeholder", _set("clauses/3B-15D-QUALITY/en", "Within {quality_days} days."),
     "clauses.3B-15D-QUALITY.en: unknown placeholder {quality_days}"),
    ("reason-bad-brace", _set("reasons/warranty_expired/en", "Ended on {warranty_ends."),
     "reasons.warranty_expired.en: bad {placeholder} syntax"),
    ("reason-missing", _del("reasons/no_fault"), "reasons.no_fault: required key is missing"),
    ("label-missing", _del("labels/delivery"), "labels.delivery: required key is missing"),
    ("fee-float", _set("categories/tv/fees/call_out", 60.5),
     "categories.tv.fees.call_out: must be a quoted decimal string"),
    ("fee-not-a-number", _set("categories/tv/fees/labour/minor", "eighty"),
     "categories.tv.fees.labour.minor: must be a non-negative amount"),
    ("part-unknown-labour-tier", _set("categories/fridge/fees/parts/pcb/labour_tier", "medium"),
     "categories.fridge.fees.parts.pcb.labour_tier: 'medium' is not one of the labour tiers"),
    ("default-tier-unknown", _set("categories/fridge/fees/default_labour_tier", "basic"),
     "categories.fridge.fees.default_labour_tier: 'basic' is not one of the labour tiers"),
    ("warranty-part-without-price", _del("categories/fridge/fees/parts/compressor"),
     "categories.fridge.warranty.parts.compressor: part has its own warranty term but no price"),
    ("conventions-changed", _set("conventions/day_count", "calendar_days_from_1"),
     "conventions.day_count: only 'elapsed_days' is implemented"),
    ("bad-effective-from", _set("effective_from", "soon"), "effective_from: must be a date"),
]


@pytest.mark.parametrize("mutate, message", [b[1:] for b in BROKEN], ids=[b[0] for b in BROKEN])
def test_broken_policy_raises_policy_error(tmp_path, raw, mutate, message):
    data = copy.deepcopy(raw)
    mutate(data)
    path = write_policy(tmp_path, data)
    with pytest.raises(PolicyError) as exc:
        load_policy(path)
    assert message in str(exc.value)
    assert str(path) in str(exc.value)  # the message names the file
    assert isinstance(exc.value, ValueError)


def test_all_problems_are_reported_together(tmp_path, raw):
    data = copy.deepcopy(raw)
    del data["version"]
    data["windows"]["quality_return_days"] = 0
    data["clauses"]["PAID-REPAIR"]["zh"] = ""
    path = write_policy(tmp_path, data)
    with pytest.raises(PolicyError) as exc:
        load_policy(path)
    assert len(exc.value.errors) == 3
    assert "3 problems" in str(exc.value)


@pytest.mark.parametrize("content, message", [
    ("version: [unclosed\n", "is not valid YAML"),
    ("", "got an empty file"),
    ("- just\n- a list\n", "must be a YAML mapping, got list"),
])
def test_unparseable_policy_files(tmp_path, content, message):
    path = tmp_path / "warranty.yml"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(PolicyError) as exc:
        load_policy(path)
    assert message in str(exc.value)


def test_missing_policy_file(tmp_path):
    with pytest.raises(PolicyError) as exc:
        load_policy(tmp_path / "nope.yml")
    assert "cannot read warranty policy" in str(exc.value)


def test_round_trip_of_shipped_policy_is_valid(tmp_path, raw):
    # dumping and re-loading the shipped file keeps it valid (the modified-policy tests rely on it)
    pol = load_policy(write_policy(tmp_path, copy.deepcopy(raw)))
    assert pol.version == "2026.1" and pol.categories() == load_policy(default_policy_path()).categories()
