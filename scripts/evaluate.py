"""`make eval`: measure the trained assistant and write docs/EVALUATION.md, docs/evaluation.json and the
confusion-matrix PNGs (docs/confusion_zh.png, docs/confusion_en.png).

  1. intents on the own held-out sets (tests/data/heldout/nlu_{zh,en}.yml);
  2. intents on the external sets in ../shared/eval (JDDC dev zh, Bitext en, CLINC150 en) with their mappings;
  2b. calibration (reliability table) and "routed within two turns" with the clarification buttons on the own
      held-out sets; the model-code and phone-number tables in tests/data/formats;
  3. entities of the deterministic extractor on tests/data/heldout and tests/data/fresh (if present);
  4. anger on tests/data/heldout/anger.tsv and tests/data/fresh/anger.tsv, anger_i15.tsv (if present);
  5. conversations: `rasa test core` on tests/stories and the scripted REST conversations in
     tests/data/conversations.yml through a real stack (tests/stack.py).

The model is loaded once in-process. Exit status: 0 when everything was measured (targets met or not),
1 when a section crashed (the report is still written, with the error), 2 when the model or a required
input file is missing.

Options: --skip-conversations (no servers; sections 5b), --skip-core (no `rasa test core`), --quiet.
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import platform
import random
import sys
import tempfile
import time
import traceback
import warnings
from datetime import datetime, timezone
from pathlib import Path

warnings.filterwarnings("ignore")  # third-party deprecation noise at import time
os.environ.setdefault("RASA_TELEMETRY_ENABLED", "false")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("SQLALCHEMY_SILENCE_UBER_WARNING", "1")

SCRIPTS = Path(__file__).resolve().parent
ROOT = SCRIPTS.parent
for p in (str(SCRIPTS), str(ROOT)):
    if p not in sys.path:
        sys.path.insert(0, p)

SHARED = Path(os.environ.get("BOT_EVAL_SHARED", ROOT.parent / "shared" / "eval"))
MODEL = ROOT / "models" / "assistant.tar.gz"
HELDOUT = ROOT / "tests" / "data" / "heldout"
FRESH = ROOT / "tests" / "data" / "fresh"
DOCS = ROOT / "docs"
RESULTS = ROOT / "results"
SEED = 20261122

REQUIRED = [
    MODEL,
    HELDOUT / "nlu_zh.yml", HELDOUT / "nlu_en.yml", HELDOUT / "anger.tsv",
    SHARED / "jddc_dev_zh.tsv", SHARED / "jddc_intent_mapping.tsv",
    SHARED / "bitext_customer_support_en.tsv", SHARED / "clinc150_test_oos_en.tsv",
    ROOT / "tests" / "stories", ROOT / "tests" / "data" / "conversations.yml", ROOT / "tests" / "stack.py",
]


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def git_commit() -> str:
    from gitinfo import commit, dirty

    head = commit(short=True)
    return "unknown" if head is None else head + ("+dirty" if dirty() else "")


def model_up_to_date() -> bool | None:
    fp = ROOT / "models" / "fingerprint.json"
    if not fp.exists():
        return None
    try:
        from train_if_changed import fingerprint

        return json.loads(fp.read_text()).get("sha256") == fingerprint()
    except Exception:  # noqa: BLE001 - informational only
        return None


@contextlib.contextmanager
def muted_stderr():
    """Third-party import-time deprecation noise goes to a temporary file; shown only if something fails."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved, 2)
            tmp.seek(0)
            sys.stderr.write(tmp.read().decode("utf-8", "replace")[-5000:])
            raise
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


