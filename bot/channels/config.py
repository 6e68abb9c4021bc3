"""Reading a channel's configuration: the environment first, then the channel's block in credentials.yml."""
from __future__ import annotations

from typing import Callable, Mapping


def settings_reader(env: Mapping[str, str], credentials: Mapping | None) -> Callable[[str, str], str | None]:
    """`value(ENV_NAME, key)`: the stripped value of the environment variable, else of `key` in the credentials
    block, else None (empty counts as unset)."""
    creds = credentials or {}

    def value(env_name: str, key: str) -> str | None:
        raw = env.get(env_name) or creds.get(key)
        return (str(raw).strip() or None) if raw not in (None, "") else None

    return value
