"""Ports for the servers the tests start: loopback only, chosen by the kernel, so parallel
runs never collide on a fixed port."""

import socket


def free_port() -> int:
    """A loopback port nobody listens on right now (a caller that binds it later retries
    if someone took it in between)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
