"""The manager's admin token: written once to `$DALSEGNO_HOME/token`, mode 0600."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

TOKEN_FILE = "token"  # noqa: S105 - a file name, not a secret


def token_path(home: Path) -> Path:
    return home / TOKEN_FILE


def ensure_admin_token(home: Path) -> str:
    """The admin token, created (0600, atomically) on first use."""
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = token_path(home)
    existing = read_token_file(path)
    if existing:
        return existing
    token = secrets.token_urlsafe(32)
    temporary = path.with_name(f".{TOKEN_FILE}.{os.getpid()}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(token + "\n")
    try:
        os.link(temporary, path)  # never replaces a token another manager wrote first
    except FileExistsError:
        pass
    finally:
        temporary.unlink(missing_ok=True)
    found = read_token_file(path)
    assert found is not None
    return found


def read_token_file(path: Path) -> str | None:
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        return None
    return text or None


def same_token(given: str, expected: str) -> bool:
    """Compare in constant time."""
    return hmac.compare_digest(given.encode(), expected.encode())


def token_hash(token: str) -> str:
    """What the store keeps of a token (or a session id): its SHA-256, in hex."""
    return hashlib.sha256(token.encode()).hexdigest()
