"""Small, dependency-light metric helpers for scripts/evaluate.py (plain Python + scikit-learn)."""
from __future__ import annotations

from collections import Counter
from typing import Iterable, Sequence

REJECT = ("nlu_fallback", "out_of_scope")


def rnd(x: float | None, digits: int = 4) -> float | None:
    return None if x is None else round(float(x), digits)


def safe_div(a: float, b: float) -> float | None:
    return a / b if b else None


def f1(p: float | None, r: float | None) -> float | None:
    if p is None or r is None:
        return None
    return 2 * p * r / (p + r) if (p + r) else 0.0


def per_label(gold: Sequence[str], pred: Sequence[str], labels: Iterable[str]) -> dict:
    """Precision/recall/F1/support for each label (a label never predicted has precision 0 when it has
    support, as scikit-learn's zero_division=0) and the macro average over `labels`."""
    labels = list(labels)
    tp, fp, fn = Counter(), Counter(), Counter()
    for g, p in zip(gold, pred):
        if g == p:
            tp[g] += 1
        else:
            fp[p] += 1
            fn[g] += 1
    rows = {}
    for lab in labels:
        support = tp[lab] + fn[lab]
        p = safe_div(tp[lab], tp[lab] + fp[lab])
        r = safe_div(tp[lab], support)
        p = 0.0 if p is None else p
        r = 0.0 if r is None else r
        rows[lab] = {"precision": rnd(p), "recall": rnd(r), "f1": rnd(f1(p, r)), "support": support,
                     "predicted": tp[lab] + fp[lab]}
    macro = {k: rnd(sum(rows[lab][k] for lab in labels) / len(labels)) if labels else None
             for k in ("precision", "recall", "f1")}
    return {"per_label": rows, "macro": macro}


def accuracy(gold: Sequence[str], pred: Sequence[str]) -> float | None:
    return rnd(safe_div(sum(g == p for g, p in zip(gold, pred)), len(gold)))


def binary(gold: Sequence[bool], pred: Sequence[bool]) -> dict:
    tp = sum(g and p for g, p in zip(gold, pred))
    fp = sum((not g) and p for g, p in zip(gold, pred))
    fn = sum(g and (not p) for g, p in zip(gold, pred))
    tn = sum((not g) and (not p) for g, p in zip(gold, pred))
    p = safe_div(tp, tp + fp)
    r = safe_div(tp, tp + fn)
    return {"precision": rnd(p), "recall": rnd(r), "f1": rnd(f1(p, r)), "accuracy": rnd(safe_div(tp + tn, len(gold))),
            "tp": tp, "fp": fp, "fn": fn, "tn": tn, "n": len(gold), "positives": tp + fn}


def counts_prf(tp: int, n_pred: int, n_gold: int) -> dict:
    p = safe_div(tp, n_pred)
    r = safe_div(tp, n_gold)
    return {"precision": rnd(p), "recall": rnd(r), "f1": rnd(f1(p, r)), "tp": tp, "predicted": n_pred, "gold": n_gold}


def multiset_overlap(a: Iterable, b: Iterable) -> int:
    return sum((Counter(a) & Counter(b)).values())
