"""Experiment only (issue 15): TF-IDF + LinearSVC vs MiniLM embeddings (minilm_numpy.py) on the English data,
scored on the own English held-out set and Bitext. Run from the repository root with BOT_EVAL_SHARED and MINILM_DIR
set; prints one line of figures per model (recorded in docs/evaluation_history.md)."""
import sys, json, os, time, glob
from pathlib import Path
ROOT = Path(__file__).resolve().parents[2]
for p_ in (ROOT / "scripts", ROOT, Path(__file__).resolve().parent):
    sys.path.insert(0, str(p_))
import numpy as np
from pathlib import Path
import eval_nlu
from minilm_numpy import Encoder
SHARED = Path(os.environ.get("BOT_EVAL_SHARED", ROOT.parent / "shared" / "eval"))
train = []
for f in sorted(glob.glob(str(ROOT / "data/nlu/en/*.yml"))):
    train += eval_nlu.load_nlu_yaml(Path(f))
held = eval_nlu.load_nlu_yaml(ROOT / "tests/data/heldout/nlu_en.yml")
bitext, _ = eval_nlu.load_bitext(SHARED); clinc, _ = eval_nlu.load_clinc(SHARED)
texts = list(dict.fromkeys([r["text"] for r in train + held + bitext]))
t = time.time(); enc = Encoder()
parts = []
for k in range(0, len(texts), 512):
    parts.append(enc.encode(texts[k:k + 512])); print("encoded", k + 512, round(time.time() - t), flush=True)
E = np.vstack(parts); print("encoded", len(texts), round(time.time() - t), "s", flush=True)
emb = {x: E[i] for i, x in enumerate(texts)}
from sklearn.linear_model import LogisticRegression
from sklearn.svm import LinearSVC
from bot.nlu.classifier import build_pipeline, LinearIntentClassifier, softmax
from scipy import sparse
X = np.array([emb[r["text"]] for r in train]); y = np.array([r["intent"] for r in train])
def parsed_from(pred_fn, rows):
    ts = [r["text"] for r in rows]; probs, classes = pred_fn(ts)
    out = {}
    for t_, p in zip(ts, probs):
        j = int(np.argmax(p)); conf = float(p[j]); name = str(classes[j])
        out[t_] = {"intent": name if conf >= 0.25 else "nlu_fallback", "confidence": conf}
    return out
def report(name, pred_fn):
    res = {}
    h = eval_nlu.score_heldout(held, parsed_from(pred_fn, held)); res["heldout_en_macro_f1"] = round(h["macro_f1"], 3)
    for key, rows in (("bitext", bitext),):
        s = eval_nlu.score_mapped(rows, parsed_from(pred_fn, rows))
        res[key] = (round(s["in_scope_recall"], 3), round(s["oos_rejection"], 3))
    print(name, json.dumps(res), flush=True)
# B: embeddings + logistic regression
lr = LogisticRegression(C=10, max_iter=3000, class_weight="balanced").fit(X, y)
report("B minilm+LR", lambda ts: (lr.predict_proba(np.array([emb[t_] for t_ in ts])), lr.classes_))
# A: the current classifier, retrained here on the same English data (reference)
cfg = LinearIntentClassifier.get_default_config()
pipe = build_pipeline(cfg); pipe.fit([r["text"] for r in train], y)
report("A tfidf+svm (en only)", lambda ts: (softmax(pipe.decision_function(ts), cfg["temperature"]), pipe.classes_))
# C: TF-IDF + embedding features into the same LinearSVC
union = pipe.steps[0][1]
for wgt in (1.0,):
    Xc = sparse.hstack([union.transform([r["text"] for r in train]), sparse.csr_matrix(X * wgt)]).tocsr()
    svm = LinearSVC(C=1.0, class_weight="balanced", random_state=42).fit(Xc, y)
    def fn(ts, svm=svm, wgt=wgt):
        Z = sparse.hstack([union.transform(ts), sparse.csr_matrix(np.array([emb[t_] for t_ in ts]) * wgt)]).tocsr()
        return softmax(svm.decision_function(Z), cfg["temperature"]), svm.classes_
    report(f"C tfidf+minilm(w={wgt})+svm", fn)
