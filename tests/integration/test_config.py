"""Bad configuration stops start-up with a message that names the key."""

import subprocess
import sys

import pytest
import trio

from responder.config import ConfigError, IssuerConfig, load_config
from responder.policy import Policy
from responder.store import Store


def write(tmp_path, text: str):
    path = tmp_path / "revocd.toml"
    path.write_text(text)
    return path


@pytest.fixture
def issuer_pem(tmp_path, test_pki):
    (tmp_path / "issuer.pem").write_bytes(test_pki.issuer.cert_pem)
    return "issuer.pem"


def test_valid_config(tmp_path, issuer_pem):
    cfg = load_config(
        write(
            tmp_path,
            f"""
state_dir = "st"
[store]
replicas = 1
[issuers.demo]
certificate = "{issuer_pem}"
policy = "smime"
partitions = 8
crl_shards = 4
""",
        )
    )
    assert cfg.state_dir == tmp_path / "st"
    assert cfg.store.replicas == 1 and cfg.store.url == ""
    demo = cfg.issuers["demo"]
    assert (demo.policy, demo.partitions, demo.crl_shards) == (Policy.SMIME, 8, 4)
    assert cfg.certificates["demo"].subject is not None  # loaded by resolution


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("[issuers.demo]\npolicy = 'tls'\n", "issuers.demo.certificate: required"),
        ("[issuers.demo]\ncertificate = 'missing.pem'\n", "issuers.demo.certificate: cannot read"),
        ("[issuers.demo]\ncertificate = 'revocd.toml'\n", "issuers.demo.certificate: "),
        (
            "[issuers.demo]\ncertificate = '{pem}'\npolicy = 'web'\n",
            "issuers.demo.policy: must be one of tls, smime, code_signing, private",
        ),
        (
            "[issuers.demo]\ncertificate = '{pem}'\npartitions = 0\n",
            "issuers.demo.partitions: must be between 1 and 16384",
        ),
        (
            "[issuers.demo]\ncertificate = '{pem}'\ncrl_shard = 2\n",
            "issuers.demo.crl_shard: unknown key",
        ),
        ("[issuers.Demo]\ncertificate = '{pem}'\n", "issuers.Demo: issuer names are"),
        ("[store]\nreplicas = 'two'\n", "store.replicas: expected int"),
        ("[store]\nreplicas = true\n", "store.replicas: expected an integer"),
        ("[store]\nurll = 'redis://x'\n", "store.urll: unknown key"),
        ("clock_skew_seconds = 7200\n", "clock_skew_seconds: must be between 0 and 3600"),
        ("stat_dir = 'x'\n", "stat_dir: unknown key"),
        ("[store\n", "not valid TOML"),
        ("[audit]\nmax_bytes = 10\n", "audit.max_bytes: must be between 65536"),
        ("[audit]\nfsync = 'yes'\n", "audit.fsync: expected bool"),
        ("[audit]\nfile = 3\n", "audit.file: expected str"),
        ("[audit]\nburst = 5\n", "audit.burst: unknown key"),
        (
            "[audit]\nrevocation_burst_per_minute = 0\n",
            "audit.revocation_burst_per_minute: must be between 1",
        ),
        (
            "[audit]\nanswer_expiry_warning_hours = 0\n",
            "audit.answer_expiry_warning_hours: must be between 1",
        ),
        ("[server]\ncache_max_age_seconds = -1\n", "server.cache_max_age_seconds: must be"),
        ("[server]\ncrl_generator = 0\n", "server.crl_generator: expected bool"),
        ("[server]\nlog_summary_seconds = 90000\n", "server.log_summary_seconds: must be"),
    ],
)
def test_errors_name_the_key(tmp_path, issuer_pem, body, message):
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, body.replace("{pem}", issuer_pem)))
    assert message in str(info.value)


def test_partition_count_cannot_change_once_registered(valkey_standalone, tmp_path):
    async def main():
        async with Store.open(valkey_standalone.url) as store:
            await store.register_issuers([IssuerConfig("fixed", tmp_path, partitions=8)])
            with pytest.raises(ConfigError, match=r"issuers\.fixed\.partitions: the store holds"):
                await store.register_issuers([IssuerConfig("fixed", tmp_path, partitions=16)])

    trio.run(main)


def test_every_config_key_is_documented():
    """Every key the parser reads appears in docs/config.md."""
    import re
    from pathlib import Path

    root = Path(__file__).parents[2]
    from responder.config import model
    from responder.config.load import settings_of

    source = (root / "responder" / "config" / "load.py").read_text()
    keys = set(re.findall(r'_(?:take|path|new_path)\(\s*\w+,\s*"([a-z0-9_]+)"', source))
    for cls in vars(model).values():
        is_model = isinstance(cls, type) and cls.__module__ == model.__name__
        if is_model and hasattr(cls, "__dataclass_fields__"):
            keys |= set(settings_of(cls))
    assert len(keys) > 40
    doc = (root / "docs" / "config.md").read_text()
    missing = sorted(
        k for k in keys if not any(form in doc for form in (f"`{k}`", f"[{k}]", f".{k}]", f"[{k}."))
    )
    assert not missing, f"docs/config.md does not describe {missing}"


def test_config_and_the_http_protocol_load_no_metrics_library():
    """`revocd serve` reads its config before it switches prometheus_client to
    multiprocess mode, which must happen before that library loads; importing the
    config (and the pure HTTP protocol it takes its defaults from) must not load it."""
    code = (
        "import sys, responder.config, responder.http.protocol; "
        "assert 'prometheus_client' not in sys.modules, 'prometheus_client was loaded'"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
