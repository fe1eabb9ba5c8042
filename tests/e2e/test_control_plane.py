"""The control plane: authentication, scoping, events, lookups, health, and its OpenAPI file."""

import re
from pathlib import Path

import pytest

from responder.control.app import ROUTES

from ..served import TOKENS, now_iso, start_served

SERIAL = 0x5EED0001


@pytest.fixture(scope="module")
def served(tmp_path_factory, test_pki):
    s = start_served(tmp_path_factory.mktemp("served"), test_pki)
    yield s
    assert s.proc.stop() == 0, s.proc.output


def issued(serial, issuer="alpha"):
    return {
        "type": "issued",
        "issuer": issuer,
        "serial": format(serial, "x"),
        "not_after": now_iso(90 * 86400),
    }


def test_missing_and_unknown_tokens_are_refused(served):
    status, body, headers = served.control("POST", "/v1/events", {"events": []}, token=None)
    assert status == 401 and body["error"].startswith("authorization:")
    assert headers["www-authenticate"].startswith("Bearer")
    status, body, _ = served.control("POST", "/v1/events", {"events": []}, token="not-a-token")
    assert status == 401 and body["error"] == "authorization: unknown token"
    status, body, _ = served.control("GET", "/metrics", token=None)
    assert status == 200 and "revocd_control_auth_failures_total" in body["raw"]


def test_push_replay_and_lookup(served):
    # One event, sent twice: building it twice could straddle a second, and an
    # `issued` with another not_after is a conflict (422), not a replay.
    event = issued(SERIAL)
    status, body = served.push(event)
    assert status == 200 and body["counts"]["applied"] == 1
    status, body = served.push(event)
    assert status == 200 and body["counts"]["unchanged"] == 1
    status, record, _ = served.control("GET", f"/v1/issuers/alpha/certificates/{SERIAL:x}")
    assert status == 200 and record["status"] == "good" and record["serial"] == f"{SERIAL:x}"


def test_token_scoped_to_its_issuers(served):
    status, body = served.push(issued(SERIAL + 1, "beta"), token="alpha-ra")
    assert status == 422
    assert body["results"][0]["message"].startswith("issuer: this token may not push")
    status, body = served.push(issued(SERIAL + 1, "alpha"), token="alpha-ra")
    assert status == 200
    status, body, _ = served.control(
        "GET", f"/v1/issuers/beta/certificates/{SERIAL:x}", token="alpha-ra"
    )
    assert status == 403 and body["error"].startswith("issuer:")


@pytest.mark.parametrize(
    ("body", "status", "prefix"),
    [
        (b"{not json", 400, "body: not JSON"),
        ({"event": []}, 400, "events: required"),
        (
            {
                "events": [
                    {
                        "type": "issued",
                        "issuer": "alpha",
                        "serial": "xyz",
                        "not_after": "2027-01-01T00:00:00Z",
                    }
                ]
            },
            422,
            "serial: not a hex string",
        ),
        (
            {
                "events": [
                    {
                        "type": "revoked",
                        "issuer": "alpha",
                        "serial": "10",
                        "revoked_at": "2026-01-01T00:00:00Z",
                        "reason": "certificateHold",
                    }
                ]
            },
            422,
            "reason: certificateHold is not allowed for tls issuers",
        ),
        ({"events": [{"type": "issued"}] * 10_001}, 413, "events: at most 10000"),
        # At 3079c4f: 100k nested arrays were a 500 (RecursionError), and a key given
        # twice was silently taken with its last value.
        (b"[" * 100_000 + b"]" * 100_000, 400, "body: JSON nested deeper than 8 levels"),
        (b'{"events": [' * 6 + b"]}" * 6, 400, "body: JSON nested deeper than 8 levels"),
        (
            b'{"events": [{"type": "revoked", "issuer": "alpha", "serial": "10", '
            b'"serial": "11", "revoked_at": "2026-01-01T00:00:00Z"}]}',
            422,
            "serial: given more than once in one object",
        ),
        (b'{"events": [], "events": []}', 422, "events: given more than once"),
    ],
)
def test_bad_requests_name_the_field(served, body, status, prefix):
    got, answer, _ = served.control("POST", "/v1/events", body)
    assert got == status
    message = answer.get("error") or answer["results"][0]["message"]
    assert message.startswith(prefix), message


def test_lookup_errors(served):
    assert served.control("GET", "/v1/issuers/nope/certificates/1")[0] == 404
    status, body, _ = served.control("GET", "/v1/issuers/alpha/certificates/zz")
    assert status == 400 and body["error"].startswith("serial:")
    status, body, _ = served.control("GET", "/v1/issuers/alpha/certificates/abcdef99")
    assert status == 404 and body["error"].startswith("serial:")
    assert served.control("GET", "/v1/events")[0] == 405
    assert served.control("GET", "/nothing-here")[0] == 404


def test_health_and_readiness(served):
    assert served.control("GET", "/healthz", token=None)[:2] == (200, {"status": "ok"})
    status, body, _ = served.control("GET", "/readyz", token=None)
    assert status == 200 and body["ready"] is True
    assert body["checks"] == {
        "store": "ok",
        "data_plane": "ok",
        "signer:alpha": "ok",
        "signer:beta": "ok",
        "answers:alpha": "ok",
        "answers:beta": "ok",
    }


def test_openapi_document_matches_the_app():
    text = (Path(__file__).parents[2] / "docs" / "api" / "openapi.yaml").read_text()
    paths = re.findall(r"^  (/\S*):$", text, flags=re.M)
    documented = set()
    for path in paths:
        block = text.split(f"  {path}:\n", 1)[1]
        block = re.split(r"^  /", block, maxsplit=1, flags=re.M)[0]
        block = block.split("\ncomponents:", 1)[0]
        for method in re.findall(r"^    (get|post|put|delete|patch):$", block, flags=re.M):
            documented.add((method.upper(), path))
    assert documented == set(ROUTES)
    for secret in TOKENS.values():
        assert secret not in text
