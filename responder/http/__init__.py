"""The data plane's HTTP/1.x: `protocol` parses and serialises with no I/O, `server`
runs it on trio sockets with deadlines and connection caps."""

from .protocol import Limits, ProtocolError, Request, Response, http_date, plain, serialize
from .server import HttpServer

__all__ = [
    "HttpServer",
    "Limits",
    "ProtocolError",
    "Request",
    "Response",
    "http_date",
    "plain",
    "serialize",
]
