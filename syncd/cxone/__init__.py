"""CXone sinks: where contacts go. ``make_sink`` picks the configured one."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import requests

from syncd.config import Config
from syncd.secrets import Secrets
from syncd.transform import Contact


@dataclass(frozen=True)
class JobResult:
    state: str  # pending | completed | failed
    detail: str = ""


class ContactSink(Protocol):
    name: str
    can_remove: bool
    can_read_back: bool  # the list can be read back (download) and numbers suppressed
    # The longest rendered record the remote accepts (None: no limit).
    max_record_chars: int | None

    def render(self, contact: Contact) -> str:
        """The exact record sent for this contact; stored with the staged batch."""

    def upload(self, file_name: str, payloads: Sequence[str]) -> str:
        """Send one staged batch; return the remote job id."""

    def job_status(self, job_id: str) -> JobResult: ...

    def expires_on(self, sent_at: datetime) -> str | None:
        """The last day a record sent at ``sent_at`` is dialled (YYYY-MM-DD), None: no expiry."""

    def remove(self, external_ids: Sequence[str]) -> tuple[list[str], list[str]]:
        """Take leads off the list; return (removed, failed) external ids."""

    def describe(self) -> dict[str, object]:
        """What the remote says about the target list (for doctor and demo)."""


def sink_can_remove(api: str) -> bool:
    """Whether the sink of ``cxone.api`` can take leads off the list (without building one)."""
    if api == "call-lists":
        from syncd.cxone.calllists import CallListsSink

        return CallListsSink.can_remove
    from syncd.cxone.batch import ContactsBatchSink

    return ContactsBatchSink.can_remove


def make_sink(config: Config, secrets: Secrets, session: requests.Session,
              now: Callable[[], datetime]) -> ContactSink:
    if config.cxone.api == "call-lists":
        from syncd.cxone.calllists import CallListsSink

        assert config.cxone.call_lists is not None
        return CallListsSink(config.cxone.call_lists, secrets, session, now)
    from syncd.cxone.batch import ContactsBatchSink

    assert config.cxone.contacts_batch is not None
    return ContactsBatchSink(config.cxone.contacts_batch, secrets, session, now)
