"""An OAuth access token kept between runs in a file of mode 0600 beside the store.

Reusing the token spares a login call on every run; the source refusing it (an expired
or revoked session) means logging in again once. The file is never the store, a log or
an output: it holds the token, the instance it is for, and a fingerprint of the
credentials it came from, so a changed client or site never reuses another's token. A
file others may read is not trusted (and is replaced at the next login).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Session:
    """A kept access token and the instance URL it is used at."""

    access_token: str
    instance_url: str


def fingerprint(*parts: str | None) -> str:
    """A one-way digest naming the credentials and site a token came from (never the secret itself)."""
    return hashlib.sha256("\x00".join(p or "" for p in parts).encode()).hexdigest()


class TokenFile:
    """One source's kept session, at ``path``, for credentials of fingerprint ``owner``."""

    def __init__(self, path: Path, owner: str) -> None:
        self.path = path
        self.owner = owner

    def load(self) -> Session | None:
        """The kept session, or None (no file, unreadable, for other credentials, or readable by others)."""
        try:
            if stat.S_IMODE(self.path.stat().st_mode) & 0o077:
                return None
            kept = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(kept, dict) or kept.get("owner") != self.owner:
            return None
        token, instance = kept.get("access_token"), kept.get("instance_url")
        if not isinstance(token, str) or not token or not isinstance(instance, str) or not instance:
            return None
        return Session(token, instance)

    def save(self, session: Session) -> None:
        """Keep ``session``: written to a 0600 file beside, then moved into place."""
        body = json.dumps({"owner": self.owner, "access_token": session.access_token,
                           "instance_url": session.instance_url})
        partial = self.path.with_name(f".{self.path.name}.{os.getpid()}.partial")
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as out:
            out.write(body)
        os.chmod(partial, 0o600)
        os.replace(partial, self.path)

    def clear(self) -> None:
        """Forget the kept session (the source refused it)."""
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
