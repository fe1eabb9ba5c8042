"""Extra PKI material written to disk for tests."""

from pathlib import Path

from responder.testing import pki


def other_issuer_dir(directory: Path, test_pki) -> Path:
    """A directory with issuer.pem of a different issuing CA under the same root."""
    directory.mkdir(parents=True, exist_ok=True)
    other = pki.make_intermediate("other issuer", test_pki.root)
    other.write(directory / "issuer.pem", directory / "issuer.key")
    return directory
