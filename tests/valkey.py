"""Real valkey-server processes for tests: standalone and a 3-master cluster."""

import socket
import subprocess
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
    """`masters` masters sharing the slots, no replicas."""
    return start_replicated_cluster(base, masters, 0)


def cluster_url(nodes: list[ValkeyProcess]) -> str:
    return "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in nodes)


class Sentinel:
    """One valkey-server in sentinel mode (it rewrites its config file, so it gets one)."""

    def __init__(self, directory: Path, primary_port: int, service: str) -> None:
        self.directory = directory
        self.port = free_port()
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "sentinel.conf").write_text(
            f"port {self.port}\nbind 127.0.0.1\ndir {directory}\n"
            f"logfile {directory / 'sentinel.log'}\n"
            f"sentinel monitor {service} 127.0.0.1 {primary_port} 2\n"
            f"sentinel down-after-milliseconds {service} 1000\n"
            f"sentinel failover-timeout {service} 5000\n"
            f"sentinel parallel-syncs {service} 1\n"
        )
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> "Sentinel":
        from responder.store.embedded import valkey_binary

        self.process = subprocess.Popen(
            [str(valkey_binary()), str(self.directory / "sentinel.conf"), "--sentinel"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 20
        while True:
            try:
                if b"PONG" in command(self.port, "PING"):
                    return self
            except OSError:
                pass
            if time.monotonic() > deadline or self.process.poll() is not None:
                log = self.directory / "sentinel.log"
                raise RuntimeError(
                    f"sentinel on {self.port} did not start: "
                    + (log.read_text()[-2000:] if log.exists() else "")
                )
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


def sentinel_primary(sentinel: Sentinel, service: str) -> int | None:
    """The port the sentinel names as the service's primary."""
    reply = command(sentinel.port, "SENTINEL", "get-master-addr-by-name", service)
    parts = [p for p in reply.split(b"\r\n") if p and not p.startswith((b"*", b"$"))]
    return int(parts[1]) if len(parts) == 2 else None


def start_sentinel_group(base: Path, service: str = "revocd") -> tuple[list, list[Sentinel]]:
    """A primary, one replica and three sentinels that agree on both."""
    durable = {"appendonly": "yes", "appendfsync": "always"}
    primary = ValkeyProcess(base / "primary", extra_config=dict(durable)).start()
    replica = ValkeyProcess(
        base / "replica",
        extra_config={**durable, "replicaof": f"127.0.0.1 {primary.port}"},
    ).start()
    sentinels = [Sentinel(base / f"sentinel{i}", primary.port, service).start() for i in range(3)]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        info = command(replica.port, "INFO", "replication")
        known = [command(s.port, "SENTINEL", "replicas", service) for s in sentinels]
        others = [command(s.port, "SENTINEL", "sentinels", service) for s in sentinels]
        if (
            b"master_link_status:up" in info
            and all(str(replica.port).encode() in k for k in known)
            and all(o.startswith(b"*2") for o in others)
        ):
            return [primary, replica], sentinels
        time.sleep(0.2)
    raise RuntimeError("sentinels did not converge")


def cluster_node(directory: Path, port: int = 0, bus: int | None = None) -> ValkeyProcess:
    """One cluster node (ValkeyProcess's defaults: AOF fsynced on every write, as revocd
    requires)."""
    return ValkeyProcess(
        directory,
        port,
        extra_config={
            "cluster-enabled": "yes",
            "cluster-config-file": str(directory / "nodes.conf"),
            "cluster-node-timeout": "2000",
            # Replicas stay with their master, so the tests know the topology they kill in.
            "cluster-allow-replica-migration": "no",
            # the default bus port (port + 10000) may be taken or out of range
            "cluster-port": str(bus if bus is not None else free_port()),
        },
    ).start()


def node_id(port: int) -> str:
    return command(port, "CLUSTER", "MYID").split(b"\r\n")[1].decode()


def cluster_roles(port: int) -> dict[int, tuple[str, str | None]]:
    """port -> (role, master port for a replica) as one node sees the cluster; nodes it
    marks failed are left out."""
    reply = command(port, "CLUSTER", "NODES").decode()
    lines = [line for line in reply.splitlines() if line and not line.startswith("$")]
    ids = {}
    for line in lines:
        parts = line.split()
        ids[parts[0]] = int(parts[1].split("@")[0].rsplit(":", 1)[1])
    out: dict[int, tuple[str, str | None]] = {}
    for line in lines:
        parts = line.split()
        flags = parts[2].split(",")
        if "fail" in flags or "fail?" in flags:
            continue
        role = "master" if "master" in flags else "replica"
        master = str(ids.get(parts[3])) if role == "replica" else None
        out[ids[parts[0]]] = (role, master)
    return out


def start_replicated_cluster(
    base: Path, masters: int = 3, replicas_per_master: int = 2
) -> list[ValkeyProcess]:
    """`masters` masters with the slots, each with `replicas_per_master` replicas."""
    nodes = [cluster_node(base / f"node{i}") for i in range(masters * (1 + replicas_per_master))]
    primaries = nodes[:masters]
    per = SLOTS // masters
    for i, node in enumerate(primaries):
        first = i * per
        last = SLOTS - 1 if i == masters - 1 else first + per - 1
        assert b"+OK" in command(node.port, "CLUSTER", "ADDSLOTSRANGE", first, last)
    for node in nodes[1:]:
        bus = node.extra_config["cluster-port"]
        assert b"+OK" in command(nodes[0].port, "CLUSTER", "MEET", "127.0.0.1", node.port, bus)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if all(
            b"cluster_known_nodes:%d" % len(nodes) in command(n.port, "CLUSTER", "INFO")
            for n in nodes
        ):
            break
        time.sleep(0.1)
    for i, node in enumerate(nodes[masters:]):
        master = primaries[i % masters]
        assert b"+OK" in command(node.port, "CLUSTER", "REPLICATE", node_id(master.port))
    while time.monotonic() < deadline:
        infos = [command(n.port, "CLUSTER", "INFO") for n in nodes]
        synced = all(
            b"master_link_status:up" in command(n.port, "INFO", "replication")
            for n in nodes[masters:]
        )
        if synced and all(b"cluster_state:ok" in info for info in infos):
            return nodes
        time.sleep(0.1)
    raise RuntimeError("replicated cluster did not converge")
