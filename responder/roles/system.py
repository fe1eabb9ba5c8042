"""System plumbing every role shares: descriptors, signals, sockets, a metrics port."""

import logging
import resource
import signal
import socket
from collections.abc import Awaitable, Callable

import trio

log = logging.getLogger("revocd.service")


def raise_fd_limit() -> int:
    """Lift the soft open-files limit to the hard one: every connection is a descriptor."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


async def stop_on_signals(scope: trio.CancelScope) -> None:
    """SIGTERM (systemd, container runtimes) and SIGINT (Ctrl-C) stop revocd cleanly: the
    nursery unwinds, so the embedded store and the workers are stopped too. Receiving
    SIGINT here, rather than as trio's KeyboardInterrupt, matters: KeyboardInterrupt is
    raised inside whatever code runs at that instant, and a library that swallows it
    leaves the service running."""
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for signum in signals:
            log.info("%s: stopping", signal.Signals(signum).name)
            scope.cancel()
            return


async def until_signalled(main: Callable[[], Awaitable[None]]) -> None:
    """Run `main` until it returns or SIGTERM/SIGINT arrives."""
    async with trio.open_nursery() as nursery:
        nursery.start_soon(stop_on_signals, nursery.cancel_scope)
        await main()
        nursery.cancel_scope.cancel()


def data_socket(host: str, port: int, reuse_port: bool) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(4096)
    return sock


def serve_metrics(port: int | None, host: str) -> None:
    """/metrics for `revocd presign` and `revocd crl run`, which have no control plane."""
    if port is not None:
        from prometheus_client import start_http_server

        start_http_server(port, host)
        log.info("metrics on http://%s:%d/metrics", host, port)
