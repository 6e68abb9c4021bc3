"""Intent measurements for scripts/evaluate.py: the project's own held-out sets and the external sets in
../shared/eval (JDDC dev zh, Bitext en, CLINC150 en) with their label mappings.

Scoring conventions (also stated in docs/EVALUATION.md):
- A prediction of `nlu_fallback` (FallbackClassifier) or `out_of_scope` is a *rejection*.
- In-scope rows: a rejection is a wrong prediction.
- Rows whose gold label is `out_of_scope`: a rejection is the right answer (for the own held-out sets the
  `nlu_fallback` prediction is credited as `out_of_scope`; the strict figure without that credit is also given).
- External sets: precision of an intent is computed over all scored rows (in-scope and out-of-scope), so an
  out-of-scope row accepted as intent X lowers X's precision; macro-F1 averages over the mapped intents present.
"""
from __future__ import annotations

import asyncio
import csv
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, Iterable

from eval_metrics import REJECT, accuracy, per_label, rnd, safe_div

OOS = "out_of_scope"

BITEXT_MAP = {
    "complaint": "complain",
    "contact_human_agent": "request_human",
    "contact_customer_service": "request_human",
    "get_refund": "request_return",
    "check_refund_policy": "ask_warranty",
    "track_refund": "check_status",
    "review": "feedback",
}
CLINC_MAP = {
    "greeting": "greet",
    "goodbye": "goodbye",
    "thank_you": "thank",
    "are_you_a_bot": "bot_challenge",
    "yes": "affirm",
    "no": "deny",
    "cancel": "stop",
}
BITEXT_TAGS = {"W": "offensive", "Q": "colloquial", "Z": "typos"}


# --------------------------------------------------------------------------- parsing with the model

async def _parse_all(agent, texts: list[str]) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for text in texts:
        if text in out:
            continue
        result = await agent.parse_message(text)
        intent = result.get("intent") or {}
        out[text] = {"intent": intent.get("name") or "nlu_fallback", "confidence": intent.get("confidence") or 0.0,
                     "entities": result.get("entities") or [],
                     "ranking": [(r.get("name"), float(r.get("confidence") or 0.0))
                                 for r in (result.get("intent_ranking") or [])[:6]]}
    return out


def parse_texts(agent, texts: Iterable[str]) -> dict[str, dict]:
    """Every text parsed once by the loaded model, inside one event loop."""
    unique = list(dict.fromkeys(texts))
    return asyncio.run(_parse_all(agent, unique))


# --------------------------------------------------------------------------- loading

def read_tsv(path: Path) -> list[dict]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


def load_nlu_yaml(path: Path) -> list[dict]:
    """Rasa NLU YAML -> [{text, intent, entities:[{start,end,entity,value}]}] (entity spans from the markup)."""
    from rasa.shared.nlu.training_data.formats.rasa_yaml import RasaYAMLReader

    data = RasaYAMLReader().read(str(path))
    rows = []
    for m in data.training_examples:
        text = m.get("text")
        if not text:
            continue
        rows.append({"text": text, "intent": m.get("intent"),
                     "entities": [{"start": e["start"], "end": e["end"], "entity": e["entity"],
                                   "value": e.get("value")} for e in (m.get("entities") or [])]})
    return rows


def load_jddc(shared: Path) -> tuple[list[dict], dict]:
    mapping = {r["jddc_intent"]: r["our_intent"] for r in read_tsv(shared / "jddc_intent_mapping.tsv")}
    rows, excluded, unmapped = [], Counter(), Counter()
    for r in read_tsv(shared / "jddc_dev_zh.tsv"):
        target = mapping.get(r["jddc_intent"])
        if target is None:
            unmapped[r["jddc_intent"]] += 1
            continue
        if target == "EXCLUDE":
            excluded[r["jddc_intent"]] += 1
            continue
        rows.append({"text": r["query"], "source": r["jddc_intent"], "gold": target})
    present = {r["gold"] for r in rows}
    targets = {t for t in mapping.values() if t not in ("EXCLUDE", OOS)}
    return rows, {"excluded_rows": sum(excluded.values()), "excluded_intents": len(excluded),
                  "unmapped_rows": sum(unmapped.values()), "unmapped_intents": sorted(unmapped),
                  "mapped_without_rows": sorted(targets - present)}


