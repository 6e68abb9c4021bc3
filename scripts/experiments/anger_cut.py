"""Out-of-fold precision and recall of the anger signal (the lexicon raised by the classifier, as
bot/nlu/anger.py `anger_score` combines them) at several classifier cuts, by 5-fold cross-validation on data/anger/
only (never the held-out or fresh sets). bot/nlu/anger.py CLASSIFIER_CUT is the lowest cut whose out-of-fold
precision is >= 0.90.

    .venv/bin/python scripts/experiments/anger_cut.py
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from sklearn.model_selection import StratifiedKFold  # noqa: E402

from bot.nlu.anger import ANGRY_THRESHOLD, _classifier_applies, lexicon_score, raised  # noqa: E402
from bot.nlu.anger_model import features, train, training_rows  # noqa: E402

CUTS = (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8)


def out_of_fold(rows: list[tuple[str, int]]) -> list[float]:
    """P(angry) of every row from a classifier trained on the other four folds."""
    texts, labels = [t for t, _ in rows], [y for _, y in rows]
    p = [0.0] * len(rows)
    for train_idx, test_idx in StratifiedKFold(5, shuffle=True, random_state=0).split(texts, labels):
        vectorizer, classifier = train([rows[i] for i in train_idx])
        probs = classifier.predict_proba(features(vectorizer, [texts[i] for i in test_idx]))[:, 1]
        for i, prob in zip(test_idx, probs):
            p[i] = float(prob)
    return p


def main() -> None:
    rows = training_rows()
    p = out_of_fold(rows)
    lexicon = [lexicon_score(t) for t, _ in rows]
    applies = [_classifier_applies(t) for t, _ in rows]
    for cut in CUTS:
        said = [(raised(lex, prob, cut) if ok else lex) >= ANGRY_THRESHOLD
                for lex, prob, ok in zip(lexicon, p, applies)]
        tp = sum(s and y == 1 for s, (_, y) in zip(said, rows))
        fp = sum(s and y == 0 for s, (_, y) in zip(said, rows))
        fn = sum(not s and y == 1 for s, (_, y) in zip(said, rows))
        print(f"cut {cut}: P {tp / max(tp + fp, 1):.3f} R {tp / max(tp + fn, 1):.3f} (false positives {fp})")


if __name__ == "__main__":
    main()
