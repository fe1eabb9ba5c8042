"""`revocd revoke-by-key` and `revocd campaign`: the key-compromise cascade and revocation
campaigns, run against the store as `revocd import` is (responder/inventory/)."""

import argparse
import json
import sys
import time
from typing import Any


def add_parser(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    key = sub.add_parser(
        "revoke-by-key",
        help="revoke every unexpired certificate with a compromised key (dry run by default)",
        description="The key-compromise cascade: every unexpired certificate with the key, "
        "across the issuers (all, or --issuer), revoked for keyCompromise; the key is then "
        "blocked. Without --apply only prints what would change.",
    )
    key.add_argument("-c", "--config", required=True, help="revocd.toml")
    which = key.add_mutually_exclusive_group(required=True)
    which.add_argument("--spki-sha256", help="SHA-256 of the SubjectPublicKeyInfo, hex")
    which.add_argument("--certificate", help="a certificate (PEM or DER) with the key")
    which.add_argument("--public-key", help="the public key (PEM or DER)")
    key.add_argument("--issuer", action="append", help="only these issuers (repeatable)")
    key.add_argument("--apply", action="store_true", help="revoke and block (else a dry run)")
    key.set_defaults(handler=run_revoke_by_key)

    camp = sub.add_parser(
        "campaign",
        help="revocation campaigns: revoke a list of certificates, resumably",
        description="Revoke the serials of a file, or what an inventory query matches, at a "
        "chosen rate; a campaign run again goes on from where it stopped.",
    )
    camp_sub = camp.add_subparsers(dest="campaign_action", metavar="ACTION", required=True)
    run = camp_sub.add_parser("run", help="create a campaign, or go on with one")
    run.add_argument("-c", "--config", required=True, help="revocd.toml")
    run.add_argument("--name", required=True, help="the campaign's name")
    run.add_argument("--issuer", help="issuer name (to create)")
    source = run.add_mutually_exclusive_group()
    source.add_argument("--serials", help="file of hex serials, one per line (to create)")
    source.add_argument(
        "--query", help="inventory query, e.g. 'owner=payments&status=valid' (to create)"
    )
    run.add_argument("--reason", default="superseded", help="revocation reason (to create)")
    run.add_argument("--rate", type=float, default=1000.0, help="revocations per second")
    run.add_argument("--apply", action="store_true", help="revoke (else a dry run)")
    run.set_defaults(handler=run_campaign)
    status = camp_sub.add_parser("status", help="a campaign's progress and CCADB counts")
    status.add_argument("-c", "--config", required=True, help="revocd.toml")
    status.add_argument("--name", help="one campaign (default: all)")
    status.set_defaults(handler=run_campaign_status)


MIN_RATE = 1 / 60


def _fail(message: str) -> int:
    print(f"revocd: {message}", file=sys.stderr)
    return 2


def _key_hash(args: argparse.Namespace) -> str:
    from pathlib import Path

    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    from ..inventory.facts import key_hash, spki_sha256

    if args.spki_sha256:
        return key_hash(args.spki_sha256)
    data = Path(args.certificate or args.public_key).read_bytes()
    if args.certificate:
        pem = b"-----BEGIN" in data
        cert = x509.load_pem_x509_certificate(data) if pem else x509.load_der_x509_certificate(data)
        return spki_sha256(cert)
    key = (
        serialization.load_pem_public_key(data)
        if b"-----BEGIN" in data
        else serialization.load_der_public_key(data)
    )
    import hashlib

    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()


def run_revoke_by_key(args: argparse.Namespace) -> int:
    import trio

    from ..audit.trail import open_audit_log, record_command
    from ..config import ConfigError, load_config
    from ..ingest import Ingestor
    from ..inventory import cascade
    from ..inventory.facts import FactsError
    from ..roles.wiring import configured_store
    from ..store import StoreError

    try:
        config = load_config(args.config)
        spki = _key_hash(args)
    except (ConfigError, FactsError, OSError, ValueError) as exc:
        return _fail(f"revoke-by-key: {exc}")
    issuers = args.issuer or list(config.issuers)
    for name in issuers:
        if name not in config.issuers:
            return _fail(f"revoke-by-key: --issuer: {name!r} is not in {args.config}")

    async def main() -> dict[str, Any]:
        async with configured_store(config) as store:
            now = int(time.time())
            steps = await cascade.plan(store, issuers, spki, now)
            out: dict[str, Any] = {
                "spki_sha256": spki,
                "dry_run": not args.apply,
                "issuers": issuers,
                "counts": cascade.counts(steps),
                "certificates": [s.to_json() for s in steps],
            }
            if args.apply:
                ingest = Ingestor(
                    store,
                    config.issuers,
                    config.clock_skew_seconds,
                    certificates=config.certificates,
                )
                newly, results = await cascade.apply(
                    store, ingest, steps, spki, now, "revocd revoke-by-key"
                )
                out["newly_blocked"] = newly
                out["results"] = results
            return out

    try:
        out = trio.run(main)
    except StoreError as exc:
        return _fail(f"revoke-by-key: store: {exc}")
    record_command(
        open_audit_log(config.audit, config.audit_file),
        "cascade.applied" if args.apply else "cascade.planned",
        spki_sha256=spki,
        issuers=issuers,
        applied=sum(1 for r in out.get("results", []) if r["result"] == "applied"),
        **out["counts"],
    )
    print(json.dumps(out, indent=2))
    if not args.apply:
        print(
            f"dry run: {out['counts']['revoke']} to revoke, "
            f"{out['counts']['to_key_compromise']} to move to keyCompromise; "
            "--apply to do it",
            file=sys.stderr,
        )
    return 0 if all(r["result"] != "failed" for r in out.get("results", [])) else 1


def run_campaign(args: argparse.Namespace) -> int:
    from pathlib import Path

    import trio

    from ..audit.trail import open_audit_log, record_command
    from ..config import ConfigError, load_config
    from ..control.inventory import list_inventory
    from ..ingest import EventError, Ingestor, parse_event
    from ..inventory import campaign as camp
    from ..roles.wiring import configured_store
    from ..store import StoreError

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        return _fail(f"campaign: {exc}")
    # At least one revocation a minute: a campaign slower than that would be reported
    # stalled (RevocdCampaignStalled waits 15 minutes for its position to move).
    if not args.rate >= MIN_RATE:
        return _fail(f"campaign: --rate: revocations per second, at least {MIN_RATE:g}")

    async def serials_from_query(store: Any, issuer: str) -> list[int]:
        from ..config import TokenConfig

        everyone = TokenConfig("cli", "", frozenset({"*"}))
        found: list[int] = []
        cursor = ""
        while True:
            query = f"{args.query}&issuer={issuer}&limit=1000" + (
                f"&cursor={cursor}" if cursor else ""
            )
            page = await list_inventory(store, query.encode(), everyone, [issuer], int(time.time()))
            found.extend(int(c["serial"], 16) for c in page["certificates"])
            if not page["next_cursor"]:
                return found
            cursor = page["next_cursor"]

    def progress(c: camp.Campaign) -> None:
        print(
            f"campaign {c.name}: {c.position}/{c.total} sent "
            f"(applied {c.applied}, unchanged {c.unchanged}, rejected {c.rejected})",
            file=sys.stderr,
            flush=True,
        )

    try:
        camp.check_name(args.name)
    except camp.CampaignError as exc:
        return _fail(f"campaign: --name: {exc}")

    async def main() -> int:
        async with configured_store(config) as store:
            existing = await camp.load(store, args.name)
            if existing is None:
                if not args.issuer or args.issuer not in config.issuers:
                    print(
                        "revocd campaign: --issuer: required (a configured issuer) to "
                        "create a campaign",
                        file=sys.stderr,
                    )
                    return 2
                if args.serials:
                    text = Path(args.serials).read_text()
                    serials = camp.parse_serials(text)
                    source = camp.source_of_file(text)
                elif args.query:
                    serials = await serials_from_query(store, args.issuer)
                    source = f"query {args.query}"
                else:
                    print(
                        "revocd campaign: --serials or --query: required to create a campaign",
                        file=sys.stderr,
                    )
                    return 2
                now = int(time.time())
                existing = camp.Campaign(
                    args.name,
                    args.issuer,
                    args.reason,
                    now,
                    len(serials),
                    source,
                    created_at=now,
                    updated_at=now,
                )
                try:  # the reason against the issuer's policy, before anything is stored
                    parse_event(camp.event_for(existing, 1), config.issuers, now)
                except EventError as exc:
                    print(f"revocd campaign: --reason: {exc}", file=sys.stderr)
                    return 2
                if not args.apply:
                    plan = await camp.counts_of(store, args.issuer, serials, now)
                    print(
                        json.dumps(
                            {"dry_run": True, **existing.to_json(), "counts": plan}, indent=2
                        )
                    )
                    return 0
                await camp.create(store, existing, serials)
                record_command(
                    open_audit_log(config.audit, config.audit_file),
                    "campaign.created",
                    **existing.to_json(),
                )
            elif (
                args.serials
                and camp.source_of_file(Path(args.serials).read_text()) != existing.source
            ):
                print(
                    f"revocd campaign: {args.name!r} exists with other serials; give "
                    "only --name to go on with it",
                    file=sys.stderr,
                )
                return 2
            if not args.apply:
                counts = await camp.counts(store, existing, int(time.time()))
                print(
                    json.dumps({"dry_run": True, **existing.to_json(), "counts": counts}, indent=2)
                )
                return 0
            ingest = Ingestor(
                store, config.issuers, config.clock_skew_seconds, certificates=config.certificates
            )
            done = await camp.run(store, ingest, existing, args.rate, progress)
            counts = await camp.counts(store, done, int(time.time()))
            record_command(
                open_audit_log(config.audit, config.audit_file),
                "campaign.finished",
                **done.to_json(),
                counts=counts,
            )
            print(json.dumps({**done.to_json(), "counts": counts}, indent=2))
            return 0

    try:
        return trio.run(main)
    except (StoreError, camp.CampaignError, OSError) as exc:
        return _fail(f"campaign: {exc}")


def run_campaign_status(args: argparse.Namespace) -> int:
    import trio

    from ..config import ConfigError, load_config
    from ..inventory import campaign as camp
    from ..roles.wiring import configured_store
    from ..store import StoreError

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        return _fail(f"campaign: {exc}")

    try:
        if args.name:
            camp.check_name(args.name)
    except camp.CampaignError as exc:
        return _fail(f"campaign: --name: {exc}")

    async def main() -> list[dict[str, Any]]:
        async with configured_store(config) as store:
            if args.name:
                one = await camp.load(store, args.name)
                if one is None:
                    raise camp.CampaignError(f"--name: no campaign {args.name!r}")
                found = [one]
            else:
                found = await camp.all_campaigns(store)
            return [
                {**c.to_json(), "counts": await camp.counts(store, c, int(time.time()))}
                for c in found
            ]

    try:
        print(json.dumps(trio.run(main), indent=2))
    except (StoreError, camp.CampaignError) as exc:
        return _fail(f"campaign: {exc}")
    return 0