def load_bitext(shared: Path) -> tuple[list[dict], dict]:
    rows = []
    for r in read_tsv(shared / "bitext_customer_support_en.tsv"):
        rows.append({"text": r["instruction"], "source": r["intent"], "gold": BITEXT_MAP.get(r["intent"], OOS),
                     "tags": r.get("tags") or ""})
    return rows, {"excluded_rows": 0}


def load_clinc(shared: Path) -> tuple[list[dict], dict]:
    rows = []
    for r in read_tsv(shared / "clinc150_test_oos_en.tsv"):
        rows.append({"text": r["text"], "source": r["intent"], "gold": CLINC_MAP.get(r["intent"], OOS),
                     "split": r.get("split")})
    return rows, {"excluded_rows": 0}


# --------------------------------------------------------------------------- scoring

def score_heldout(rows: list[dict], parsed: dict[str, dict]) -> dict:
    gold = [r["intent"] for r in rows]
    raw = [parsed[r["text"]]["intent"] for r in rows]
    # a fallback on an out_of_scope row is the right answer; on any other row it is wrong
    eff = [OOS if (g == OOS and p in REJECT) else p for g, p in zip(gold, raw)]
    labels = sorted(set(gold))
    table = per_label(gold, eff, labels)
    strict = per_label(gold, raw, labels)
    in_scope = [(g, p) for g, p in zip(gold, raw) if g != OOS]
    fallbacks = sum(p == "nlu_fallback" for _, p in in_scope)
    confusions = Counter((g, p) for g, p in zip(gold, raw) if g != p and not (g == OOS and p in REJECT))
    return {
        "n": len(rows),
        "labels": labels,
        "accuracy": accuracy(gold, eff),
        "macro_f1": table["macro"]["f1"],
        "macro_precision": table["macro"]["precision"],
        "macro_recall": table["macro"]["recall"],
        "macro_f1_strict": strict["macro"]["f1"],
        "per_intent": table["per_label"],
        "in_scope_fallback_rate": rnd(safe_div(fallbacks, len(in_scope))),
        "in_scope_fallbacks": fallbacks,
        "top_confusions": [{"gold": g, "predicted": p, "count": c} for (g, p), c in
                           sorted(confusions.items(), key=lambda kv: (-kv[1], kv[0]))[:12]],
        "_gold": gold,
        "_pred_raw": raw,
    }


