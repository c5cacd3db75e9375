"""Ed25519 signatures over an archive's body digest (the ``sign`` extra: ``cryptography``).

The signature covers the text ``packer/1 sha256=<digest>``, and the digest covers every byte
of the archive before its zip comment, so a valid signature vouches for the whole archive.
It is kept in the zip comment (``ed25519=<base64>``) beside the digest. Ed25519 signatures
are deterministic: signing the same archive with the same key gives the same bytes.
"""

from __future__ import annotations

import base64
import contextlib
import os
import tempfile
from pathlib import Path
from typing import Any

from ._runtime.archive import body_digest, format_comment, read_end_record
from .errors import ArchiveError, BuildError, ConfigError

__all__ = ["keygen", "sign", "sign_digest", "signature_status"]


def _crypto() -> Any:
    try:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ed25519
    except ImportError:
        raise ConfigError(
            "signatures need the 'cryptography' package: pip install 'packer[sign]'"
        ) from None
    return serialization, ed25519


def _message(digest: str) -> bytes:
    return b"packer/1 sha256=" + digest.encode("ascii")


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
    try:
        data = path.read_bytes()
        key = (
            serialization.load_pem_private_key(data, password=None)
            if private
            else serialization.load_pem_public_key(data)
        )
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such key file") from None
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{path}: not an unencrypted PEM {kind} key ({exc})") from None
    wanted = ed25519.Ed25519PrivateKey if private else ed25519.Ed25519PublicKey
    if not isinstance(key, wanted):
        raise ConfigError(f"{path}: not an Ed25519 {kind} key")
    return key


def sign_digest(key_path: str | os.PathLike[str], digest: str) -> str:
    """The base64 Ed25519 signature of *digest* with the private key at *key_path*."""
    key = _load_key(Path(key_path), private=True)
    return base64.b64encode(key.sign(_message(digest))).decode("ascii")


def sign(archive: str | os.PathLike[str], key_path: str | os.PathLike[str]) -> str:
    """Sign *archive* in place (atomically: a signed copy replaces it); return the digest.

    Refuses an archive whose recorded digest does not match its contents.
    """
    path = Path(archive)
    key = _load_key(Path(key_path), private=True)
    try:
        fp = path.open("rb")
    except FileNotFoundError:
        raise ArchiveError(f"{path}: no such file") from None
    with fp:
        end = read_end_record(fp, path.name)
        recorded = end.fields.get("sha256")
        if recorded is None:
            raise ArchiveError(f"{path.name}: not a packer archive (no digest to sign)")
        if body_digest(fp, end) != recorded:
            raise ArchiveError(f"{path.name}: damaged: the body digest does not match; not signed")
        fields = dict(end.fields)
        fields["ed25519"] = base64.b64encode(key.sign(_message(recorded))).decode("ascii")
        comment = format_comment(fields)
        fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out:
                fp.seek(0)
                remaining = end.body_length
                while remaining:
                    chunk = fp.read(min(remaining, 1 << 20))
                    if not chunk:
                        raise ArchiveError(f"{path.name}: truncated while signing")
                    out.write(chunk)
                    remaining -= len(chunk)
                out.write(len(comment).to_bytes(2, "little") + comment)
            os.chmod(tmp, path.stat().st_mode & 0o7777)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
    return recorded


def signature_status(
    archive: str | os.PathLike[str], public_key: str | os.PathLike[str] | None
) -> tuple[str, str | None]:
    """(status, problem): status is absent, present, valid or invalid; problem says why not."""
    path = Path(archive)
    with path.open("rb") as fp:
        end = read_end_record(fp, path.name)
        signature = end.fields.get("ed25519")
        recorded = end.fields.get("sha256")
        if signature is None:
            return "absent", None
        if public_key is None:
            return "present", None
        key = _load_key(Path(public_key), private=False)
        if recorded is None:
            return "invalid", f"{path.name}: a signature but no digest"
        try:
            key.verify(base64.b64decode(signature, validate=True), _message(recorded))
        except Exception:  # InvalidSignature, or a signature that is not base64
            return "invalid", f"{path.name}: the signature does not match this key"
        if body_digest(fp, end) != recorded:
            return "invalid", f"{path.name}: signed, but the body no longer matches the digest"
    return "valid", None
