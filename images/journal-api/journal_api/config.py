"""Settings from the environment the Deployment sets, checked before anything starts."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Mapping

HOST = re.compile(r"[0-9A-Za-z._-]+|\[[0-9A-Fa-f:.]+\]")
MASTER_NAME = re.compile(r"[0-9A-Za-z._-]{1,64}")
USERNAME = re.compile(r"[0-9A-Za-z._-]{1,64}")


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


def _sentinels(raw: str, errors: list[str]) -> tuple[tuple[str, int], ...]:
    """REDIS_SENTINELS: `host:port` addresses separated by spaces (an IPv6 address in brackets)."""
    addresses = []
    for item in raw.split():
        host, _, port = item.rpartition(":")
        if HOST.fullmatch(host) and port.isascii() and port.isdigit() and 1 <= int(port) <= 65535:
            addresses.append((host.strip("[]"), int(port)))
        else:
            errors.append(f"REDIS_SENTINELS must be host:port addresses separated by spaces, got {item!r}")
    return tuple(addresses)


@dataclass(frozen=True)
class Settings:
    write_host: str
    read_host: str
    redis_port: int = 6379
    journal_entries: int = 10
    password_file: str = "/etc/redis-passwd/passwd"
    # The Redis user (ACL) to authenticate as, on the servers and the Sentinels alike;
    # empty: the password alone (AUTH <password>, Redis's `default` user).
    username: str = ""
    listen_host: str = "0.0.0.0"
    port: int = 8080
    # Connect and read timeout of every Redis call: long enough for a loaded
    # server, short enough that a request fails with 503 well before a client or
    # the ingress gives up.
    redis_timeout: float = 2.0
    # Empty: writes go to write_host. Otherwise writes go to the master of
    # master_name, as these Sentinels name it.
    sentinels: tuple[tuple[str, int], ...] = ()
    master_name: str = "journal"
    # Every write waits for this many replicas to acknowledge it (WAIT), for at most
    # ack_timeout_ms; fewer in time, and the request fails.
    min_replica_acks: int = 0
    ack_timeout_ms: int = 1000
    # What POST and DELETE must present as `Authorization: Bearer <credential>`: a file,
    # the mounted Secret, re-read when it changes (auth.py).
    write_credential_file: str = "/etc/journal-write/credential"
    # Each client's writes (POST and DELETE, those refused for their credential too): a
    # bucket of write_burst refilled at writes_per_minute (ratelimit.py).
    writes_per_minute: int = 60
    write_burst: int = 20

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "Settings":
        errors: list[str] = []
        sentinels = _sentinels(env.get("REDIS_SENTINELS", ""), errors)
        write_host, read_host = env.get("REDIS_WRITE_HOST", "").strip(), env.get("REDIS_READ_HOST", "").strip()
        # Through Sentinel, writes need no write host.
        if not write_host and not env.get("REDIS_SENTINELS", "").strip():
            errors.append("REDIS_WRITE_HOST must be set to a Redis host name (or REDIS_SENTINELS to Sentinels)")
        if not read_host:
            errors.append("REDIS_READ_HOST must be set to a Redis host name")
        master_name = env.get("REDIS_MASTER_NAME", "").strip() or cls.master_name
        if not MASTER_NAME.fullmatch(master_name):
            errors.append(f"REDIS_MASTER_NAME must be 1 to 64 letters, digits, '.', '_' or '-', got {master_name!r}")
        username = env.get("REDIS_USERNAME", "").strip()
        if username and not USERNAME.fullmatch(username):
            errors.append(f"REDIS_USERNAME must be 1 to 64 letters, digits, '.', '_' or '-', got {username!r}")
        settings = cls(
            write_host=write_host,
            read_host=read_host,
            redis_port=_integer(env, "REDIS_PORT", 6379, 1, 65535, errors),
            journal_entries=_integer(env, "JOURNAL_ENTRIES", 10, 1, 10000, errors),
            password_file=env.get("REDIS_PASSWORD_FILE", "").strip() or cls.password_file,
            username=username,
            # Tests listen on loopback only; the pod listens on every interface.
            listen_host=env.get("LISTEN_HOST", "").strip() or cls.listen_host,
            port=_integer(env, "PORT", 8080, 1, 65535, errors),
            sentinels=sentinels,
            master_name=master_name,
            min_replica_acks=_integer(env, "REDIS_MIN_REPLICA_ACKS", 0, 0, 100, errors),
            # Never 0: WAIT's 0 means "block forever".
            ack_timeout_ms=_integer(env, "REDIS_ACK_TIMEOUT_MS", 1000, 1, 60000, errors),
            write_credential_file=env.get("WRITE_CREDENTIAL_FILE", "").strip() or cls.write_credential_file,
            writes_per_minute=_integer(env, "WRITES_PER_MINUTE", cls.writes_per_minute, 1, 60000, errors),
            write_burst=_integer(env, "WRITE_BURST", cls.write_burst, 1, 10000, errors),
        )
        if errors:
            raise ConfigError("\n".join(errors))
        return settings
