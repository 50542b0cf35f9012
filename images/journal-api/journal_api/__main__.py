"""python3 -m journal_api: serve until SIGTERM, then finish in-flight requests and exit 0
(see serving.py for the bounds)."""

import sys

sys.dont_write_bytecode = True  # read-only root filesystem (see __init__.py)

import os  # noqa: E402
import signal  # noqa: E402
import threading  # noqa: E402

from .config import ConfigError, Settings  # noqa: E402
from .server import build_server, log  # noqa: E402


def main() -> int:
    try:
        settings = Settings.from_env(os.environ)
    except ConfigError as exc:
        log(f"journal-api: invalid configuration:\n{exc}")
        return 2
    try:
        from .store import open_journal
    except ModuleNotFoundError as exc:
        if exc.name != "redis":
            raise
        log("journal-api: the redis module is missing: install Debian's python3-redis")
        return 1
    try:
        server = build_server(settings, open_journal(settings))
    except OSError as exc:
        log(f"journal-api: cannot listen on {settings.listen_host}:{settings.port}: {exc.strerror}")
        return 1

    stopping = threading.Event()

    def stop(signum: int, _frame: object) -> None:
        stopping.set()

    # An Event the serving loop polls: a signal that arrives before serve() starts is
    # not lost.
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if settings.sentinels:
        writes = (f"the master {settings.master_name!r} of Sentinel "
                  + " ".join(f"{host}:{port}" for host, port in settings.sentinels))
    else:
        writes = f"{settings.write_host}:{settings.redis_port}"
    acks = (f", each acknowledged by {settings.min_replica_acks} replica(s) within {settings.ack_timeout_ms} ms"
            if settings.min_replica_acks else "")
    log(f"journal-api: listening on {settings.listen_host}:{server.server_address[1]} "
        f"(writes: {writes}{acks}, "
        f"reads: {settings.read_host}:{settings.redis_port}, entries listed: {settings.journal_entries}, "
        f"write credential: {settings.write_credential_file})")
    # After SIGTERM: stops accepting, finishes the requests in flight, cuts those
    # still arriving at their deadline, within SHUTDOWN_SECONDS.
    if server.serve(stopping):
        log("journal-api: stopped")
        return 0
    log("journal-api: stopped with requests unfinished")
    return 1


if __name__ == "__main__":
    sys.exit(main())
