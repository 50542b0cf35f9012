"""Settings from the environment the Deployment sets, checked before anything starts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping


class ConfigError(Exception):
    """Every bad variable at once, one per line."""


def _integer(env: Mapping[str, str], name: str, default: int, low: int, high: int,
             errors: list[str]) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if raw.isascii() and raw.isdigit() and low <= int(raw) <= high:
        return int(raw)
    errors.append(f"{name} must be a whole number from {low} to {high}, got {raw!r}")
    return default


@dataclass(frozen=True)
class Settings:
    write_host: str
    read_host: str
    redis_port: int = 6379
    journal_entries: int = 10
    password_file: str = "/etc/redis-passwd/passwd"
    listen_host: str = "0.0.0.0"
    port: int = 8080
    # Connect and read timeout of every Redis call: long enough for a loaded
    # server, short enough that a request fails with 503 well before a client or
    # the ingress gives up.
    redis_timeout: float = 2.0

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "Settings":
        errors: list[str] = []
        hosts = {}
        for name in ("REDIS_WRITE_HOST", "REDIS_READ_HOST"):
            hosts[name] = env.get(name, "").strip()
            if not hosts[name]:
                errors.append(f"{name} must be set to a Redis host name")
        settings = cls(
            write_host=hosts["REDIS_WRITE_HOST"],
            read_host=hosts["REDIS_READ_HOST"],
            redis_port=_integer(env, "REDIS_PORT", 6379, 1, 65535, errors),
            journal_entries=_integer(env, "JOURNAL_ENTRIES", 10, 1, 10000, errors),
            password_file=env.get("REDIS_PASSWORD_FILE", "").strip() or cls.password_file,
            # Tests listen on loopback only; the pod listens on every interface.
            listen_host=env.get("LISTEN_HOST", "").strip() or cls.listen_host,
            port=_integer(env, "PORT", 8080, 1, 65535, errors),
        )
        if errors:
            raise ConfigError("\n".join(errors))
        return settings
