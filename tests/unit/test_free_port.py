"""free_port hands out listener ports that outgoing connections cannot take.

A CI run failed because a port reserved by asking the kernel for port 0 was an
ephemeral port, and revocd's own connection to its store was given it as its
local end before hypercorn bound it.
"""

import socket

from responder.store import embedded
from responder.store.embedded import free_port


def test_ports_lie_below_the_ephemeral_range_and_are_bindable() -> None:
    low = embedded._ephemeral_low()
    ports = [free_port() for _ in range(50)]
    assert len(set(ports)) == len(ports), "a port was handed out twice"
    for port in ports:
        assert embedded._LOWEST <= port < low
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", port))


def test_a_port_in_use_is_never_returned() -> None:
    # Occupy a stretch of ports and make sure none of them comes back.
    held = []
    try:
        for _ in range(20):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", free_port()))
            s.listen()
            held.append(s)
        busy = {s.getsockname()[1] for s in held}
        for _ in range(200):
            assert free_port() not in busy
    finally:
        for s in held:
            s.close()
