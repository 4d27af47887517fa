"""The chain's HMAC key: making one, loading one, and the id events and heads name it by.

The key is a file of 32 random bytes that never enters the database. What the database
and the published heads hold is the key's id: the first 16 hex digits of SHA-256 over a
fixed tag and the key. It is a fingerprint, not a secret: it tells which key an event or a
head was made with (and so which key file a verifier needs), and nothing about the key.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import pwd
import re
from dataclasses import dataclass, field
from pathlib import Path

from pumpd.audit.chain import key_id_of, load_key
from pumpd.audit.errors import KeyFileError

KEY_BYTES = 32
KEY_ID = re.compile(r"^[0-9a-f]{16}$")
__all__ = ["KEY_BYTES", "KEY_ID", "ChainKey", "generate_key_file", "key_id_of"]


@dataclass(frozen=True, slots=True)
class ChainKey:
    """A loaded key and its id. ``repr`` never shows the secret."""

    secret: bytes = field(repr=False)
    key_id: str
    path: Path | None = None

    @classmethod
    def of(cls, secret: bytes, path: Path | None = None) -> ChainKey:
        return cls(secret=secret, key_id=key_id_of(secret), path=path)

    @classmethod
    def load(cls, path: Path) -> ChainKey:
        """Read a key file (:func:`pumpd.audit.chain.load_key`: mode and length checked)."""
        return cls.of(load_key(path), path)

    def mac(self, data: bytes) -> str:
        return hmac.new(self.secret, data, hashlib.sha256).hexdigest()


def generate_key_file(path: Path, *, owner: str | None = None) -> ChainKey:
    """Write 32 random bytes to a new file ``path``, mode 0400; return the key.

    Refuses an existing file (a key overwritten is a chain nobody can verify any more).
    ``owner`` (a user name) makes the file that user's: the daemon's service user, when an
    administrator runs this as root. The file is created with its final mode before a byte
    is written, fsync'd, and its directory fsync'd, so a crash leaves either no file or the
    whole key.
    """
    uid = gid = -1
    if owner is not None:
        try:
            entry = pwd.getpwnam(owner)
        except KeyError:
            raise KeyFileError(f"no such user {owner!r} to own the key file") from None
        uid, gid = entry.pw_uid, entry.pw_gid
    secret = os.urandom(KEY_BYTES)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o400)
    except FileExistsError:
        raise KeyFileError(
            f"{path} exists; a key is never overwritten (the events it keyed could no "
            "longer be verified). Choose another path, or move the old key away first"
        ) from None
    except OSError as exc:
        raise KeyFileError(f"cannot create key file {path}: {exc.strerror}") from exc
    try:
        try:
            if owner is not None:
                os.fchown(fd, uid, gid)
            os.fchmod(fd, 0o400)  # whatever the umask did
            os.write(fd, secret)
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        path.unlink(missing_ok=True)
        raise KeyFileError(f"cannot write key file {path}: {exc.strerror}") from exc
    dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return ChainKey.of(secret, path)
