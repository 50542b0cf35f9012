"""What a request can fail with on the Redis side, as the HTTP layer answers it (503).

Nothing here imports redis: the HTTP layer (server.py) and the tests that read its
limits load without the client library.
"""

from __future__ import annotations


class StoreFailure(Exception):
    """Base of the failures below."""


class Unavailable(StoreFailure):
    """Redis could not be reached, did not answer in time, or spoke something else than RESP.

    The message names the server and the reason, never the password.
    """


class ReplyError(StoreFailure):
    """Redis refused the command; only its error class (READONLY, OOM, WRONGPASS...) is kept."""

    def __init__(self, kind: str, detail: str = "") -> None:
        super().__init__(f"{kind}{': ' + detail if detail else ''}")
        self.kind = kind
        self.detail = detail


class NotAcknowledged(ReplyError):
    """The write reached the master, but fewer replicas than required confirmed it in time.

    Whether it survives is not known, so the request fails; for a new entry, its id is
    never reported.
    """

    def __init__(self, acknowledged: int, required: int, timeout_ms: int) -> None:
        super().__init__("NOREPLICAS", f"the write was not acknowledged by a replica in time "
                                       f"({acknowledged} of {required} within {timeout_ms} ms)")
