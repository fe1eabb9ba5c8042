"""Key layout. Everything about one certificate lives under one hash tag.

`rv:{<issuer>:<p>}` where p = serial mod the issuer's partition count: the
certificate records, the revoked index, the pre-signed answers and the change
feed of a partition share a cluster slot, so one Lua call updates them
atomically, while an issuer's partitions spread over the cluster.
"""

ISSUERS = "rv:issuers"
CHANGES_CHANNEL = "rv:changes"


def crl_number(issuer: str, shard: int) -> str:
    """The highest CRL number published for one shard, by any revocd process."""
    return f"rv:crlnum:{issuer}:{shard}"


def lease(name: str) -> str:
    """One lease (responder/store/leases.py): a single key, so no hash tag is needed."""
    return f"rv:lease:{name}"


def partition_of(serial: int, partitions: int) -> int:
    return serial % partitions


def serial_field(serial: int) -> str:
    """Canonical serial spelling in the store: lowercase hex, no leading zeros."""
    return format(serial, "x")


def tag(issuer: str, partition: int) -> str:
    return f"rv:{{{issuer}:{partition}}}"


def certs(issuer: str, partition: int) -> str:
    return tag(issuer, partition) + ":certs"


def revoked(issuer: str, partition: int) -> str:
    return tag(issuer, partition) + ":revoked"


def answers(issuer: str, partition: int) -> str:
    return tag(issuer, partition) + ":answers"


def feed(issuer: str, partition: int) -> str:
    return tag(issuer, partition) + ":feed"


def partition_keys(issuer: str, partition: int) -> list[str]:
    """KEYS for the apply script, in its order."""
    return [
        certs(issuer, partition),
        revoked(issuer, partition),
        answers(issuer, partition),
        feed(issuer, partition),
    ]
