"""The bilingual message catalogue: every text the bot says, in Chinese and English (bot/texts.yml)."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import yaml

TEXTS_FILE = Path(__file__).resolve().parent / "texts.yml"
LANGUAGES = ("zh", "en")


class Texts:
    def __init__(self, catalogue: dict[str, dict[str, object]]):
        for key, entry in catalogue.items():
            missing = [lang for lang in LANGUAGES if not entry.get(lang)]
            if missing:
                raise ValueError(f"text {key!r} lacks {', '.join(missing)}")
        self._catalogue = catalogue

    def __contains__(self, key: str) -> bool:
        return key in self._catalogue

    def keys(self):
        return self._catalogue.keys()

    def get(self, key: str, lang: str, **values) -> str:
        entry = self._catalogue[key][lang if lang in LANGUAGES else "zh"]
        text = entry if isinstance(entry, str) else entry[0]
        return text.format(**values) if values else text

    def variants(self, key: str, lang: str) -> list[str]:
        entry = self._catalogue[key][lang if lang in LANGUAGES else "zh"]
        return [entry] if isinstance(entry, str) else list(entry)


@lru_cache(maxsize=2)
def load_texts(path: Path = TEXTS_FILE) -> Texts:
    return Texts(yaml.safe_load(Path(path).read_text(encoding="utf-8")))
