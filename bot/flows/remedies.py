"""Step 4 of the complaint script, deciding: the remedies the warranty policy grants for this case, best first,
each with its clause (and a self-check guide first for a calm repair request); and saying one of them.
"""
from __future__ import annotations

from bot.flows.base import Flow
from bot.flows.context import TurnContext
from bot.services.conversation import Message, Turn
from bot.services.warranty import WarrantyCase, evaluate

class RemedyStep(Flow):

    def proposals(self, ctx: TurnContext) -> list[dict]:
        """The remedies to offer, best first, each with the policy clause that grants it."""
        turn, state, ticket, book, _ = ctx
        category = ticket.product if ticket.product in self.tools.policy.categories() else None
        purchase = ticket.purchase
        start = ticket.purchase_date
        if category is None or start is None:
            clause = {"zh": self.t.get("clause_inspection", "zh"), "en": self.t.get("clause_inspection", "en")}
            return [{"kind": "inspection", "clause_id": "INSPECTION", "clause": clause, "fee": None}]
        today = self.local(turn.now).date()
        fault = "customer_damage" if state.get("customer_damage") else "quality"
        opened = not state.get("unopened") if purchase is None else (purchase.opened and not state.get("unopened"))
        used = opened if purchase is None else (purchase.used and not state.get("unopened"))
        case = WarrantyCase(category=category, purchase_date=start, today=max(today, start),
                            delivery_date=purchase.delivery_date if purchase else None, fault=fault,
                            opened=opened, used=used, prior_repairs_same_fault=book.prior_repairs(ticket))
        decision = evaluate(self.tools.policy, case)
        state["warranty"] = {"in_warranty": decision.in_warranty, "ends": decision.warranty_ends.isoformat(),
                             "policy": decision.policy_version}
        options = [{"kind": r.kind, "clause_id": r.clause_id, "clause": dict(r.clause),
                    "fee": {k: str(v) for k, v in (r.fee or {}).items()} or None} for r in decision.eligible]
        wanted = state.get("wants") or {"return": "return", "exchange": "exchange"}.get(state.get("kind"))
        if wanted:
            options.sort(key=lambda o: 0 if o["kind"] == wanted else 1)
            if not any(o["kind"] == wanted for o in options):
                reasons = [u.reason for u in decision.unavailable if u.kind == wanted]
                if reasons:
                    state["unavailable_note"] = reasons[0]
        guide = self.guide_for(ticket.product, ticket.symptom)
        if guide and state.get("kind") == "repair" and fault == "quality" and state.get("max_anger", 0) < self.tuning.anger_hot:
            options.insert(0, {"kind": "self_check", "clause_id": "SELF-CHECK", "fee": None,
                               "clause": {"zh": self.t.get("clause_self_check", "zh"),
                                          "en": self.t.get("clause_self_check", "en")}})
        if not options:
            options = [{"kind": "inspection", "clause_id": "INSPECTION", "fee": None,
                        "clause": {"zh": self.t.get("clause_inspection", "zh"), "en": self.t.get("clause_inspection", "en")}}]
        return options

    def guide_for(self, category: str | None, symptom: str | None) -> dict | None:
        guides = self.tools.selfcheck.get("guides", {})
        if not symptom:
            return None
        return guides.get(f"{category}.{symptom}") or guides.get(f"*.{symptom}")

    def proposal_message(self, turn: Turn, option: dict, state: dict | None = None) -> Message:
        lang = turn.language
        kind = option["kind"]
        parts = []
        if state and state.get("unavailable_note"):
            parts.append(state.pop("unavailable_note")[lang])
        parts.append(self.t.get(f"remedy_{kind}", lang))
        if option.get("fee"):
            fee = option["fee"]
            parts.append(self.t.get("fee_line", lang, call_out=fee.get("call_out", "-"), labour=fee.get("labour", "-")))
        parts.append(self.t.get("clause_line", lang, clause_id=option["clause_id"], clause=option["clause"][lang]))
        parts.append(self.t.get("ask_opinion", lang))
        return Message("\n".join(parts), self.yes_no(turn, "btn_other_option"))
