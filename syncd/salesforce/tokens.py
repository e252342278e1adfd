"""The rotated Salesforce refresh token, kept in a 0600 file beside the state.

With refresh-token rotation on, each refresh answer carries a new refresh token and the old one dies
at once: the configured token works exactly once. The new one replaces it for the life of the process
and is written here (atomically, owner-only) so that a restart uses it too. The file also records a
fingerprint of the configured token it descends from: when the operator configures a new token (a
fresh authorisation), that one wins and the file is replaced at its first rotation. The token never
goes to the database, logs or output; ``syncd doctor`` says only which one is in use.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from syncd.errors import StateError

log = logging.getLogger(__name__)
# The newest rotated token of each configured lineage, for the life of the process: runs build a new
# client each time, and a file that could not be written must not take the live token with it.
_LIVE: dict[str, str] = {}


def token_file_for(state_path: Path) -> Path:
    return Path(f"{state_path}.sf-refresh-token")


def fingerprint(token: str) -> str:
    return hashlib.sha256(b"syncd-refresh-token:" + token.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Rotated:
    token: str
    saved_at: str


def remember(token: str, configured: str) -> None:
    _LIVE[fingerprint(configured)] = token


class RefreshTokenFile:
    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self, configured: str, from_file: bool = False) -> Rotated | None:
        """The rotated token descending from ``configured``, or None (none saved, or another lineage).
        ``from_file``: what the file holds, even when this process holds another (a second syncd
        process, ``doctor`` beside the daemon, may have rotated it since)."""
        live = _LIVE.get(fingerprint(configured))
        if live is not None and not from_file:
            return Rotated(live, "this process")
        try:
            raw = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as e:
            raise StateError(f"the rotated refresh token file {self.path} cannot be read ({type(e).__name__}); "
                             "fix its permissions (it belongs to the syncd user, mode 0600)") from None
        try:
            data = json.loads(raw)
            token, origin, saved = str(data["token"]), str(data["configured"]), str(data.get("saved_at", ""))
        except (ValueError, KeyError, TypeError):
            raise StateError(f"the rotated refresh token file {self.path} is damaged; delete it and configure a "
                             "freshly issued SYNCD_SALESFORCE_REFRESH_TOKEN") from None
        if origin != fingerprint(configured):
            log.info("salesforce: a newly configured refresh token replaces the rotated one in %s", self.path)
            return None
        return Rotated(token, saved)

    def save(self, token: str, configured: str) -> None:
        """Write atomically with mode 0600: a crash leaves the old file or the new one, never half of one."""
        remember(token, configured)
        body = json.dumps({"token": token, "configured": fingerprint(configured),
                           "saved_at": datetime.now(timezone.utc).isoformat(timespec="seconds")})
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(body)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.path)
        except OSError as e:
            with contextlib.suppress(OSError):
                tmp.unlink()
            # The new token lives on in this process; the next restart would present a dead one.
            raise StateError(f"the rotated refresh token could not be saved to {self.path} "
                             f"({type(e).__name__}); it stays in use until syncd stops") from None
