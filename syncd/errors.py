"""The exception tree of syncd.

Every error syncd raises on purpose is a :class:`SyncdError`. Each leaf is either *transient*
(the run ends, state is kept, the next run retries) or *fatal* (an operator must fix something).
Foreign errors (requests, sqlite3, pydantic) are translated once, at the boundary that meets them,
with ``raise ... from``.

::

    SyncdError
    ├── ConfigError              fatal: bad syncd.toml or missing secret          (exit 2)
    ├── StateError               fatal: unreadable, foreign or newer state file   (exit 1)
    │   └── LockHeld             another syncd holds the state lock               (exit 3)
    ├── Refused                  an admin command cannot do what was asked        (exit 2)
    ├── StopRequested            the daemon asked the run to stop at a safe point (run "interrupted")
    ├── TransientError           retry at the next run
    │   ├── RemoteUnavailable    5xx, 429, connection drops, timeouts (after retries)
    │   ├── SessionExpired       401: re-authenticate once and repeat the call
    │   ├── LocatorExpired       Salesforce INVALID_QUERY_LOCATOR: resume from the saved position
    │   ├── ApiLimitReached      Salesforce REQUEST_LIMIT_EXCEEDED or usage past the configured share
    │   ├── ConcurrentLimit      Salesforce REQUEST_LIMIT_EXCEEDED for ConcurrentRequests (still, after backoff)
    │   ├── QueryTimeout         Salesforce QUERY_TIMEOUT: the window is read in smaller parts
    │   ├── BulkJobLost          a Bulk API job failed, or its results expired: the window is read by REST
    │   └── ProtocolError        a remote answered something that is not its documented shape
    └── FatalError               stop and say what to fix
        ├── AuthFailed           credentials refused by a token endpoint
        ├── TlsFailed            a certificate not trusted, a TLS handshake refused
        ├── Redirected           a 3xx: syncd follows no redirect (a URL in the config is wrong)
        ├── RemoteRejected       4xx that repeating will not cure (malformed query, bad upload)
        │   └── SetupRejected    CXone refuses what the config points at (list, skill, mapping, rights)
        ├── ReadingMismatch      CXone does not behave as the config says (a setting to change)
        └── MassRemoval          a run would remove more than cxone.max_removal_percent of the list

Messages name the remote, method, path and status; never a body, a token or lead data.
"""

from __future__ import annotations


class SyncdError(Exception):
    """Base of every error syncd raises on purpose."""

    transient: bool = False


class ConfigError(SyncdError):
    """The configuration or a secret is unusable. ``problems`` holds one line per fault."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


class StateError(SyncdError):
    """The state database cannot be used as it is; it is left untouched."""


class LockHeld(StateError):
    """Another syncd process holds the single-writer lock on the state."""


class Refused(SyncdError):
    """An operator asked for something that cannot be done as asked; nothing was changed (exit 2)."""


class StopRequested(SyncdError):
    """The daemon asked the run to stop at the next safe point; the next start resumes."""


class TransientError(SyncdError):
    transient = True


class RemoteError(SyncdError):
    """An HTTP exchange with a remote failed. Carries where, never what was sent."""

    def __init__(
        self,
        message: str,
        *,
        remote: str = "",
        method: str = "",
        path: str = "",
        status: int | None = None,
        code: str = "",
    ) -> None:
        self.remote = remote
        self.method = method
        self.path = path
        self.status = status
        self.code = code
        where = " ".join(p for p in (remote, method, path) if p)
        detail = " ".join(p for p in (str(status) if status else "", code) if p)
        parts = [p for p in (where, detail) if p]
        super().__init__(f"{': '.join(parts)}: {message}" if parts else message)


class RemoteUnavailable(RemoteError, TransientError):
    """The remote did not answer usefully (5xx, 429, timeout, dropped connection)."""


class AnswerCut(RemoteUnavailable):
    """The answer broke off before its end (fewer bytes than promised, then a closed connection).

    Unlike a remote that keeps failing, the very next request may well succeed: a cut page is
    read again from the saved position in the same run, as a garbled one is.
    """


class SessionExpired(RemoteError, TransientError):
    """401: the session or token is no longer valid."""


class LocatorExpired(RemoteError, TransientError):
    """Salesforce no longer knows the query locator of a ``nextRecordsUrl``."""


class ApiLimitReached(RemoteError, TransientError):
    """Salesforce's API allocation is spent, or usage passed ``max_api_usage_percent``."""


class ConcurrentLimit(RemoteError, TransientError):
    """Too many long-running requests at once in the org (``ConcurrentRequests``): not the daily allocation."""


class QueryTimeout(RemoteError, TransientError):
    """Salesforce gave up on a query (``QUERY_TIMEOUT``): ask for a shorter window."""


class BulkJobLost(RemoteError, TransientError):
    """A Bulk API 2.0 query job failed or was aborted, or its results are gone (expired, another API
    version): the extractor reads the window by REST from the saved position instead."""


class ProtocolError(RemoteError, TransientError):
    """A remote answered with a body that is not the documented shape."""


class FatalError(SyncdError):
    pass


class AuthFailed(RemoteError, FatalError):
    """A token endpoint refused the credentials."""


class TlsFailed(RemoteError, FatalError):
    """TLS failed: the remote's certificate is not trusted (or the handshake was refused)."""


class Redirected(RemoteError, FatalError):
    """The remote answered 3xx. Never followed: the request, and a secret in it, would go elsewhere."""


class RemoteRejected(RemoteError, FatalError):
    """The remote rejected the request itself; repeating it will not help."""


class SetupRejected(RemoteRejected):
    """CXone refused an upload for a reason in the configuration, not in the leads (no such list, no
    right to it, a header its mapping does not take): the run fails, nothing is parked, and the staged
    batches go as they are once the setting named in the message is fixed."""

    @classmethod
    def naming(cls, problem: str, e: RemoteError) -> SetupRejected:
        """The refusal ``e`` (same remote, method, path, status), told as the configuration problem."""
        return cls(problem, remote=e.remote, method=e.method, path=e.path, status=e.status)


class ReadingMismatch(FatalError):
    """What verification found shows CXone behaving otherwise than the configuration assumes (an
    upload that replaces the list, a removal that does not remove): the message names the setting."""


class MassRemoval(FatalError):
    """A run would remove or suppress more than ``cxone.max_removal_percent`` of the list."""


def os_error_line(e: OSError) -> str:
    """One line for a file-system error nothing else translated: the path, what is wrong, the fix."""
    import errno
    import os
    import pwd

    path = e.filename or "?"
    if e.errno in (errno.EACCES, errno.EPERM):
        owner = None
        for p in (str(path), os.path.dirname(str(path))):
            try:
                owner = pwd.getpwuid(os.stat(p).st_uid).pw_name
                break
            except (OSError, KeyError):
                continue
        who = f" (owned by {owner})" if owner else ""
        run_as = f"`sudo -u {owner} syncd ...`" if owner else "the user that owns it"
        return (f"{path}: permission denied{who}; run syncd as {run_as}, the user the service runs as, or fix "
                "the file's owner and mode")
    if e.errno == errno.EROFS:
        return (f"{path}: the file system is read-only here; point [state] path at a writable directory (under "
                "systemd, inside the unit's StateDirectory, /var/lib/syncd)")
    if e.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
        return f"{path}: no space left on the device (or its quota is spent); free space and run again: nothing is lost"
    return f"{path}: {e.strerror or type(e).__name__}"
