"""`python -m bot.serve run ...` is `rasa run ...` for the Rasa server (scripts/run.sh starts it this way).

Two differences, both about memory (docs/PERFORMANCE.md, changes 11 and 20):
- JAX is not imported. TensorFlow imports JAX, if installed, only for its TFLite converter; `import jax` raises
  ImportError here, which TensorFlow handles.
- TensorFlow is imported when something first uses it, not at start (bot/lazy_imports.py). Rasa imports it whatever
  the pipeline, and ours has no TensorFlow model; a model that has one gets it when it is loaded. thinc (spaCy's
  layer library) is imported as if TensorFlow were not installed: it would import it only to offer TensorFlow
  layers, which blank spaCy pipelines do not use.
`BOT_DEFER_TENSORFLOW=0` turns the second off.

And the issue 18 fixes to Rasa's message processor (bot/hardening.py): a failed action call gets a plain answer and
the message is kept, not silence; nothing (not even /restart) is handled while a person holds the conversation.
Every log line is masked for personal data (bot/pii.py), in this process and, through actions/__init__.py, in the
action server. The app also serves /healthz, /readyz and /metrics, and logs JSON lines on stdout in the cluster
profile (bot/observability.py).
"""
from __future__ import annotations

import os
import sys


def prepare() -> None:
    """What the launcher does before Rasa is imported."""
    from bot.pii import install_log_masking

    install_log_masking()  # no phone number or address in any log line (bot/pii.py)
    sys.modules.setdefault("jax", None)  # type: ignore[arg-type]  # makes `import jax` raise ImportError
    if os.environ.get("BOT_DEFER_TENSORFLOW", "1") != "0":
        from bot import lazy_imports

        lazy_imports.import_without("thinc.compat", "tensorflow")
        lazy_imports.install()
        lazy_imports.defer_train_schema()


def main() -> None:
    prepare()
    from bot import hardening

    hardening.apply()
    from bot import observability

    observability.patch_rasa_app()  # /healthz, /readyz, /metrics; JSON logs in the cluster profile
    from rasa.__main__ import main as rasa_main

    sys.argv[0] = "rasa"
    rasa_main()


if __name__ == "__main__":
    main()