def score_mapped(rows: list[dict], parsed: dict[str, dict]) -> dict:
    """In-scope recall / macro-F1 over mapped intents, out-of-scope rejection and false-accept."""
    if not rows:
        return {"n": 0}
    gold = [r["gold"] for r in rows]
    raw = [parsed[r["text"]]["intent"] for r in rows]
    eff = [OOS if p in REJECT else p for p in raw]
    mapped = sorted({g for g in gold if g != OOS})
    table = per_label(gold, eff, mapped)
    ins = [i for i, g in enumerate(gold) if g != OOS]
    oos = [i for i, g in enumerate(gold) if g == OOS]
    per_intent = {}
    for lab in mapped:
        idx = [i for i in ins if gold[i] == lab]
        wrong = Counter(raw[i] for i in idx if eff[i] != lab)
        per_intent[lab] = dict(table["per_label"][lab],
                               rejected=rnd(safe_div(sum(eff[i] == OOS for i in idx), len(idx))),
                               top_wrong=[{"predicted": p, "count": c} for p, c in
                                          sorted(wrong.items(), key=lambda kv: (-kv[1], kv[0]))[:3]])
    accepted = Counter(eff[i] for i in oos if eff[i] != OOS)
    # wrong predictions on in-scope rows name the raw label (nlu_fallback vs out_of_scope) on purpose
    by_source: dict[str, dict] = {}
    groups: dict[str, list[int]] = defaultdict(list)
    for i, r in enumerate(rows):
        groups[r["source"]].append(i)
    for source, idx in sorted(groups.items()):
        target = gold[idx[0]]
        good = sum((eff[i] == OOS) if target == OOS else (eff[i] == target) for i in idx)
        preds = Counter("(rejected)" if eff[i] == OOS else eff[i] for i in idx)
        by_source[source] = {"mapped_to": target, "n": len(idx), "correct": good,
                             "rate": rnd(good / len(idx)),
                             "top_predictions": [{"predicted": p, "count": c} for p, c in
                                                 sorted(preds.items(), key=lambda kv: (-kv[1], kv[0]))[:3]]}
    rejection = safe_div(sum(eff[i] == OOS for i in oos), len(oos))
    return {
        "n": len(rows),
        "n_in_scope": len(ins),
        "n_out_of_scope": len(oos),
        "mapped_intents": mapped,
        "in_scope_recall": rnd(safe_div(sum(eff[i] == gold[i] for i in ins), len(ins))),
        "in_scope_rejected": rnd(safe_div(sum(eff[i] == OOS for i in ins), len(ins))),
        "macro_f1": table["macro"]["f1"],
        "macro_precision": table["macro"]["precision"],
        "macro_recall": table["macro"]["recall"],
        "per_intent": per_intent,
        "oos_rejection": rnd(rejection),
        "oos_false_accept": rnd(None if rejection is None else 1 - rejection),
        "oos_accepted_as": [{"predicted": p, "count": c} for p, c in
                            sorted(accepted.items(), key=lambda kv: (-kv[1], kv[0]))[:8]],
        "by_source_intent": by_source,
    }


def score_bitext_tags(rows: list[dict], parsed: dict[str, dict]) -> dict:
    out = {}
    for letter, name in BITEXT_TAGS.items():
        subset = [r for r in rows if letter in r["tags"]]
        s = score_mapped(subset, parsed)
        out[name] = {"tag": letter, **{k: s.get(k) for k in ("n", "n_in_scope", "n_out_of_scope", "in_scope_recall",
                                                              "macro_f1", "oos_rejection", "oos_false_accept")}}
    return out


def score_clinc_oos_split(rows: list[dict], parsed: dict[str, dict]) -> dict:
    """CLINC's out-of-scope rows in two parts: the genuine `oos` queries and the other 143 CLINC intents."""
    out = {}
    for name, pick in (("oos_queries", lambda r: r["source"] == "oos"),
                       ("other_clinc_intents", lambda r: r["gold"] == OOS and r["source"] != "oos")):
        subset = [r for r in rows if pick(r)]
        rejected = sum(parsed[r["text"]]["intent"] in REJECT for r in subset)
        out[name] = {"n": len(subset), "rejection": rnd(safe_div(rejected, len(subset))),
                     "false_accept": rnd(safe_div(len(subset) - rejected, len(subset)))}
    return out


def worst_sources(score: dict, k: int = 10, min_n: int = 5) -> list[dict]:
    rows = [{"source": s, **v} for s, v in score.get("by_source_intent", {}).items() if v["n"] >= min_n]
    return sorted(rows, key=lambda r: (r["rate"], -r["n"], r["source"]))[:k]


def strip_private(obj: Any) -> Any:
    """Drop keys starting with '_' (row-level arrays used for plots) before writing JSON."""
    if isinstance(obj, dict):
        return {k: strip_private(v) for k, v in obj.items() if not str(k).startswith("_")}
    if isinstance(obj, list):
        return [strip_private(v) for v in obj]
    return obj
