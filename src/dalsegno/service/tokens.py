"""Token files and secrets: the manager's admin token in `$DALSEGNO_HOME/token` (written
once, mode 0600), the files the CLI and agents read a token from, constant-time compares.

A token file is trusted only when nobody else could have read or planted it: a regular
file (not a symlink), owned by the user reading it, neither readable nor writable by its
group or others, holding at least `MIN_LENGTH` characters. Anything else is refused in
one line that says which, before the token is used: a manager started on a 0644 file, a
symlink into someone else's directory, or a short guessable token would otherwise hand
its admin rights to whoever can read or write that file.
"""

from __future__ import annotations

import errno
import hashlib
import hmac
import os
import secrets
import stat
from pathlib import Path

from dalsegno.model.errors import RefusedError

TOKEN_FILE = "token"  # noqa: S105 - a file name, not a secret
MIN_LENGTH = 32  # characters; a token made here has 43 (256 bits)


class TokenFileError(RefusedError):
    """A token file that may not be trusted, or cannot be read."""


def token_path(home: Path) -> Path:
    return home / TOKEN_FILE


def ensure_admin_token(home: Path) -> str:
    """The admin token, created (0600, atomically) on first use; TokenFileError when the
    file there may not be trusted."""
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = token_path(home)
    if os.path.lexists(path):  # a dangling symlink too: it is refused, never followed
        return read_token_file(path, "the admin token file")
    token = secrets.token_urlsafe(32)
    temporary = path.with_name(f".{TOKEN_FILE}.{os.getpid()}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(token + "\n")
    try:
        os.link(temporary, path)  # never replaces a token another manager wrote first
    except FileExistsError:
        pass
    finally:
        temporary.unlink(missing_ok=True)
    return read_token_file(path, "the admin token file")


def read_token_file(path: Path, what: str = "the token file") -> str:
    """The token in `path`, checked as the module says; TokenFileError names the reason."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            msg = f"{what} {path} is a symlink: use the file itself"
            raise TokenFileError(msg) from None
        if exc.errno == errno.ENOENT:
            msg = f"{what} {path} does not exist"
            raise TokenFileError(msg) from None
        msg = f"cannot read {what} {path}: {exc.strerror or exc}"
        raise TokenFileError(msg) from None
    try:
        _check(path, what, os.fstat(descriptor))
    except TokenFileError:
        os.close(descriptor)
        raise
    with os.fdopen(descriptor, "rb") as handle:
        text = handle.read(64 * 1024).decode("utf-8", errors="replace").strip()
    if len(text) < MIN_LENGTH:
        msg = (
            f"{what} {path} holds a token of {len(text)} characters: at least {MIN_LENGTH}"
            " are needed (delete it and let the manager write a new one)"
        )
        raise TokenFileError(msg)
    return text


def _check(path: Path, what: str, found: os.stat_result) -> None:
    if not stat.S_ISREG(found.st_mode):
        msg = f"{what} {path} is not a regular file"
        raise TokenFileError(msg)
    if found.st_uid != os.getuid():
        msg = f"{what} {path} is owned by uid {found.st_uid}, not by this user (uid {os.getuid()})"
        raise TokenFileError(msg)
    mode = stat.S_IMODE(found.st_mode)
    if mode & 0o077:
        msg = (
            f"{what} {path} may be read or written by its group or others"
            f" (mode {mode:04o}): chmod 600 {path}"
        )
        raise TokenFileError(msg)


def same_token(given: str, expected: str) -> bool:
    """Compare in constant time."""
    return hmac.compare_digest(given.encode(), expected.encode())


def token_hash(token: str) -> str:
    """What the store keeps of a token (or a session id): its SHA-256, in hex."""
    return hashlib.sha256(token.encode()).hexdigest()