def quiet_rasa() -> None:
    import logging

    from rasa.utils.common import configure_logging_and_warnings
    from rasa.utils.log_utils import configure_structlog

    configure_logging_and_warnings(logging.WARNING)
    configure_structlog(logging.WARNING)
    for name in ("rasa", "jieba", "absl", "tensorflow", "matplotlib"):
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        import jieba

        jieba.setLogLevel(logging.WARNING)
    except ImportError:
        pass


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--skip-conversations", action="store_true", help="do not start the servers")
    parser.add_argument("--skip-core", action="store_true", help="do not run `rasa test core`")
    parser.add_argument("--out", default=str(DOCS), help="where the report, JSON and PNGs go (default docs/)")
    args = parser.parse_args()
    out_dir = Path(args.out)

    missing = [str(p.relative_to(ROOT) if p.is_relative_to(ROOT) else p) for p in REQUIRED if not p.exists()]
    if missing:
        hint = " (run `make train`)" if not MODEL.exists() else ""
        print(f"evaluate: missing required input(s): {', '.join(missing)}{hint}", file=sys.stderr)
        return 2

    random.seed(SEED)
    import numpy as np

    np.random.seed(SEED)
    started = time.monotonic()
    model_hash = sha256(MODEL)
    results: dict = {"meta": {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": git_commit(),
        "model": str(MODEL.relative_to(ROOT)),
        "model_sha256": model_hash,
        "model_up_to_date": model_up_to_date(),
        "python": platform.python_version(),
        "seed": SEED,
        "shared_eval_dir": str(SHARED),
    }, "errors": {}, "timings": {}}
    errors: dict = results["errors"]

    t = time.monotonic()
    with muted_stderr():
        quiet_rasa()
        import rasa
        from rasa.core.agent import Agent

        import eval_clarify
        import eval_dialogue
        import eval_entities
        import eval_nlu
        import eval_report

        agent = Agent.load(str(MODEL))
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot  # noqa: F401 - its import-time noise, too
        from bot.nlu.anger import ANGRY_THRESHOLD, anger_score
        from bot.nlu.extract import extract_entities
    warnings.simplefilter("ignore")  # Rasa's imports reset the filters
    results["meta"]["rasa"] = rasa.__version__
    if not agent.is_ready():
        print("evaluate: the model loaded but the agent is not ready", file=sys.stderr)
        return 2
    results["timings"]["model_load_s"] = round(time.monotonic() - t, 1)

    # ------------------------------------------------------------------ 1 + 2: intents
    t = time.monotonic()
    heldout_rows = {lang: eval_nlu.load_nlu_yaml(HELDOUT / f"nlu_{lang}.yml") for lang in ("zh", "en")}
    external_rows = {}
    for key, loader in (("jddc", eval_nlu.load_jddc), ("bitext", eval_nlu.load_bitext), ("clinc", eval_nlu.load_clinc)):
        external_rows[key] = loader(SHARED)
    texts = [r["text"] for rows in heldout_rows.values() for r in rows]
    texts += [r["text"] for rows, _ in external_rows.values() for r in rows]
    parsed = eval_nlu.parse_texts(agent, texts)
    results["timings"]["parse_s"] = round(time.monotonic() - t, 1)
    results["timings"]["parsed_messages"] = len(parsed)
    results["timings"]["ms_per_message"] = round(1000 * (time.monotonic() - t) / max(len(parsed), 1), 2)

    results["heldout"] = {}
    for lang, rows in heldout_rows.items():
        try:
            score = eval_nlu.score_heldout(rows, parsed)
            eval_report.confusion_png(score["_gold"], score["_pred_raw"], score["labels"],
                                      f"Held-out intents ({lang}, n={score['n']}): rows gold, columns predicted",
                                      out_dir / f"confusion_{lang}.png")
            results["heldout"][lang] = score
        except Exception as err:  # noqa: BLE001
            errors[f"heldout_{lang}"] = f"{err.__class__.__name__}: {err}"
            traceback.print_exc()

    results["external"] = {}
    for key, (rows, info) in external_rows.items():
        try:
            score = eval_nlu.score_mapped(rows, parsed)
            score.update(info)
            score["worst_sources"] = eval_nlu.worst_sources(score)
            if key == "bitext":
                score["by_tag"] = eval_nlu.score_bitext_tags(rows, parsed)
            if key == "clinc":
                score["oos_split"] = eval_nlu.score_clinc_oos_split(rows, parsed)
            from bot.nlu.clarify import clarify_below

            score["clarification"] = eval_clarify.routing([{"text": r["text"], "intent": r["gold"]} for r in rows],
                                                          parsed, clarify_below())
            results["external"][key] = score
        except Exception as err:  # noqa: BLE001
            errors[f"external_{key}"] = f"{err.__class__.__name__}: {err}"
            traceback.print_exc()

    # ------------------------------------------------------------------ 2b: calibration and clarification
    results["clarification"] = {}
    try:
        from bot.nlu.clarify import clarify_below

        for lang, rows in heldout_rows.items():
            results["clarification"][lang] = {"reliability": eval_clarify.reliability(rows, parsed),
                                              **eval_clarify.routing(rows, parsed, clarify_below())}
        results["formats"] = eval_clarify.formats(ROOT / "tests" / "data" / "formats", extract_entities)
    except Exception as err:  # noqa: BLE001
        errors["clarification"] = f"{err.__class__.__name__}: {err}"
        traceback.print_exc()

    # ------------------------------------------------------------------ 3 + 4: entities and anger
    t = time.monotonic()
    results["entities"] = {}
    try:
        rows = []
        for lang in ("zh", "en"):
            rows += eval_entities.load_entity_set(HELDOUT / f"nlu_{lang}.yml", default_language=lang)
        results["entities"]["heldout"] = {
            "source": "tests/data/heldout/nlu_zh.yml + nlu_en.yml", "seen_during_tuning": True,
            "by_language": eval_entities.score_entities_by_language(rows, extract_entities, keep_errors=True)}
    except Exception as err:  # noqa: BLE001
        errors["entities_heldout"] = f"{err.__class__.__name__}: {err}"
        traceback.print_exc()
    fresh_entities = FRESH / "entities.yml"
    block: dict = {"source": str(fresh_entities.relative_to(ROOT)), "seen_during_tuning": False}
    if not fresh_entities.exists():
        block["skipped"] = "the file does not exist yet (it is being written independently); no fresh figures."
    else:
        try:
            rows = eval_entities.load_entity_set(fresh_entities)
            if not rows:
                block["skipped"] = "the file has no examples yet."
            else:
                block["by_language"] = eval_entities.score_entities_by_language(rows, extract_entities,
                                                                                keep_errors=False)
        except Exception as err:  # noqa: BLE001 - a half-written file is a note, not a crash
            block["skipped"] = f"could not read it ({err.__class__.__name__}: {str(err)[:200]})."
    results["entities"]["fresh"] = block

    results["anger"] = {}
    try:
        results["anger"]["heldout"] = {"source": "tests/data/heldout/anger.tsv", "seen_during_tuning": True,
                                       **eval_entities.score_anger(eval_entities.load_anger(HELDOUT / "anger.tsv"),
                                                                   anger_score, ANGRY_THRESHOLD, keep_errors=True)}
    except Exception as err:  # noqa: BLE001
        errors["anger_heldout"] = f"{err.__class__.__name__}: {err}"
        traceback.print_exc()
    for set_name, fresh_anger in (("fresh", FRESH / "anger.tsv"), ("fresh_i15", FRESH / "anger_i15.tsv")):
        source = str(fresh_anger.relative_to(ROOT))
        if not fresh_anger.exists():
            results["anger"][set_name] = {"source": source, "skipped": "file absent"}
            continue
        try:
            rows = eval_entities.load_anger(fresh_anger)
            results["anger"][set_name] = ({"source": source, "seen_during_tuning": False,
                                           **eval_entities.score_anger(rows, anger_score, ANGRY_THRESHOLD,
                                                                       keep_errors=False)}
                                          if rows else {"source": source, "skipped": "no rows yet"})
        except Exception as err:  # noqa: BLE001
            results["anger"][set_name] = {"source": source,
                                          "skipped": f"could not read it ({err.__class__.__name__}: {str(err)[:200]})"}
    results["timings"]["entities_anger_s"] = round(time.monotonic() - t, 1)
    del agent  # the servers below load their own copy

    # ------------------------------------------------------------------ 5: conversations
    results["dialogue"] = {}
    if not args.skip_core:
        t = time.monotonic()
        try:
            core = eval_dialogue.run_core_stories(MODEL, ROOT / "tests" / "stories", RESULTS / "eval_core")
            results["dialogue"]["core_stories"] = core
            if core.get("error"):
                errors["core_stories"] = "rasa test core failed: " + core["error"][-300:]
        except Exception as err:  # noqa: BLE001
            errors["core_stories"] = f"{err.__class__.__name__}: {err}"
            traceback.print_exc()
        results["timings"]["core_stories_s"] = round(time.monotonic() - t, 1)
    if not args.skip_conversations:
        t = time.monotonic()
        try:
            conv = eval_dialogue.run_stack_conversations(ROOT / "tests" / "data" / "conversations.yml",
                                                         run_id=model_hash[:8])
            results["dialogue"]["conversations"] = conv
            (RESULTS / "eval_conversations.json").parent.mkdir(parents=True, exist_ok=True)
            (RESULTS / "eval_conversations.json").write_text(json.dumps(conv, ensure_ascii=False, indent=2))
        except Exception as err:  # noqa: BLE001
            errors["conversations"] = f"{err.__class__.__name__}: {str(err)[:500]}"
            results["dialogue"]["conversations"] = {"error": errors["conversations"]}
            traceback.print_exc()
        results["timings"]["conversations_s"] = round(time.monotonic() - t, 1)

    # ------------------------------------------------------------------ report
    if MODEL.exists() and sha256(MODEL) != model_hash:
        errors["model_changed"] = "models/assistant.tar.gz changed while the evaluation ran; re-run it."
    results["targets"] = eval_report.evaluate_targets(results)
    results["meta"]["seconds"] = round(time.monotonic() - started, 1)
    clean = eval_nlu.strip_private(results)
    # transcripts are long: keep them in results/eval_conversations.json, not in the docs
    conv = (clean.get("dialogue") or {}).get("conversations") or {}
    for r in conv.get("results") or []:
        r.pop("transcript", None)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "evaluation.json").write_text(json.dumps(clean, ensure_ascii=False, indent=2) + "\n")
    (out_dir / "EVALUATION.md").write_text(eval_report.render(clean) + "\n")
    print_headline(clean, out_dir)
    return 1 if errors else 0


