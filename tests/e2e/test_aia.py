"""AIA hosting on `revocd demo`: the issuer certificate at the caIssuers URL its
certificates name (DER, application/pkix-cert) and a .p7c bundle with the root, each
with an ETag, 304s and only GET/HEAD."""

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtensionOID

from ..service_helpers import get, raw_http, split_response


def test_issuer_certificate_at_the_ca_issuers_url_of_its_certificates(demo):
    leaf = x509.load_pem_x509_certificate(demo.cert("good").read_bytes())
    aia = leaf.extensions.get_extension_for_oid(ExtensionOID.AUTHORITY_INFORMATION_ACCESS).value
    url = next(
        d.access_location.value
        for d in aia
        if d.access_method == AuthorityInformationAccessOID.CA_ISSUERS
    )
    path = "/" + url.split("/", 3)[3]
    status, headers, body = split_response(get(demo.port, path))
    assert status == 200 and headers["content-type"] == "application/pkix-cert"
    issuer = x509.load_pem_x509_certificate((demo.dir / "issuer.pem").read_bytes())
    assert body == issuer.public_bytes(serialization.Encoding.DER)
    # what AIA chasing does with it: the leaf verifies under it
    leaf.verify_directly_issued_by(x509.load_der_x509_certificate(body))
    assert headers["cache-control"].startswith("max-age=86400")
    status, again, _ = split_response(get(demo.port, path, {"If-None-Match": headers["etag"]}))
    assert status == 304 and again["etag"] == headers["etag"]
    head = raw_http(
        demo.port, f"HEAD {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
    )
    assert split_response(head)[0] == 200 and split_response(head)[2] == b""
    post = raw_http(
        demo.port,
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n"
        "Connection: close\r\n\r\n".encode(),
    )
    assert split_response(post)[0] == 405


def test_p7c_bundle_holds_the_issuer_and_the_root(demo):
    status, headers, body = split_response(get(demo.port, "/aia/demo.p7c"))
    assert status == 200 and headers["content-type"] == "application/pkcs7-mime"
    subjects = {c.subject.rfc4514_string() for c in pkcs7.load_der_pkcs7_certificates(body)}
    root = x509.load_pem_x509_certificate((demo.dir / "root.pem").read_bytes())
    issuer = x509.load_pem_x509_certificate((demo.dir / "issuer.pem").read_bytes())
    assert subjects == {root.subject.rfc4514_string(), issuer.subject.rfc4514_string()}
