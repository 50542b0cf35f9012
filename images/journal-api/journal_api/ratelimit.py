"""Each client's writes held to a rate: a token bucket per client address.

A client may send `burst` writes at once, then one every 60 / `per_minute` seconds; a
write beyond is refused with the seconds until its next token (and takes none). Every
write the rate lets through counts, those then refused for their credential too: a
client guessing the credential, or a broken script, spends its own budget and no one
else's.

Which client: the edge proxy's word for it. The API takes connections from the edge
proxies only (the stack's NetworkPolicy), and the proxies the stack supports
(ingress-nginx, Traefik, as ingress or Gateway) write the address they take for the
client's (the connection's peer, unless they were told to trust a proxy in front of
them) as the *last* X-Forwarded-For entry: ingress-nginx replaces the header with it,
Traefik appends it to what it keeps. Entries before it are whatever the client sent, and
are never trusted. A request without the header (a test, a port-forward) counts against
its connection's peer.

Memory is bounded: at most `max_clients` buckets, the longest unused dropped first. A
client whose bucket was dropped starts again with a full one, as it would have after
waiting that long anyway, unless a flood of other addresses pushed it out sooner: the
limit is per address, and holds back a client with few of them.

Per pod: with several frontend pods a client's writes spread over them, and each
counts only those it sees.
"""

from __future__ import annotations

import collections
import ipaddress
import threading
import time
from typing import Callable, Sequence

#: Buckets kept at once: about 200 bytes each (an IPv6 address, measured), 2 MB at the most.
MAX_CLIENTS = 10_000


def client_address(peer: str, forwarded_for: Sequence[str]) -> str:
    """The address a request counts against: the last X-Forwarded-For entry (across every
    header line) when it is an address, else the connection's peer."""
    hops = [hop.strip() for line in forwarded_for for hop in line.split(",")]
    try:
        return str(ipaddress.ip_address(hops[-1])) if hops else peer
    except ValueError:
        return peer  # not written by the edge, which writes an address


class WriteRateLimit:
    def __init__(self, per_minute: int, burst: int, max_clients: int = MAX_CLIENTS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute, self.burst = per_minute, burst
        self._per_second = per_minute / 60
        self._max_clients = max_clients
        self._clock = clock
        self._lock = threading.Lock()
        # client -> (tokens, when they were counted); least recently used first.
        self._buckets: collections.OrderedDict[str, tuple[float, float]] = collections.OrderedDict()

    def wait_seconds(self, client: str) -> float:
        """Take one write from `client`'s bucket: 0 when there was one, else how long
        until there will be (nothing is taken then)."""
        now = self._clock()
        with self._lock:
            tokens, counted = self._buckets.pop(client, (self.burst, now))
            tokens = min(self.burst, tokens + (now - counted) * self._per_second)
            if tokens >= 1:
                tokens, wait = tokens - 1, 0.0
            else:
                wait = (1 - tokens) / self._per_second
            self._buckets[client] = (tokens, now)
            if len(self._buckets) > self._max_clients:
                self._buckets.popitem(last=False)
            return wait
