"""`python -m bot.serve run ...` is `rasa run ...` for the Rasa server (scripts/run.sh starts it this way).

The one difference: JAX is not imported. Rasa imports TensorFlow whatever the pipeline (ours has no TensorFlow
model), and TensorFlow imports JAX, if installed, only for its TFLite converter; that alone is 66 MB of the Rasa
server's resident memory (docs/PERFORMANCE.md). `import jax` raises ImportError here, which TensorFlow handles.
"""
from __future__ import annotations

import sys


def main() -> None:
    sys.modules.setdefault("jax", None)  # type: ignore[arg-type]  # makes `import jax` raise ImportError
    from rasa.__main__ import main as rasa_main

    sys.argv[0] = "rasa"
    rasa_main()


if __name__ == "__main__":
    main()
