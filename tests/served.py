"""A `revocd serve` with two issuers, two scoped tokens and two data plane workers."""

import hashlib
import http.client
import json
import time
from dataclasses import dataclass
from pathlib import Path

from asn1crypto import ocsp as asn1_ocsp

from responder.ocsp import HashAlgorithm, IssuerHashes
from responder.store.embedded import free_port
from responder.testing import pki

from . import reqbuild as rb
from .service_helpers import Proc, start

TOKENS = {"alpha-ra": "alpha-secret-token", "root-ra": "root-secret-token"}


@dataclass
class Served:
    dir: Path
    port: int
    control_port: int
    proc: Proc
    hashes: dict[str, IssuerHashes]

    def request_der(
        self,
        issuer: str,
        serial: int,
        nonce: bytes | None = None,
        alg: HashAlgorithm = HashAlgorithm.SHA1,
    ) -> bytes:
        from responder.ocsp import encode_cert_id

        h = self.hashes[issuer]
        cid = encode_cert_id(alg, h.name_hashes[alg], h.key_hashes[alg], serial)
        exts = [rb.nonce_ext(nonce)] if nonce else None
        return rb.request(cert_ids=[cid], extensions=exts)

    def ocsp_post(self, issuer: str, serial: int, nonce: bytes | None = None) -> tuple[str, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        conn.request(
            "POST",
            "/",
            self.request_der(issuer, serial, nonce),
            {"Content-Type": "application/ocsp-request"},
        )
        body = conn.getresponse().read()
        conn.close()
        return cert_status(body), body

    def control(
        self, method: str, path: str, body: object = None, token: str | None = "root-ra"
    ) -> tuple[int, dict, dict]:
        conn = http.client.HTTPConnection("127.0.0.1", self.control_port, timeout=30)
        headers = {"Content-Type": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {TOKENS.get(token, token)}"
        data = (
            json.dumps(body).encode() if body is not None and not isinstance(body, bytes) else body
        )
        conn.request(method, path, data, headers)
        resp = conn.getresponse()
        raw = resp.read()
        conn.close()
        try:
            parsed = json.loads(raw)
        except ValueError:
            parsed = {"raw": raw.decode(errors="replace")}
        return resp.status, parsed, dict(resp.getheaders())

    def push(self, *events: dict, token: str = "root-ra") -> tuple[int, dict]:
        status, body, _ = self.control("POST", "/v1/events", {"events": list(events)}, token)
        return status, body


def cert_status(der: bytes) -> str:
    parsed = asn1_ocsp.OCSPResponse.load(der)
    if parsed["response_status"].native != "successful":
        return parsed["response_status"].native
    return parsed.basic_ocsp_response["tbs_response_data"]["responses"][0]["cert_status"].name


def now_iso(offset: int = 0) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + offset))


def start_served(
    d: Path,
    test_pki,
    workers: int = 2,
    extra: str = "",
    alpha_extra: str = "",
    args: tuple[str, ...] = (),
    responder: pki.Issued | None = None,
    server_extra: str = "",
    limits: dict[str, int] | None = None,
    relative: bool = False,
) -> Served:
    d.mkdir(parents=True, exist_ok=True)
    test_pki.issuer.write(d / "alpha.pem")
    (responder or test_pki.responder).write(d / "alpha-responder.pem", d / "alpha-responder.key")
    beta = pki.make_intermediate("beta issuer", test_pki.root)
    beta.write(d / "beta.pem", d / "beta.key")
    port, control = free_port(), free_port()
    tokens = "".join(
        f'[tokens.{name}]\nsha256 = "{hashlib.sha256(secret.encode()).hexdigest()}"\n'
        f"issuers = {json.dumps(['alpha'] if name == 'alpha-ra' else ['*'])}\n"
        for name, secret in TOKENS.items()
    )
    chosen = {"header_timeout_seconds": 2, "idle_timeout_seconds": 3, "max_connections": 15000}
    limit_lines = "\n".join(f"{k} = {v}" for k, v in {**chosen, **(limits or {})}.items())
    (d / "revocd.toml").write_text(f"""
state_dir = "state"
[server]
port = {port}
workers = {workers}
{server_extra}[server.limits]
{limit_lines}
[control]
port = {control}
[issuers.alpha]
certificate = "alpha.pem"
responder_certificate = "alpha-responder.pem"
responder_key = "alpha-responder.key"
partitions = 8
{alpha_extra}
[issuers.beta]
certificate = "beta.pem"
key = "beta.key"
policy = "smime"
partitions = 4
{tokens}{extra}""")
    if relative:  # as an operator in the config's directory would type it
        proc = start("serve", "-c", "revocd.toml", *args, cwd=d)
    else:
        proc = start("serve", "-c", str(d / "revocd.toml"), *args)
    proc.wait_for("revocd ready")
    return Served(
        d,
        port,
        control,
        proc,
        {
            "alpha": IssuerHashes.from_certificate(test_pki.issuer.cert),
            "beta": IssuerHashes.from_certificate(beta.cert),
        },
    )
