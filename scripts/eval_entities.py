"""Entity and anger measurements for scripts/evaluate.py.

Entities: the deterministic extractor the bot uses (bot.nlu.extract.extract_entities; the model's
StructuredEntityExtractor adds exactly these) against the annotated entities of a set:
- exact: (start, end, entity) identical;
- value: for phone / order_id / product_model, the normalised value (digits; upper case, separators dropped)
  regardless of where it was found, as a multiset per message;
- overlap: same entity and the spans overlap (a lenient figure, mainly for date_time boundaries).

Anger: anger_score(text) >= ANGRY_THRESHOLD against the `angry` column (1/0).
"""
from __future__ import annotations

import csv
import re
from collections import Counter, defaultdict
from pathlib import Path
from typing import Callable

import yaml

from eval_metrics import binary, counts_prf, multiset_overlap

ENTITY_TYPES = ("phone", "order_id", "product_model", "date_time", "product", "ticket_number")
VALUE_TYPES = ("phone", "order_id", "product_model")
CJK_RE = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]")


def language_of(text: str) -> str:
    return "zh" if CJK_RE.search(text) else "en"


def normalise(entity: str, value: str) -> str:
    value = str(value)
    if entity == "phone":
        digits = re.sub(r"\D", "", value)
        if digits.startswith("0086"):
            digits = digits[4:]
        elif digits.startswith("86") and len(digits) == 13:
            digits = digits[2:]
        return digits
    if entity == "order_id":
        return re.sub(r"[\s\-:#]", "", value).upper()
    if entity == "product_model":
        return re.sub(r"\s", "", value).upper()
    return value


# --------------------------------------------------------------------------- loading annotated sets

def load_entity_set(path: Path, default_language: str | None = None) -> list[dict]:
    """Rasa NLU YAML (``nlu:`` with [text](entity) markup) or a plain YAML list of
    {text, entities: [{start, end, entity}], language?}. Language: given, else the file's, else by script."""
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    rows: list[dict] = []
    if isinstance(raw, dict) and "nlu" in raw:
        from eval_nlu import load_nlu_yaml

        for r in load_nlu_yaml(path):
            rows.append({"text": r["text"], "entities": r["entities"],
                         "language": default_language or language_of(r["text"])})
    else:
        items = raw.get("examples") if isinstance(raw, dict) else raw
        if not isinstance(items, list):
            raise ValueError(f"{path}: neither Rasa NLU YAML nor a list of examples")
        for item in items:
            if not isinstance(item, dict) or "text" not in item:
                raise ValueError(f"{path}: an example without 'text': {item!r}")
            text = str(item["text"])
            ents = []
            for e in item.get("entities") or []:
                start, end = int(e["start"]), int(e["end"])
                ents.append({"start": start, "end": end, "entity": e["entity"], "value": e.get("value", text[start:end])})
            lang = item.get("language") or item.get("lang") or default_language or language_of(text)
            rows.append({"text": text, "entities": ents, "language": lang})
    return rows


# --------------------------------------------------------------------------- scoring

def score_entities(rows: list[dict], extract: Callable[[str], list], keep_errors: bool = True) -> dict:
    tallies = {t: Counter() for t in ENTITY_TYPES}
    errors: list[dict] = []
    for row in rows:
        text = row["text"]
        gold = [(e["start"], e["end"], e["entity"]) for e in row["entities"] if e["entity"] in ENTITY_TYPES]
        pred_full = [e for e in extract(text) if e["entity"] in ENTITY_TYPES]
        pred = [(e["start"], e["end"], e["entity"]) for e in pred_full]
        for t in ENTITY_TYPES:
            g = [x for x in gold if x[2] == t]
            p = [x for x in pred if x[2] == t]
            tallies[t]["gold"] += len(g)
            tallies[t]["pred"] += len(p)
            tallies[t]["exact"] += multiset_overlap(g, p)
            # overlap: greedy one-to-one pairing of overlapping spans
            used: set[int] = set()
            for gs, ge, _ in g:
                for j, (ps, pe, _) in enumerate(p):
                    if j not in used and ps < ge and gs < pe:
                        used.add(j)
                        tallies[t]["overlap"] += 1
                        break
            if t in VALUE_TYPES:
                gv = [normalise(t, text[s:e]) for s, e, _ in g]
                pv = [normalise(t, x.get("value") or x.get("text") or "") for x in pred_full if x["entity"] == t]
                tallies[t]["value"] += multiset_overlap(gv, pv)
        if keep_errors and Counter(gold) != Counter(pred):
            errors.append({"text": text,
                           "missed": [f"{text[s:e]}|{t}" for s, e, t in sorted(set(gold) - set(pred))],
                           "spurious": [f"{text[s:e]}|{t}" for s, e, t in sorted(set(pred) - set(gold))]})
    per_entity = {}
    for t in ENTITY_TYPES:
        c = tallies[t]
        if not c["gold"] and not c["pred"]:
            continue
        per_entity[t] = {"exact": counts_prf(c["exact"], c["pred"], c["gold"]),
                         "overlap": counts_prf(c["overlap"], c["pred"], c["gold"])}
        if t in VALUE_TYPES:
            per_entity[t]["value"] = counts_prf(c["value"], c["pred"], c["gold"])
    main = [t for t in ("phone", "order_id", "product_model", "date_time", "product") if t in per_entity]
    micro = counts_prf(sum(tallies[t]["exact"] for t in main), sum(tallies[t]["pred"] for t in main),
                       sum(tallies[t]["gold"] for t in main))
    out = {"n_messages": len(rows), "per_entity": per_entity, "micro_exact_main": micro}
    if keep_errors:
        out["errors"] = errors[:60]
        out["n_messages_with_errors"] = len(errors)
    return out


def score_entities_by_language(rows: list[dict], extract, keep_errors: bool = True) -> dict:
    by_lang: dict[str, list] = defaultdict(list)
    for r in rows:
        by_lang[r["language"]].append(r)
    return {lang: score_entities(rs, extract, keep_errors) for lang, rs in sorted(by_lang.items())}


def load_anger(path: Path) -> list[dict]:
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh, delimiter="\t")
        rows = []
        for r in reader:
            label = str(r.get("angry", "")).strip().lower()
            if label not in ("0", "1", "true", "false", "yes", "no"):
                raise ValueError(f"{path}: row {reader.line_num}: angry={r.get('angry')!r} is not 0/1")
            text = r["text"]
            rows.append({"text": text, "language": (r.get("lang") or r.get("language") or language_of(text)).strip(),
                         "angry": label in ("1", "true", "yes")})
    return rows


def score_anger(rows: list[dict], score: Callable[[str], float], threshold: float, keep_errors: bool = True) -> dict:
    out: dict = {"threshold": threshold}
    groups: dict[str, list] = defaultdict(list)
    for r in rows:
        groups[r["language"]].append(r)
    groups["all"] = rows
    for lang, rs in sorted(groups.items()):
        scores = [score(r["text"]) for r in rs]
        res = binary([r["angry"] for r in rs], [s >= threshold for s in scores])
        if keep_errors and lang != "all":
            res["errors"] = [{"text": r["text"], "angry": r["angry"], "score": s}
                             for r, s in zip(rs, scores) if r["angry"] != (s >= threshold)]
        out[lang] = res
    return out
