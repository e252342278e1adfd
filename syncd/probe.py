"""``syncd doctor --probe --list-id N``: prove on the tenant which reading of each UNVERIFIED CXone
behaviour holds (API-CONTRACTS.md, section 2), on a scratch list, and say which settings to use.

The experiments use four synthetic records (fictional 555-01xx numbers, ``startSkill: false``,
expiring today) on list N, which must not be the configured list: an experiment may replace a
list's whole content. Each step waits for its job and reads the list back; nothing is concluded
from an answer alone. The records are removed at the end (and expire today in any case).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from syncd.clock import utcnow
from syncd.config import Config
from syncd.cxone.calllists import CallListsSink
from syncd.cxone.download import ListRecord
from syncd.errors import Refused, RemoteRejected, SyncdError
from syncd.http import session_for
from syncd.secrets import Secrets
from syncd.transform import Contact

PROBE_IDS = tuple(f"syncdprobe{n:08d}" for n in range(1, 5))
PROBE_PHONES = tuple(f"+1202555{100 + n:04d}" for n in range(1, 5))  # 555-0101..0104: fictional
# Verdicts that, when not ok, mean syncd cannot load this list at all (the others name a setting).
BLOCKING = ("api_version", "list_file", "expiration_date")


@dataclass
class Verdict:
    name: str
    verdict: str
    detail: str = ""
    ok: bool = True


@dataclass
class ProbeReport:
    list_id: int
    verdicts: list[Verdict] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def blocked(self) -> bool:
        """Whether the list cannot be loaded as configured (api version, file, expiration refused)."""
        return not self.verdicts or any(not v.ok for v in self.verdicts if v.name in BLOCKING)

    def as_json(self) -> dict[str, Any]:
        return {"list_id": self.list_id, "usable": not self.blocked, "verdicts": [v.__dict__ for v in self.verdicts],
                "settings": self.settings, "config_lines": self.config_lines()}

    def config_lines(self) -> list[str]:
        return [f"{k} = {v!r}".replace("'", '"') for k, v in self.settings.items()]


class Probe:
    def __init__(self, config: Config, secrets: Secrets, list_id: int, sleep: Callable[[float], None] = time.sleep):
        cl = config.cxone.call_lists
        if config.cxone.api != "call-lists" or cl is None:
            raise Refused("--probe tests the call-lists API; cxone.api is not call-lists")
        if list_id == cl.list_id:
            raise Refused(f"--list-id {list_id} is the configured list: the probe may replace a list's whole "
                          "content, so give it a scratch list (create one in CXone with the same column mapping)")
        self.cfg, self.list_id, self.sleep = config, list_id, sleep
        self.session = session_for(config.http)
        self.sink = CallListsSink(cl, secrets, self.session, utcnow)
        self.report = ProbeReport(list_id)
        self.today = utcnow().date().isoformat()

    def _say(self, name: str, verdict: str, detail: str = "", ok: bool = True) -> None:
        self.report.verdicts.append(Verdict(name, verdict, detail, ok))

    def _upload(self, indexes: range | list[int]) -> None:
        rows = [self.sink.render(Contact(PROBE_IDS[i], PROBE_PHONES[i], "WORK", "Probe", f"Record{i + 1}", "syncd",
                                         "", "probe", "", "", "")) for i in indexes]
        job = self.sink.upload(f"syncd-probe-{int(time.time())}-{len(rows)}.csv", rows, list_id=self.list_id,
                               expiration=self.today)
        deadline = time.monotonic() + self.cfg.cxone.job_timeout_seconds
        while (state := self.sink.job_status(job)).state == "pending":
            if time.monotonic() > deadline:
                raise SyncdError(f"probe upload job {job} did not complete within job_timeout_seconds")
            self.sleep(min(self.cfg.cxone.poll_interval_seconds, 2.0))
        if state.state != "completed":
            raise SyncdError(f"probe upload job {job} failed: {state.detail}")

    def _held(self) -> dict[str, ListRecord]:
        found = self.sink.download(self.cfg.cxone.job_timeout_seconds, list_id=self.list_id)
        return {r.external_id: r for r in found if r.external_id in PROBE_IDS}

    def run(self) -> ProbeReport:
        try:
            self._run()
        finally:
            with contextlib.suppress(SyncdError):  # they expire today anyway
                self.sink.remove(list(PROBE_IDS), source=self._source)
            self.session.close()
        return self.report

    _source = ""

    def _run(self) -> None:
        cl = self.cfg.cxone.call_lists
        assert cl is not None
        try:
            info = self.sink.describe(self.list_id)
        except RemoteRejected as e:
            self._say("api_version", "does not serve calling lists", f"v{cl.api_version}: {e}", ok=False)
            return
        self._source = str(info.get("listName") or "")
        self._say("api_version", f"v{cl.api_version} serves lists/call-lists/{self.list_id}",
                  f"list {self._source!r}")
        try:
            self._upload(range(3))
        except RemoteRejected as e:
            self._say("list_file", "rejected: the upload is refused", str(e), ok=False)
            return
        self._say("list_file", "base64 of a UTF-8 CSV is accepted")
        held = self._held()
        if len(held) < 3:
            self._say("expiration_date", "records missing after a completed job", f"{len(held)} of 3 on the list",
                      ok=False)
            return
        shown = {r.expires_on for r in held.values()}
        self._say("expiration_date", "YYYY-MM-DD is accepted" if shown == {self.today} else
                  f"YYYY-MM-DD taken, CXone shows {sorted(str(s) for s in shown)}", f"sent {self.today}")
        self._upload([3])
        held = self._held()
        replaced = not any(i in held for i in PROBE_IDS[:3])
        self._say("force_overwrite", "replaces the whole list" if replaced else "upserts by ExternalId",
                  "an upload of one record " + ("left only that record" if replaced else "kept the other three"))
        self.report.settings["upload_mode"] = "snapshot" if replaced else "upsert"
        removed, failed = self.sink.remove([PROBE_IDS[3]], source=self._source)
        record = self._held().get(PROBE_IDS[3])
        gone = record is None or record.state == "removed"
        removal = "removes" if gone else "fails" if failed else "answers success and removes nothing"
        self._say("remove_prospects", removal, f"source {self._source!r}; answered "
                  f"{'removed' if removed else 'failed'}, the record is {'gone' if gone else 'still active'}",
                  ok=gone)
        readd = ""
        if gone:
            self._upload([3])
            again = self._held().get(PROBE_IDS[3])
            readd = "reactivates" if again is not None and again.state == "active" else "stays removed"
            self._say("re_add", f"a removed record uploaded again {readd}", ok=readd == "reactivates")
        works = gone and readd == "reactivates"
        self.report.settings["removal"] = "remove-prospects" if works else "expire-only"
        self._dnc(works)

    def _dnc(self, removal_works: bool) -> None:
        cl = self.cfg.cxone.call_lists
        assert cl is not None
        if not cl.dnc_group_id:
            self._say("dnc_group", "not configured", "Do Not Call leads then rely on removal alone"
                      if removal_works else "removal does not work here: set dnc_group_id, or Do Not Call leads "
                      "stay callable until their records expire", ok=removal_works)
            return
        skills = self.sink.dnc().scrubbed_skills()
        scrubs = cl.skill_id in skills
        self._say("dnc_group", f"group {cl.dnc_group_id} {'scrubs' if scrubs else 'does not scrub'} skill "
                  f"{cl.skill_id}", f"scrubbed skills: {sorted(skills)}", ok=scrubs)
        self.report.settings["dnc_group_id"] = cl.dnc_group_id
