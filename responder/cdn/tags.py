"""Cache tags: the names a CDN files each response under, so one purge request can
drop every cached answer of a certificate (whatever GET URL spelling it was fetched
by), of an issuer, a CRL shard or an issuer's AIA files.

Pure: names and header lines from values. Tags are short ASCII words (issuer names are
already [a-z0-9_-]), the same in every provider's header, so a purge built for one
CDN's tags means the same for another's.
"""

from dataclasses import dataclass

from ..config.model import TagHeader

PREFIX = "rv"


def issuer_tag(issuer: str) -> str:
    """Everything of one issuer: answers, CRLs, AIA."""
    return f"{PREFIX}-{issuer}"


def serial_tag(issuer: str, serial: int) -> str:
    """Every cached answer about one certificate (lowercase hex, as the store spells it)."""
    return f"{PREFIX}-{issuer}-s-{serial:x}"


def crl_tag(issuer: str, shard: int) -> str:
    return f"{PREFIX}-{issuer}-crl-{shard}"


def crl_list_tag(issuer: str) -> str:
    """The issuer's CCADB JSON list of CRL URLs."""
    return f"{PREFIX}-{issuer}-crls"


def aia_tag(issuer: str) -> str:
    return f"{PREFIX}-{issuer}-aia"


# How each header separates its tags (Fastly and xkey: spaces; Cloudflare and Akamai:
# commas).
_SEPARATOR = {
    TagHeader.XKEY: b" ",
    TagHeader.SURROGATE_KEY: b" ",
    TagHeader.CACHE_TAG: b",",
    TagHeader.EDGE_CACHE_TAG: b",",
}


@dataclass(frozen=True, slots=True)
class CdnHeaders:
    """The CDN's response headers: cache tags in `header`'s spelling, and
    CDN-Cache-Control (RFC 9213) when `cdn_max_age` is set."""

    header: TagHeader = TagHeader.NONE
    cdn_max_age: int = 0

    @property
    def enabled(self) -> bool:
        return self.header is not TagHeader.NONE or self.cdn_max_age > 0

    def lines(self, tags: tuple[str, ...], expires_in: int) -> list[tuple[bytes, bytes]]:
        """Header pairs for a response carrying `tags`, whose content is good for
        `expires_in` more seconds (an answer's nextUpdate, a CRL's): a CDN must never
        serve it beyond that, however long it may otherwise keep it."""
        out: list[tuple[bytes, bytes]] = []
        if self.header is not TagHeader.NONE and tags:
            sep = _SEPARATOR[self.header]
            out.append((self.header.value.encode(), sep.join(t.encode() for t in tags)))
        if self.cdn_max_age > 0:
            age = max(0, min(self.cdn_max_age, expires_in))
            out.append((b"CDN-Cache-Control", b"max-age=%d" % age))
        return out
