"""Out-of-fold precision and recall of the anger signal (lexicon raised by the classifier) at several classifier cuts,
by 5-fold cross-validation on data/anger/ only (never the held-out or fresh sets). bot/nlu/anger.py CLASSIFIER_CUT is
the lowest cut whose out-of-fold precision is >= 0.90.

    .venv/bin/python scripts/experiments/anger_cut.py
"""
import sys; sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[2]))
import numpy as np
from sklearn.model_selection import StratifiedKFold
from bot.nlu.anger_model import training_rows, train
from bot.nlu.anger import lexicon_score, _classifier_applies, ANGRY_THRESHOLD
from scipy import sparse
rows = training_rows()
y = np.array([l for _, l in rows]); texts = [t for t, _ in rows]
oof = np.zeros(len(rows))
for tr, te in StratifiedKFold(5, shuffle=True, random_state=0).split(texts, y):
    vec, clf = train([rows[i] for i in tr])
    X = sparse.hstack([vec.transform([texts[i] for i in te]), sparse.csr_matrix([[lexicon_score(texts[i])] for i in te])]).tocsr()
    oof[te] = clf.predict_proba(X)[:, 1]
for cut in (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8):
    pred = []
    for t, p in zip(texts, oof):
        lex = lexicon_score(t)
        s = lex
        if _classifier_applies(t) and p >= cut:
            s = max(lex, ANGRY_THRESHOLD)
        pred.append(s >= ANGRY_THRESHOLD)
    pred = np.array(pred)
    tp = (pred & (y == 1)).sum(); fp = (pred & (y == 0)).sum(); fn = (~pred & (y == 1)).sum()
    print(cut, "P", round(tp / (tp + fp), 3), "R", round(tp / (tp + fn), 3), "fp", fp)
