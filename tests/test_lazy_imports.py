"""TensorFlow deferred in the Rasa server (bot/rasa_runtime/lazy_imports.py, bot/serve.py): not run while our model serves, the
real module as soon as anything reads it. Each case runs in a fresh interpreter (an import happens once a process)."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from bot.settings import ROOT
from tests.stack import MODEL

pytestmark = pytest.mark.slow


def run(code: str, defer: str = "1") -> list[str]:
    """`code` in a fresh interpreter prepared as the server launcher prepares it (BOT_DEFER_TENSORFLOW=`defer`)."""
    prelude = "import sys\nfrom bot import serve\nfrom bot.rasa_runtime import lazy_imports\nserve.prepare()\n"
    out = subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code)], cwd=ROOT, capture_output=True,
                         text=True, timeout=600, env=dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="3",
                                                          SQLALCHEMY_SILENCE_UBER_WARNING="1",
                                                          BOT_DEFER_TENSORFLOW=defer))
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout.strip().splitlines()


def test_importing_does_not_run_tensorflow_and_reading_it_does():
    lines = run("""
        import tensorflow as tf
        import rasa.utils.train_utils
        import rasa.utils.train_utils  # a second import reads the module's spec: still not run
        from rasa.nlu.extractors.crf_entity_extractor import CRFEntityExtractor
        print(lazy_imports.loaded(), lazy_imports.loaded("rasa.utils.train_utils"))
        print(int(tf.constant(41).numpy()) + 1, lazy_imports.loaded(), type(tf).__name__)
        from rasa.utils.train_utils import rank_and_mask
        from rasa.utils.tensorflow.models import RasaModel
        print(issubclass(RasaModel, tf.keras.Model), lazy_imports.loaded("rasa.utils.train_utils"))
    """)
    assert lines[-3:] == ["False False", "42 True module", "True True"]


def test_a_submodule_imported_first_runs_its_package_once():
    lines = run("""
        import tensorflow as tf
        import tensorflow.compat.v1 as v1
        print(lazy_imports.loaded(), v1.__name__, tf.compat.v1 is v1, sys.modules["tensorflow.compat"] is tf.compat)
        print(v1.__spec__.name, type(v1.__spec__.loader).__name__ != "_ImportedLoader")
        print(int(v1.constant(2).numpy()))
    """)
    assert lines[-3:] == ["True tensorflow.compat.v1 True True", "tensorflow.compat.v1 True", "2"]


def test_without_it_rasa_imports_tensorflow():
    # The control: the same imports with BOT_DEFER_TENSORFLOW=0 load TensorFlow.
    lines = run("""
        from rasa.nlu.extractors.crf_entity_extractor import CRFEntityExtractor
        print(type(sys.modules['tensorflow']).__name__)
    """, defer="0")
    assert lines[-1] == "module"


@pytest.mark.skipif(not MODEL.exists(), reason="needs the trained model (make train)")
def test_our_model_serves_without_tensorflow_and_keeps_its_train_schema():
    lines = run(f"""
        import asyncio, json, tarfile
        from rasa.core.agent import Agent
        from rasa.engine.graph import GraphSchema
        agent = Agent.load({str(MODEL)!r})
        parsed = asyncio.run(agent.parse_message("我的冰箱不制冷了"))
        import thinc.compat  # spaCy's layer library, imported as if TensorFlow were not installed (bot/serve.py)
        print(parsed["intent"]["name"], lazy_imports.loaded(), thinc.compat.has_tensorflow)
        # The train schema, read when first needed, is the one in the archive.
        with tarfile.open({str(MODEL)!r}) as archive:
            member = next(m for m in archive.getmembers() if m.name.endswith("metadata.json"))
            stored = json.load(archive.extractfile(member))["train_schema"]
        schema = agent.processor.model_metadata.train_schema
        print(isinstance(schema, GraphSchema), schema.as_dict() == GraphSchema.from_dict(stored).as_dict())
        print(agent.processor.model_metadata.as_dict()["train_schema"] == schema.as_dict(), lazy_imports.loaded())
    """)
    assert lines[-3:] == ["request_repair False False", "True True", "True True"]
