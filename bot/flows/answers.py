"""Self-service answers that need no ticket: warranty terms, fees, usage help (self-check guides), service centres.
"""
from __future__ import annotations

from bot.flows.base import Flow
from bot.flows.words import CATEGORIES
from bot.services import problems as problem_lexicon
from bot.services.conversation import Button, Message, Turn

class AnswersFlow(Flow):

    def one_shot(self, turn: Turn, intent: str, state: dict) -> list[Message]:
        lang = turn.language
        product = turn.entity("product")
        policy = self.tools.policy
        if intent == "ask_warranty":
            windows = policy.windows()
            general = self.t.get("warranty_general", lang, no_reason=windows["no_reason_return_days"],
                                 quality=windows["quality_return_days"])
            if product in policy.categories():
                terms = policy.category_terms(product)
                months = policy.warranty_months(product)
                parts = ", ".join(f"{self.t.get(f'part_{p}', lang) if f'part_{p}' in self.t else p} {m}"
                                  for p, m in self.part_months(terms).items())
                extra = self.t.get("warranty_product", lang, product=self.product_name(product, lang), months=months,
                                   parts=parts or "-")
            else:
                extra = self.t.get("warranty_which_product", lang)
            return [Message(general + "\n" + extra, self.remedy_buttons(turn))]
        if intent == "ask_fee":
            if product in policy.categories():
                fees = policy.fee_schedule(product)
                return [self.msg("fee_product", turn, product=self.product_name(product, lang),
                                 call_out=fees.get("call_out", "-"), labour=self.labour_text(fees))]
            return [self.msg("fee_general", turn)]
        if intent == "usage_help":
            reading = problem_lexicon.read_problem(turn.text, self.lexicon)
            for symptom in reading.symptoms:
                guide = self.script.remedies.guide_for(product, symptom)
                if guide:
                    listing = "\n".join(f"{i}. {s}" for i, s in enumerate(guide[lang], 1))
                    return [Message(self.t.get("self_check_steps", lang) + "\n" + listing),
                            self.msg("self_check_after", turn, [self.button("btn_repair", turn, "/request_repair")])]
            if product in CATEGORIES:
                topics = list(dict.fromkeys(key.split(".", 1)[1] for key in self.tools.selfcheck.get("guides", {})
                                            if key.split(".", 1)[0] in (product, "*")))  # issue 16: one per symptom
                name = self.product_name(product, lang)
                buttons = [Button(problem_lexicon.symptom_label(s, lang, self.lexicon),
                                  f"{name} {problem_lexicon.symptom_label(s, lang, self.lexicon)}") for s in topics]
                if buttons:
                    return [self.msg("usage_pick_topic", turn, buttons, product=name)]
            return [self.msg("usage_need_detail", turn)]
        if intent == "ask_service_center":
            centres = self.tools.centres
            text = turn.text or ""
            chosen = [c for c in centres["centres"] if c["city"]["zh"] in text or c["city"]["en"].lower() in text.lower()]
            rows = chosen or centres["centres"]
            lines = [f"{c['name'][lang]}：{c['address'][lang]}，{c['phone']}" if lang == "zh"
                     else f"{c['name'][lang]}: {c['address'][lang]}, {c['phone']}" for c in rows]
            return [Message(self.t.get("centres_intro", lang, hotline=centres["hotline"], hours=centres["hours"][lang])
                            + "\n" + "\n".join(lines))]
        return []

    @staticmethod
    def part_months(terms) -> dict:
        parts = getattr(terms, "parts", None) or {}
        return {name: (p if isinstance(p, int) else getattr(p, "months", p)) for name, p in parts.items()}

    @staticmethod
    def labour_text(fees: dict) -> str:
        labour = fees.get("labour")
        if isinstance(labour, dict):
            values = [str(v) for v in labour.values()]
            return "-".join([min(values, key=float), max(values, key=float)]) if values else "-"
        return str(labour or "-")

    def remedy_buttons(self, turn: Turn) -> list[Button]:
        """After a policy answer ("can I still return it?"), the three remedies it speaks of, one tap away."""
        return [self.button("btn_repair", turn, "/request_repair"), self.button("btn_return", turn, "/request_return"),
                self.button("btn_exchange", turn, "/request_exchange")]
