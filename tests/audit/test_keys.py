"""``pumpd audit keygen``: 32 random bytes, mode 0400, the service user's, never overwritten;
a key id that names the key without revealing it; key files loaded as written."""

from __future__ import annotations

import os
import pwd
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from pumpd.audit.chain import Hasher, key_id_of, load_key
from pumpd.audit.errors import KeyFileError
from pumpd.audit.keys import ChainKey
from pumpd.cli.daemon import main


def keygen(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["audit", "keygen", *args])
    return result.exit_code, result.output


def test_keygen_writes_32_random_bytes_0400_and_prints_the_key_id(tmp_path: Path) -> None:
    path = tmp_path / "chain.key"
    code, out = keygen(str(path))
    assert code == 0, out
    data = path.read_bytes()
    assert len(data) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o400
    key = ChainKey.load(path)
    assert key.secret == data
    assert key.key_id in out
    assert key.key_id == key_id_of(data)
    assert data.hex() not in out
    assert repr(data) not in repr(key)
    other = tmp_path / "other.key"
    assert keygen(str(other))[0] == 0
    assert other.read_bytes() != data


def test_keygen_never_overwrites(tmp_path: Path) -> None:
    path = tmp_path / "chain.key"
    assert keygen(str(path))[0] == 0
    before = path.read_bytes()
    code, out = keygen(str(path))
    assert code == 2
    assert "never overwritten" in out
    assert path.read_bytes() == before


@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
def test_keygen_gives_the_file_to_the_service_user(tmp_path: Path) -> None:
    nobody = pwd.getpwnam("nobody")
    path = tmp_path / "chain.key"
    code, out = keygen(str(path), "--owner", "nobody")
    assert code == 0, out
    info = path.stat()
    assert (info.st_uid, info.st_gid) == (nobody.pw_uid, nobody.pw_gid)
    assert stat.S_IMODE(info.st_mode) == 0o400


def test_keygen_with_an_unknown_owner_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "chain.key"
    code, out = keygen(str(path), "--owner", "no-such-user-pumpd")
    assert code == 2
    assert "no-such-user-pumpd" in out
    assert not path.exists()


def test_a_binary_key_ending_in_a_newline_byte_is_taken_whole(tmp_path: Path) -> None:
    path = tmp_path / "chain.key"
    secret = os.urandom(31) + b"\n"
    path.write_bytes(secret)
    path.chmod(0o400)
    assert load_key(path) == secret
    text = tmp_path / "text.key"
    text.write_bytes(os.urandom(24).hex().encode() + b"\n")
    text.chmod(0o600)
    assert load_key(text) == text.read_bytes()[:-1]
    assert Hasher(load_key(path)).key_id == key_id_of(secret)


def test_a_short_or_loose_key_is_refused(tmp_path: Path) -> None:
    short = tmp_path / "short.key"
    short.write_bytes(os.urandom(16))
    short.chmod(0o400)
    with pytest.raises(KeyFileError, match="at least 32"):
        load_key(short)
    loose = tmp_path / "loose.key"
    loose.write_bytes(os.urandom(32))
    loose.chmod(0o440)
    with pytest.raises(KeyFileError, match="group/others"):
        load_key(loose)
