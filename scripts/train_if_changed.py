"""Train the model only when what it is built from changed; the fingerprint sits next to the model."""
from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "models" / "assistant.tar.gz"
FINGERPRINT = ROOT / "models" / "fingerprint.json"
SOURCES = ["config.yml", "domain.yml", "data/nlu", "data/rules.yml", "data/stories", "bot/nlu", "bot/policies"]


def fingerprint() -> str:
    digest = hashlib.sha256()
    for source in SOURCES:
        path = ROOT / source
        files = sorted(p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts) if path.is_dir() else [path]
        for file in files:
            if file.exists():
                digest.update(str(file.relative_to(ROOT)).encode())
                digest.update(file.read_bytes())
    return digest.hexdigest()


def main() -> int:
    current = fingerprint()
    if MODEL.exists() and FINGERPRINT.exists() and json.loads(FINGERPRINT.read_text()).get("sha256") == current:
        print(f"model is up to date ({MODEL.relative_to(ROOT)}), not retraining")
        return 0
    started = time.monotonic()
    # `rasa train` through the server's launcher (bot/serve.py), so that bot/rasa_runtime/ applies to training too.
    cmd = [sys.executable, "-m", "bot.serve", "train", "--fixed-model-name", "assistant", "--out", "models",
           "--config", "config.yml", "--domain", "domain.yml", "--data", "data"]
    print("training:", " ".join(cmd[3:]), flush=True)
    result = subprocess.run(cmd, cwd=ROOT)
    if result.returncode != 0:
        return result.returncode
    seconds = time.monotonic() - started
    FINGERPRINT.write_text(json.dumps({"sha256": current, "trained_seconds": round(seconds, 1)}))
    print(f"trained in {seconds:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