def print_headline(res: dict, out_dir: Path) -> None:
    from eval_report import num, pct

    print()
    print(f"== evaluation  {res['meta']['date']}  commit {res['meta']['commit']}  "
          f"model sha256 {res['meta']['model_sha256'][:12]}  ({res['meta']['seconds']:.0f} s)")
    for lang, h in sorted((res.get("heldout") or {}).items()):
        print(f"held-out {lang}: macro-F1 {num(h['macro_f1'])}  accuracy {num(h['accuracy'])}  "
              f"(n={h['n']}, in-scope fallback {pct(h['in_scope_fallback_rate'])})")
    for key, e in (res.get("external") or {}).items():
        print(f"{key:7s}: in-scope recall {num(e['in_scope_recall'])}  macro-F1 {num(e['macro_f1'])}  "
              f"OOS rejection {num(e['oos_rejection'])}  false-accept {num(e['oos_false_accept'])}  "
              f"(in-scope {e['n_in_scope']}, OOS {e['n_out_of_scope']})")
        if key == "bitext":
            print("         by tag: " + "  ".join(
                f"{name}: recall {num(t['in_scope_recall'])} rej {num(t['oos_rejection'])}"
                for name, t in e["by_tag"].items()))
    for lang, c in sorted((res.get("clarification") or {}).items()):
        print(f"clarify {lang}: routed within two turns {num(c['service']['routed_within_two_turns'])} "
              f"(first turn {num(c['service']['routed_first_turn'])}, asked {pct(c['service']['clarified'])}; "
              f"all in-scope {num(c['in_scope']['routed_within_two_turns'])})  ECE {num(c['reliability']['ece'])}")
    for key, f in (res.get("formats") or {}).items():
        print(f"{key}: {num(f['accepted'])} of {f['n']} accepted and normalised ({f['groups']} groups)")
    for set_name, block in (res.get("entities") or {}).items():
        if block.get("skipped"):
            print(f"entities {set_name}: skipped ({block['skipped']})")
            continue
        for lang, s in block["by_language"].items():
            parts = [f"{ent} {num(d['exact']['f1'])}" for ent, d in s["per_entity"].items()]
            print(f"entities {set_name} {lang}: exact F1 " + ", ".join(parts))
    for set_name, block in (res.get("anger") or {}).items():
        if block.get("skipped"):
            print(f"anger {set_name}: skipped ({block['skipped']})")
            continue
        print(f"anger {set_name}: " + "  ".join(
            f"{lang} P {num(block[lang]['precision'])} R {num(block[lang]['recall'])} F1 {num(block[lang]['f1'])}"
            for lang in sorted(k for k in block if k in ("zh", "en", "all"))))
    dia = res.get("dialogue") or {}
    core = dia.get("core_stories") or {}
    if core and not core.get("error"):
        print(f"test stories: {core['passed']}/{core['total']} passed")
    conv = (dia.get("conversations") or {}).get("summary")
    if conv:
        print("conversations: " + "  ".join(
            f"{lang} {d['passed']}/{d['total']}" + (f" (failed: {', '.join(d['failed'])})" if d["failed"] else "")
            for lang, d in sorted(conv["by_language"].items())))
    print("targets: " + "; ".join(f"{t['id']} {num(t['value'])} {t['status'].upper()}" for t in res["targets"]))
    for name, err in (res.get("errors") or {}).items():
        print(f"ERROR in {name}: {err}")
    print(f"wrote {out_dir / 'EVALUATION.md'}, {out_dir / 'evaluation.json'}, "
          f"{out_dir / 'confusion_zh.png'}, {out_dir / 'confusion_en.png'}")


if __name__ == "__main__":
    sys.exit(main())
