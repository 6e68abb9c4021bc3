"""One typed settings object, read from the environment once in `load_settings()` and passed around."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Settings:
    database_url: str
    var_dir: Path
    timezone: ZoneInfo
    policy_path: Path
    seed_dir: Path
    roster_path: Path
    first_response_hours: int = 2
    resolution_hours: int = 48
    follow_up_hours: int = 24
    visit_promise_hours: int = 24
    anger_escalation: float = 0.8
    action_timeout_seconds: float = 10.0
    retention_days: int = 365  # transcripts and attachments of closed cases (`python -m bot privacy purge`)
    environment: str = "development"
    extra: dict = field(default_factory=dict)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


def _int(env: dict, name: str, default: int) -> int:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise SystemExit(f"{name} must be a whole number, got {raw!r}") from exc


def _path(raw: str | None) -> Path | None:
    """A configured path; relative ones are taken from the project root."""
    if not raw:
        return None
    path = Path(raw)
    return path if path.is_absolute() else ROOT / path


def load_settings(env: dict | None = None) -> Settings:
    env = dict(os.environ if env is None else env)
    var_dir = Path(env.get("BOT_VAR_DIR") or ROOT / "var")
    database_url = env.get("BOT_DATABASE_URL") or f"sqlite:///{var_dir / 'service.db'}"
    tz_name = env.get("BOT_TIMEZONE") or "Asia/Shanghai"
    try:
        tz = ZoneInfo(tz_name)
    except Exception as exc:  # zoneinfo raises several types for bad keys
        raise SystemExit(f"BOT_TIMEZONE {tz_name!r} is not a known time zone") from exc
    seed_dir = Path(env.get("BOT_SEED_DIR") or ROOT / "data" / "seed")
    return Settings(
        database_url=database_url,
        var_dir=var_dir,
        timezone=tz,
        policy_path=Path(env.get("BOT_POLICY_FILE") or ROOT / "data" / "policy" / "warranty.yml"),
        seed_dir=seed_dir,
        roster_path=_path(env.get("BOT_ROSTER_FILE")) or seed_dir / "engineers.yml",
        first_response_hours=_int(env, "BOT_SLA_FIRST_RESPONSE_HOURS", 2),
        resolution_hours=_int(env, "BOT_SLA_RESOLUTION_HOURS", 48),
        follow_up_hours=_int(env, "BOT_FOLLOW_UP_HOURS", 24),
        visit_promise_hours=_int(env, "BOT_VISIT_PROMISE_HOURS", 24),
        retention_days=_int(env, "BOT_RETENTION_DAYS", 365),
        environment=env.get("BOT_ENV", "development"),
    )
