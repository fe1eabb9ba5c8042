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


def test_inventory_and_siem_tables(tmp_path: Path):
    raw = {
        **RAW,
        "inventory": {"expiry_days": [7, 90, 30], "mass_expiry_share": 0.5},
        "siem": [
            {
                "name": "splunk",
                "transport": "tls",
                "address": "siem.example:6514",
                "ca_file": "ca.pem",
                "format": "cef",
            },
            {"name": "lines", "transport": "file", "path": "audit.ocsf", "format": "ocsf"},
        ],
        "issuers": {"demo": {**RAW["issuers"]["demo"], "expired": "unauthorized"}},
    }
    config = parse_config(raw, base=tmp_path)
    assert config.inventory.expiry_days == (90, 30, 7)
    assert [s.name for s in config.siem] == ["splunk", "lines"]
    assert config.siem[0].ca_file == tmp_path / "ca.pem"
    assert config.siem[1].path == tmp_path / "audit.ocsf"
    assert config.issuers["demo"].expired.value == "unauthorized"


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"inventory": {"expiry_days": []}}, r"^inventory\.expiry_days: a list of 1 to 10"),
        ({"inventory": {"expiry_days": [0]}}, r"^inventory\.expiry_days:"),
        ({"inventory": {"mass_expiry_share": 2.0}}, r"^inventory\.mass_expiry_share: must be"),
        ({"siem": [{"transport": "tcp"}]}, r"^siem\[0\]\.name: required"),
        ({"siem": [{"name": "a"}]}, r"^siem\[0\]\.address: host:port"),
        ({"siem": [{"name": "a", "address": "h:99999"}]}, r"^siem\[0\]\.address:"),
        ({"siem": [{"name": "a", "transport": "file"}]}, r"^siem\[0\]\.path: required"),
        ({"siem": [{"name": "a", "transport": "udp"}]}, r"^siem\[0\]\.transport: must be one"),
        ({"siem": [{"name": "a", "address": "h:1", "ca_file": "x"}]}, r"^siem\[0\]\.ca_file: only"),
        (
            {"siem": [{"name": "a", "transport": "tls", "address": "h:1", "cert_file": "c"}]},
            r"^siem\[0\]\.key_file: cert_file and key_file go together",
        ),
        (
            {"siem": [{"name": "a", "address": "h:1"}, {"name": "a", "address": "h:2"}]},
            r"^siem\[1\]\.name: 'a' is used twice",
        ),
        (
            {"siem": [{"name": "a", "address": "h:1", "colour": "red"}]},
            r"^siem\[0\]\.colour: unknown",
        ),
        (
            {"issuers": {"demo": {"certificate": "c.pem", "expired": "never"}}},
            r"^issuers\.demo\.expired: must be one of last_status, unauthorized",
        ),
    ],
)
def test_bad_inventory_and_siem_settings_name_the_key(tmp_path: Path, table, message):
    with pytest.raises(ConfigError, match=message):
        parse_config({**RAW, **table}, base=tmp_path)
