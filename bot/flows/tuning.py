"""The script's tuning numbers (anger cut-offs, how many rejections, failed answers, hot turns ...), from
data/seed/script.yml, validated when loaded: a bad value stops start-up with a message naming it."""
from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

import yaml

from bot.settings import ROOT

DEFAULT_PATH = ROOT / "data" / "seed" / "script.yml"


@dataclass(frozen=True)
class Tuning:
    anger_upset: float = 0.5
    anger_hot: float = 0.6
    anger_escalate: float = 0.8
    hot_turns_to_supervisor: int = 2
    rejections_before_person: int = 2
    failed_attempts_per_fact: int = 2
    confirm_tries: int = 3
    fallbacks_before_person: int = 3
    status_failures_before_person: int = 2
    low_rating: int = 2


class TuningError(ValueError):
    pass


def _flat(raw: dict) -> dict:
    values = {k: v for k, v in raw.items() if k not in ("anger", "version")}
    anger = raw.get("anger") or {}
    if not isinstance(anger, dict):
        raise TuningError("anger: must be a mapping of upset / hot / escalate")
    values.update({f"anger_{k}": v for k, v in anger.items()})
    return values


def parse_tuning(raw: dict, source: str = "script.yml") -> Tuning:
    if not isinstance(raw, dict) or raw.get("version") != 1:
        raise TuningError(f"{source}: expected a mapping with version: 1")
    values = _flat(raw)
    known = {f.name: f for f in fields(Tuning)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise TuningError(f"{source}: unknown setting(s) {', '.join(unknown)}")
    for name, value in values.items():
        kind = known[name].type
        if kind == "float":
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 < value <= 1.0:
                raise TuningError(f"{source}: {name} must be a number in (0, 1], got {value!r}")
            values[name] = float(value)
        elif isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 20:
            raise TuningError(f"{source}: {name} must be a whole number from 1 to 20, got {value!r}")
    tuning = Tuning(**values)
    if not tuning.anger_upset <= tuning.anger_hot <= tuning.anger_escalate:
        raise TuningError(f"{source}: anger levels must rise: upset <= hot <= escalate")
    if tuning.low_rating > 4:
        raise TuningError(f"{source}: low_rating must be from 1 to 4 (scores are 1..5)")
    return tuning


def load_tuning(path: Path | None = None) -> Tuning:
    """The tuning file in the seed directory, else the project's own (data/seed/script.yml)."""
    path = Path(path) if path is not None and Path(path).exists() else DEFAULT_PATH
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise TuningError(f"{path}: not valid YAML ({exc})") from exc
    return parse_tuning(raw, str(path))
