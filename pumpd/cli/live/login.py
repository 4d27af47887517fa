"""The staff login token file: written and read by pumpctl only.

``$XDG_RUNTIME_DIR/pumpctl/login-<uid>`` when a runtime directory exists (tmpfs, gone at
logout), else ``~/.cache/pumpctl/login``; mode 0600 in a 0700 directory. A file that is not
this uid's own, or is readable by others, is ignored: a token must never be borrowed. The
daemon binds the token to the uid that obtained it anyway, so a stolen file is useless to
another account.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class StaffLogin:
    token: str
    staff_id: str
    name: str
    role: str


def token_path() -> Path:
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and Path(runtime).is_dir():
        return Path(runtime) / "pumpctl" / f"login-{os.getuid()}"
    return Path.home() / ".cache" / "pumpctl" / "login"


def load() -> StaffLogin | None:
    """The open staff login of this account, or None (missing, foreign or unsafe file)."""
    path = token_path()
    try:
        st = path.stat()
    except OSError:
        return None
    if st.st_uid != os.getuid() or st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return StaffLogin(
            token=str(data["token"]),
            staff_id=str(data["staff_id"]),
            name=str(data.get("name", "")),
            role=str(data.get("role", "")),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def save(login: StaffLogin) -> Path:
    path = token_path()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(login.__dict__, f)
    tmp.replace(path)
    return path


def forget() -> bool:
    """Remove the token file; True if there was one."""
    try:
        token_path().unlink()
    except FileNotFoundError:
        return False
    return True
