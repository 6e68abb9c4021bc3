"""LinearIntentClassifier scores messages without scikit-learn's per-call overhead (FastScores); the numbers must be
exactly the pipeline's."""
from __future__ import annotations

import numpy as np
import yaml

from bot.nlu.classifier import FastScores, LinearIntentClassifier, build_pipeline
from bot.settings import ROOT


def examples(paths) -> list[tuple[str, str]]:
    found = []
    for path in paths:
        for item in (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("nlu") or []:
            for line in (item.get("examples") or "").splitlines():
                if line.strip().startswith("- ") and item.get("intent"):
                    found.append((line.strip()[2:], item["intent"]))
    return found


def test_fast_scores_are_exactly_the_pipelines():
    train = examples(sorted((ROOT / "data" / "nlu").rglob("*.yml")))
    heldout = [t for t, _ in examples(sorted((ROOT / "tests" / "data" / "heldout").glob("*.yml")))]
    assert len(train) > 100 and len(heldout) > 50
    pipeline = build_pipeline(LinearIntentClassifier.get_default_config())
    pipeline.fit([t for t, _ in train], np.array([i for _, i in train]))
    fast = FastScores.for_pipeline(pipeline)
    assert fast is not None
    assert np.array_equal(fast(heldout), pipeline.decision_function(heldout))
    for text in heldout[:100] + ["", " ", "😡😡😡", "x" * 5000]:
        assert np.array_equal(fast([text]), pipeline.decision_function([text])), text


def test_another_pipeline_shape_falls_back_to_the_pipeline():
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import make_pipeline
    from sklearn.svm import LinearSVC

    pipeline = make_pipeline(TfidfVectorizer(), LinearSVC()).fit(["apple banana", "cherry durian", "apple cherry"], ["x", "y", "x"])
    assert FastScores.for_pipeline(pipeline) is None
