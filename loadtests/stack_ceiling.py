"""The fastest this stack can answer: trio + httptools returning fixed bytes.

Started by bench_http.py next to revocd, so the table shows how much of the gap to
nginx is the stack itself and how much is revocd's own work per request.

    python loadtests/stack_ceiling.py PORT BODY_BYTES
"""

import contextlib
import sys

import httptools
import trio


class _Count:
    def __init__(self) -> None:
        self.complete = 0
        self.keep_alive = True
        self.parser: httptools.HttpRequestParser | None = None

    def on_message_complete(self) -> None:
        self.complete += 1
        assert self.parser is not None
        self.keep_alive = self.parser.should_keep_alive()


def main() -> None:
    port, size = int(sys.argv[1]), int(sys.argv[2])
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/ocsp-response\r\nContent-Length: %d\r\n"
    keep = head % size + b"\r\n" + b"x" * size
    close = head % size + b"Connection: close\r\n\r\n" + b"x" * size

    async def handler(stream: trio.SocketStream) -> None:
        state = _Count()
        state.parser = httptools.HttpRequestParser(state)
        try:
            while data := await stream.receive_some(65536):
                state.parser.feed_data(data)
                if state.complete:
                    if not state.keep_alive:
                        await stream.send_all(close)
                        return
                    await stream.send_all(keep * state.complete)
                    state.complete = 0
        except (trio.BrokenResourceError, httptools.HttpParserError):
            pass

    with contextlib.suppress(KeyboardInterrupt):
        trio.run(trio.serve_tcp, handler, port)


if __name__ == "__main__":
    main()
