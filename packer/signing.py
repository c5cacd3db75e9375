"""Ed25519 signatures over an archive's digest (the ``sign`` extra: ``cryptography``).

The signature covers the text ``packer/2 sha256=<digest>``, and the format-2 digest covers
every byte of the archive but its own digits and the signature's, so a valid signature
vouches for the whole file. It is kept in the seal at the end of the zip comment, in a field
of fixed size: signing changes no length and no other byte. Ed25519 signatures are
deterministic: signing the same archive with the same key gives the same bytes.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any

from ._runtime.format import SEAL_SIZE, open_archive, seal_comment, signed_message
from ._runtime.inspection import FORMAT1_NOTE
from .errors import ArchiveError, BuildError, ConfigError, read_input
from .output import atomic_output

__all__ = ["Signer", "keygen", "load_signer", "sign", "signature_status"]


def _crypto() -> Any:
    try:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ed25519
    except ImportError:
        raise ConfigError(
            "signatures need the 'cryptography' package: pip install cryptography"
        ) from None
    return serialization, ed25519


def keygen(name: str | os.PathLike[str]) -> tuple[Path, Path]:
    """Write a new private key to *name* (mode 0600) and its public key to *name*.pub."""
    serialization, ed25519 = _crypto()
    private_path = Path(name)
    public_path = Path(f"{name}.pub")
    for path in (private_path, public_path):
        if path.exists():
            raise BuildError(f"{path}: exists; not overwritten")
        if not path.parent.is_dir():
            raise BuildError(f"{path}: the folder {path.parent} does not exist")
    key = ed25519.Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fp:
        fp.write(private)
    public_path.write_bytes(public)
    return private_path, public_path


def _load_key(path: Path, private: bool) -> Any:
    """An Ed25519 key from a PEM file: the private key, or with *private* False the public."""
    serialization, ed25519 = _crypto()
    kind = "private" if private else "public"
    data = read_input(path, "key file")
    try:
        key = (
            serialization.load_pem_private_key(data, password=None)
            if private
            else serialization.load_pem_public_key(data)
        )
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{path}: not an unencrypted PEM {kind} key ({exc})") from None
    wanted = ed25519.Ed25519PrivateKey if private else ed25519.Ed25519PublicKey
    if not isinstance(key, wanted):
        raise ConfigError(f"{path}: not an Ed25519 {kind} key")
    return key


class Signer:
    """A private key, loaded: signs digests and knows its public key."""

    def __init__(self, key: Any) -> None:
        from cryptography.hazmat.primitives import serialization

        self._key = key
        #: The raw 32-byte public key, in hex (what a stub that requires a signature holds).
        self.public = (
            key.public_key()
            .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
            .hex()
        )

    def __call__(self, digest: str) -> str:
        """The base64 signature of *digest*."""
        return base64.b64encode(self._key.sign(signed_message(digest))).decode("ascii")


def load_signer(key_path: str | os.PathLike[str]) -> Signer:
    """The private key at *key_path*, loaded (and any problem with it reported) now."""
    return Signer(_load_key(Path(key_path), private=True))


def sign(archive: str | os.PathLike[str], key_path: str | os.PathLike[str]) -> str:
    """Sign *archive* in place (atomically: a signed copy replaces it); return the digest.

    A symlink is followed: the file it names is signed and the link is left as it is.
    Refuses an archive that is not a canonical format-2 packer archive, or whose digest
    does not match its contents.
    """
    given = Path(archive)
    signer = load_signer(key_path)
    path = Path(os.path.realpath(given))
    with open_archive(str(path)) as opened:
        seal = opened.layout.seal
        if seal is None:
            raise ArchiveError(f"{given.name}: not a packer archive (no digest to sign)")
        if seal.format != 2:
            raise ArchiveError(f"{given.name}: {FORMAT1_NOTE}; not signed")
        recorded = seal.digest or ""
        if opened.digest() != recorded:
            raise ArchiveError(f"{given.name}: damaged: the digest does not match; not signed")
        comment = seal_comment(recorded, signer(recorded))
        body_length = opened.layout.size - SEAL_SIZE
        with atomic_output(path, path.stat().st_mode & 0o7777) as out:
            source = opened.fp.fileno()
            at = 0
            while at < body_length:
                chunk = os.pread(source, min(body_length - at, 1 << 20), at)
                if not chunk:
                    raise ArchiveError(f"{given.name}: truncated while signing")
                out.write(chunk)
                at += len(chunk)
            out.write(comment)
    return recorded


def signature_status(
    archive: str | os.PathLike[str], public_key: str | os.PathLike[str] | None
) -> tuple[str, str | None]:
    """(status, problem): status is absent, present, valid or invalid; problem says why not.

    Valid means: the archive is canonical, its format-2 digest matches every byte, and the
    signature over that digest is this key's.
    """
    path = Path(archive)
    key = _load_key(Path(public_key), private=False) if public_key is not None else None
    with open_archive(str(path)) as opened:
        seal = opened.layout.seal
        if seal is None or seal.signature is None:
            return "absent", None
        if key is None:
            return "present", None
        if seal.format != 2:
            return "invalid", f"{path.name}: {FORMAT1_NOTE}; its signature is not trusted"
        try:
            key.verify(base64.b64decode(seal.signature, validate=True),
                       signed_message(seal.digest or ""))  # fmt: skip
        except Exception:  # InvalidSignature, or a signature that is not base64
            return "invalid", f"{path.name}: the signature does not match this key"
        if opened.digest() != seal.digest:
            return "invalid", f"{path.name}: signed, but the file no longer matches the digest"
    return "valid", None
