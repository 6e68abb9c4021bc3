"""Reads a customer's account for the facts behind the restatement: symptom, what it cost them, safety, misuse."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import yaml

from bot.settings import ROOT

PROBLEMS_FILE = ROOT / "data" / "problems.yml"


@dataclass(frozen=True)
class Lexicon:
    symptoms: dict          # key -> (label {zh,en}, [compiled])
    impacts: dict
    safety: tuple
    customer_damage: tuple
    unopened: tuple


@dataclass(frozen=True)
class ProblemReading:
    symptoms: tuple[str, ...] = ()
    impacts: tuple[str, ...] = ()
    safety: bool = False
    customer_damage: bool = False
    unopened: bool = False
    error_codes: tuple[str, ...] = field(default=())


def _compile(patterns) -> tuple:
    return tuple(re.compile(p, re.IGNORECASE) for p in patterns)


@lru_cache(maxsize=4)
def load_lexicon(path: Path = PROBLEMS_FILE) -> Lexicon:
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    for section in ("symptoms", "impacts"):
        for key, entry in data[section].items():
            if not entry.get("label", {}).get("zh") or not entry.get("label", {}).get("en"):
                raise ValueError(f"{path}: {section}.{key} needs a zh and an en label")
    return Lexicon(
        symptoms={k: (v["label"], _compile(v["patterns"])) for k, v in data["symptoms"].items()},
        impacts={k: (v["label"], _compile(v["patterns"])) for k, v in data["impacts"].items()},
        safety=_compile(data["safety"]["patterns"]),
        customer_damage=_compile(data["customer_damage"]["patterns"]),
        unopened=_compile(data["unopened"]["patterns"]),
    )


ERROR_CODE = re.compile(r"(?<![A-Za-z0-9])([EeFf]\s?-?\d{1,2})(?![0-9])")


def read_problem(text: str, lexicon: Lexicon | None = None) -> ProblemReading:
    lex = lexicon or load_lexicon()
    text = text or ""
    found = lambda pats: any(p.search(text) for p in pats)  # noqa: E731
    return ProblemReading(
        symptoms=tuple(k for k, (_, pats) in lex.symptoms.items() if found(pats)),
        impacts=tuple(k for k, (_, pats) in lex.impacts.items() if found(pats)),
        safety=found(lex.safety),
        customer_damage=found(lex.customer_damage),
        unopened=found(lex.unopened),
        error_codes=tuple(m.group(1).upper().replace(" ", "").replace("-", "") for m in ERROR_CODE.finditer(text)),
    )


def symptom_label(key: str, lang: str, lexicon: Lexicon | None = None) -> str:
    lex = lexicon or load_lexicon()
    return lex.symptoms[key][0][lang] if key in lex.symptoms else key


def impact_label(key: str, lang: str, lexicon: Lexicon | None = None) -> str:
    lex = lexicon or load_lexicon()
    return lex.impacts[key][0][lang] if key in lex.impacts else key
