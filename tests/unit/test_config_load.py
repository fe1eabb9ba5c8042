"""Loading (TOML table -> model) reads no files; resolution checks them and names the key."""

from pathlib import Path

import pytest

from responder.config import ConfigError, NoncePolicy, parse_config, resolve_config

RAW = {
    "issuers": {
        "demo": {"certificate": "nowhere/demo.pem", "key": "nowhere/demo.key", "nonce": "ignore"}
    }
}


def test_parsing_reads_no_file_and_makes_paths_absolute(tmp_path):
    config = parse_config(RAW, base=tmp_path)  # neither file exists: not parse's business
    demo = config.issuers["demo"]
    assert demo.certificate == tmp_path / "nowhere" / "demo.pem"
    assert config.certificates == {}  # resolution loads them
    assert demo.nonce is NoncePolicy.IGNORE
    assert config.server.crl_dir == tmp_path / "state" / "crl"


def test_resolution_names_the_key_of_a_missing_file(tmp_path):
    with pytest.raises(ConfigError, match=r"^issuers\.demo\.certificate: cannot read"):
        resolve_config(parse_config(RAW, base=tmp_path))


def test_an_unknown_choice_names_its_choices(tmp_path: Path):
    raw = {"issuers": {"demo": {"certificate": "c.pem", "unknown": "maybe"}}}
    expected = r"issuers\.demo\.unknown: must be one of unknown, unauthorized"
    with pytest.raises(ConfigError, match=expected):
        parse_config(raw, base=tmp_path)
