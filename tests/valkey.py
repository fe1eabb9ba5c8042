"""Real valkey-server processes for tests: standalone and a 3-master cluster."""

import socket
import time
from pathlib import Path

from responder.store.embedded import ValkeyProcess, free_port

SLOTS = 16384


def command(port: int, *args: str | int, password: str = "") -> bytes:
    """Send one command over raw RESP and return the raw reply (enough for set-up)."""

    def enc(*parts: str | int) -> bytes:
        out = b"*%d\r\n" % len(parts)
        for p in parts:
            b = str(p).encode()
            out += b"$%d\r\n%s\r\n" % (len(b), b)
        return out

    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        payload = (enc("AUTH", password) if password else b"") + enc(*args)
        s.sendall(payload)
        time.sleep(0.05)
        data = b""
        s.settimeout(0.5)
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
                if data.endswith(b"\r\n"):
                    break
        except TimeoutError:
            pass
        return data


def start_cluster(base: Path, masters: int = 3) -> list[ValkeyProcess]:
    nodes = []
    for i in range(masters):
        d = base / f"node{i}"
        node = ValkeyProcess(
            d,
            extra_config={
                "cluster-enabled": "yes",
                "cluster-config-file": str(d / "nodes.conf"),
                "cluster-node-timeout": "2000",
                # the default bus port (port + 10000) may be taken or out of range
                "cluster-port": str(free_port()),
            },
        ).start()
        nodes.append(node)
    per = SLOTS // masters
    for i, node in enumerate(nodes):
        first = i * per
        last = SLOTS - 1 if i == masters - 1 else first + per - 1
        assert b"+OK" in command(node.port, "CLUSTER", "ADDSLOTSRANGE", first, last)
    for node in nodes[1:]:
        bus = node.extra_config["cluster-port"]
        assert b"+OK" in command(nodes[0].port, "CLUSTER", "MEET", "127.0.0.1", node.port, bus)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        infos = [command(n.port, "CLUSTER", "INFO") for n in nodes]
        known = b"cluster_known_nodes:%d" % masters
        if all(b"cluster_state:ok" in info and known in info for info in infos):
            return nodes
        time.sleep(0.1)
    raise RuntimeError("cluster did not converge")


def cluster_url(nodes: list[ValkeyProcess]) -> str:
    return "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in nodes)
