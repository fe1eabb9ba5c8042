"""Key layout. Everything about one certificate lives under one hash tag.

`rv:{<issuer>:<p>}` where p = serial mod the issuer's partition count: the
certificate records, the revoked index, the due index, the pre-signed answers and
the change feed of a partition share a cluster slot, so one Lua call updates them
atomically, while an issuer's partitions spread over the cluster.

Each pre-signed answer is a key of its own (about 1 KB, expiring at its nextUpdate),
not a field of a partition hash: the answers are most of the bytes, and a hash of them
grew with the issuer (1.4 GiB per key at 100M certificates and 64 partitions), which
the server must move in one piece when a cluster slot migrates. What stays per
partition (records, the revoked and due indexes) is about 200 bytes per certificate and
is bounded by choosing the partition count (docs/store.md, "Sizing").
"""

ISSUERS = "rv:issuers"
# Store layout of an issuer's keys, kept in its rv:issuers record. 2: an answer key per
# certificate and a due index (1: one answers hash per partition, no index).
LAYOUT = 2
CHANGES_CHANNEL = "rv:changes"


def crl_number(issuer: str, shard: int) -> str:
    """The highest CRL number published for one shard, by any revocd process."""
    return f"rv:crlnum:{issuer}:{shard}"


def lease(name: str) -> str:
    """One lease (responder/store/leases.py): a single key, so no hash tag is needed."""
    return f"rv:lease:{name}"


def members(group: str) -> str:
    """The revocd processes sharing one kind of work (leases.py: balance)."""
    return f"rv:members:{group}"


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


def answer(issuer: str, partition: int, serial: int) -> str:
    """One pre-signed answer (16-byte header: thisUpdate, nextUpdate; then the DER)."""
    return tag(issuer, partition) + ":a:" + serial_field(serial)


def due(issuer: str, partition: int) -> str:
    """Sorted set: serial -> when its answer must be re-signed (0: it has none). The
    pre-signer reads what is due from it instead of every record of the partition."""
    return tag(issuer, partition) + ":due"


def legacy_answers(issuer: str, partition: int) -> str:
    """The answers hash of store layout 1, read once by the migration to layout 2."""
    return tag(issuer, partition) + ":answers"


def feed(issuer: str, partition: int) -> str:
    return tag(issuer, partition) + ":feed"


def ledger_index(issuer: str, partition: int) -> str:
    """Sorted set: revoked serial -> when its revocation was acknowledged (ms)."""
    return tag(issuer, partition) + ":lx"


def ledger(issuer: str, partition: int, serial: int) -> str:
    """Hash: one revocation's propagation steps, name -> ms (propagation/ledger.py)."""
    return tag(issuer, partition) + ":lg:" + serial_field(serial)


def purge_cursor(issuer: str, partition: int, target: str) -> str:
    """The last feed entry of the partition a CDN target has been told about."""
    return tag(issuer, partition) + ":pc:" + target


def inventory(issuer: str, partition: int) -> str:
    """Hash: serial -> the certificate's inventory facts as JSON (inventory/facts.py)."""
    return tag(issuer, partition) + ":inv"


def key_index(issuer: str, partition: int, spki_sha256: str) -> str:
    """Set: the partition's serials whose SubjectPublicKeyInfo has this SHA-256."""
    return tag(issuer, partition) + ":k:" + spki_sha256


# Hash: SubjectPublicKeyInfo SHA-256 -> why and when it was blocked (inventory/cascade.py)
BLOCKED_KEYS = "rv:blocked-keys"


def campaign(name: str) -> str:
    """Hash: a revocation campaign's definition and progress (inventory/campaign.py)."""
    return f"rv:campaign:{{{name}}}"


def campaign_serials(name: str) -> str:
    """List: the campaign's serials in hex, in the order they are revoked."""
    return f"rv:campaign:{{{name}}}:serials"


CAMPAIGNS = "rv:campaigns"  # set of campaign names


# Purges that are not certificate changes (CRL publications, AIA changes), as a stream,
# and each target's position in it
PURGE_QUEUE = "rv:purges"


def purge_queue_cursor(target: str) -> str:
    return f"rv:purges:cursor:{target}"


def crl_publications(issuer: str) -> str:
    """Stream: each CRL publication of the issuer (shard, number, thisUpdate, origins)."""
    return f"rv:crlpub:{issuer}"


def partition_keys(issuer: str, partition: int) -> list[str]:
    """The first KEYS of the apply script, in its order (each event's answer key follows)."""
    return [
        certs(issuer, partition),
        revoked(issuer, partition),
        due(issuer, partition),
        feed(issuer, partition),
        legacy_answers(issuer, partition),
    ]
