"""`make eval` additions of issue 15: calibration (reliability table) and "routed within two turns" on the own
held-out sets, and the model-code and phone-number tables (tests/data/formats/)."""
from __future__ import annotations

import csv
from pathlib import Path

from bot.nlu import clarify

BINS = (0.0, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0001)


def _correct(gold: str, pred: str) -> bool:
    return pred == gold or (gold == "out_of_scope" and pred == "nlu_fallback")


def reliability(rows: list[dict], parsed: dict[str, dict]) -> dict:
    """Per confidence bin of the top intent: messages, mean confidence, accuracy; and the expected calibration
    error (ECE, the mean gap weighted by bin size)."""
    table, gap = [], 0.0
    for lo, hi in zip(BINS, BINS[1:]):
        hits = [parsed[r["text"]] | {"gold": r["intent"]} for r in rows if lo <= parsed[r["text"]]["confidence"] < hi]
        if not hits:
            continue
        mean_conf = sum(h["confidence"] for h in hits) / len(hits)
        acc = sum(_correct(h["gold"], h["intent"]) for h in hits) / len(hits)
        gap += len(hits) * abs(mean_conf - acc)
        table.append({"bin": f"{lo:.2f}-{min(hi, 1.0):.2f}", "n": len(hits), "mean_confidence": round(mean_conf, 3),
                      "accuracy": round(acc, 3)})
    return {"n": len(rows), "bins": table, "ece": round(gap / max(len(rows), 1), 3)}


def routing(rows: list[dict], parsed: dict[str, dict], threshold: float) -> dict:
    """Routed within two turns: read confidently and right at once, or asked and the right intent among the
    buttons (the customer presses it). Over the service intents (which start a flow or answer a service
    question), and over every in-scope message (small talk, facts, yes/no too)."""
    out = {"threshold": threshold}
    for scope, keep in (("service", lambda g: g in clarify.SERVICE_INTENTS), ("in_scope", lambda g: g != "out_of_scope")):
        sel = [r for r in rows if keep(r["intent"])]
        results = [clarify.routed_within_two_turns(r["intent"], parsed[r["text"]]["intent"],
                                                   parsed[r["text"]]["confidence"], parsed[r["text"]].get("ranking") or [],
                                                   threshold) for r in sel]
        first = [not c and ok for ok, c in results]
        out[scope] = {"n": len(sel), "routed_within_two_turns": round(sum(ok for ok, _ in results) / max(len(sel), 1), 3),
                      "routed_first_turn": round(sum(first) / max(len(sel), 1), 3),
                      "clarified": round(sum(c for _, c in results) / max(len(sel), 1), 3)}
    oos = [r for r in rows if r["intent"] == "out_of_scope"]
    out["out_of_scope_clarified"] = round(sum(clarify.should_clarify(parsed[r["text"]]["intent"],
                                                                     parsed[r["text"]]["confidence"], threshold)
                                              for r in oos) / max(len(oos), 1), 3)
    out["routed_within_two_turns"] = out["service"]["routed_within_two_turns"]
    return out


def _tsv(path: Path) -> list[dict]:
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


def formats(folder: Path, extract_entities) -> dict:
    """Every written code and phone number must be found whole and come out normalised."""
    out = {}
    for key, name, entity, column, group in (("model_codes", "model_codes.tsv", "product_model", "code", "brand"),
                                             ("phones", "phones.tsv", "phone", "e164", "kind")):
        rows = _tsv(folder / name)
        table = []
        for r in rows:
            found = [e["value"] for e in extract_entities(r["message"]) if e["entity"] == entity]
            table.append({group: r[group], "message": r["message"], "expected": r[column], "got": found,
                          "ok": found == [r[column]]})
        out[key] = {"source": f"tests/data/formats/{name}", "n": len(rows), "groups": len({r[group] for r in rows}),
                    "accepted": round(sum(t["ok"] for t in table) / max(len(rows), 1), 3), "rows": table}
    return out
