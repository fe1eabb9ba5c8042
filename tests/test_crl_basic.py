"""The demo's full CRL: numbers only grow, validity stays inside the BR limit."""

import datetime as dt

import pytest
import trio

from crlgen.basic import MAX_VALIDITY, build_full_crl, crl_number, publish_atomically


def test_crl_number_always_grows():
    first = crl_number()
    assert crl_number(first) > first
    assert crl_number(first + 10**12) == first + 10**12 + 1  # never backwards after clock skew
    assert crl_number() < 2**159  # RFC 5280 section 5.2.3: at most 20 octets


def test_validity_over_ten_days_refused(test_pki):
    with pytest.raises(ValueError, match="10 days"):
        trio.run(
            build_full_crl,
            None,
            "x",
            test_pki.issuer.cert,
            test_pki.issuer.key,
            MAX_VALIDITY + dt.timedelta(seconds=1),
        )


def test_publish_replaces_whole_file(tmp_path):
    publish_atomically(tmp_path, "a.crl", b"old")
    publish_atomically(tmp_path, "a.crl", b"new")
    assert (tmp_path / "a.crl").read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.crl"]
