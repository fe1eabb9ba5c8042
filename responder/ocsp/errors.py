"""Errors raised by the OCSP protocol core."""


class MalformedRequest(ValueError):
    """The bytes are not an OCSP request revocd accepts.

    The message names what is wrong; the caller answers `malformedRequest`
    (RFC 6960 section 4.2.1) and never echoes the message to the client.
    """
