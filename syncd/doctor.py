"""``syncd doctor``: check configuration, state, reachability, auth and the target list, one line each."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from syncd.clock import utcnow
from syncd.config import Config
from syncd.cxone import make_sink
from syncd.errors import RemoteRejected, SyncdError
from syncd.http import make_session
from syncd.lock import StateLock
from syncd.salesforce import SalesforceClient
from syncd.salesforce.tokens import token_file_for
from syncd.secrets import Secrets
from syncd.soql import select_fields
from syncd.store import Store
from syncd.transform import rules_for


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


def _state(config: Config) -> str:
    path = config.state.path
    if path.exists():
        store = Store(path, readonly=True)
        try:
            store.check_integrity()  # quick_check: a damaged file is said here, before a run trips on it
        finally:
            store.close()
        holder = StateLock(path).held_by_other()
        return f"{path} is a syncd database and passed its integrity check" + (
            f" (pid {holder} holds the lock)" if holder else "")
    parent = next((p for p in [path.parent, *path.parent.parents] if p.exists()), None)
    if parent is None or not os.access(parent, os.W_OK):
        raise SyncdError(f"{path} does not exist and {parent} is not writable")
    return (f"{path} does not exist yet; the first run creates it (if a syncd service already runs for this list, "
            "this is not its configuration: pass the service's --config)")


def _dnc_group(sink: object, group_id: int, skill_id: int) -> str:
    skills = sink.dnc().scrubbed_skills()  # type: ignore[attr-defined]
    if skill_id not in skills:
        raise SyncdError(f"DNC group {group_id} does not scrub skill {skill_id} (it scrubs {sorted(skills) or 'none'}):"
                         " its numbers would still be dialled on this list; add the skill to the group's scrubbed "
                         "skills in CXone")
    return f"DNC group {group_id} scrubs skill {skill_id}"


def _refused(config: Config, e: RemoteRejected, what: str) -> str:
    cl = config.cxone.call_lists
    if e.status == 404 and cl is not None and config.cxone.api == "call-lists":
        setting = (f"cxone.call_lists.list_id = {cl.list_id}: CXone has no such list" if what == "list"
                   else f"cxone.call_lists.skill_id = {cl.skill_id}: CXone has no such skill")
        return f"{setting} (404); set it to the id CXone shows"
    if e.status == 403:
        return f"{e}: the API user may not read this {what}; give its role the right, or check the id"
    return str(e)


def _skill(info: dict[str, object], skill_id: int) -> str:
    """The list's skill must dial out and be active; a fact the answer does not carry is left unknown."""
    name = info.get("skillName") or "?"
    if info.get("isOutbound") is False:
        raise SyncdError(f"cxone.call_lists.skill_id = {skill_id} ({name!r}) is not an outbound skill: the list's "
                         "records would never be dialled; use the outbound skill that dials this list")
    if info.get("isActive") is False:
        raise SyncdError(f"cxone.call_lists.skill_id = {skill_id} ({name!r}) is inactive: nothing dials it; "
                         "activate it in CXone or use the active skill")
    media = f", {info['mediaTypeName']}" if info.get("mediaTypeName") else ""
    known = "" if "isOutbound" in info else " (the answer does not say whether it is outbound)"
    return f"skill {skill_id} {name!r}{media}{', outbound' if info.get('isOutbound') else ''}{known}"


def run_checks(config: Config, secrets: Secrets) -> Iterator[Check]:
    session = make_session(retries=1, timeout=(min(config.http.connect_timeout_seconds, 5.0),
                                               min(config.http.read_timeout_seconds, 30.0)))
    # The token file beside the state: a rotation doctor causes is kept, as the daemon's are.
    sf = SalesforceClient(config.salesforce, secrets, session, token_file=token_file_for(config.state.path))
    reads = rules_for(config).reads
    sink = make_sink(config, secrets, session, utcnow)

    def check(name: str, fn: Callable[[], str]) -> Check:
        try:
            return Check(name, True, fn())
        except SyncdError as e:
            return Check(name, False, str(e))

    def salesforce_auth() -> str:
        presented = sf.refresh_source  # the token this process started with (rotation replaces it)
        sf.authenticate()
        which = f"; refresh token {presented}" if config.salesforce.auth == "refresh_token" else ""
        aud = f"; JWT audience {config.salesforce.audience}" if config.salesforce.auth == "jwt_bearer" else ""
        return f"{config.salesforce.auth} accepted; instance {sf.instance_url}{which}{aud}"

    def salesforce_clock() -> str:
        sf.learn_clock()
        if sf.clock_offset is None:
            raise SyncdError("Salesforce's answers carry no Date header: its clock is unknown, windows follow this "
                             "host's")
        skew = sf.clock_offset.total_seconds()
        if abs(skew) > max(config.salesforce.lag_seconds, 5):  # the Date header is whole seconds
            raise SyncdError(f"Salesforce's clock is {skew:+.0f} s from this host's, more than lag_seconds "
                             f"({config.salesforce.lag_seconds}); windows follow Salesforce's, but fix the host's "
                             "clock (NTP)")
        return f"Salesforce's clock is {skew:+.0f} s from this host's (windows follow Salesforce's)"

    def salesforce_fields() -> str:
        described = sf.describe_lead()
        unknown = [name for name in (*config.salesforce.phone_fields, *reads) if (
            name.lower() not in described if "." not in name else name.split(".")[0].lower() + "." not in described)]
        if unknown:
            raise SyncdError(f"Lead has no field {', '.join(unknown)} (checked against describe; a relationship is "
                             "checked by its name, e.g. Owner); fix salesforce.where, phone_fields or the mapped "
                             "fields")
        formulas = [n for n in reads if "." not in n and described[n.lower()].get("calculated")]
        note = (f"; {', '.join(formulas)} {'is a formula' if len(formulas) == 1 else 'are formulas'}: changes reach "
                "CXone at the next full refresh") if formulas else ""
        return f"every field syncd reads exists on Lead ({len(reads)} beyond the standard ones){note}"

    def salesforce_query() -> str:
        fields = ", ".join(select_fields(config.salesforce.phone_fields, reads))
        page = sf.query_all(f"SELECT {fields} FROM Lead LIMIT 1")  # noqa: S608 - validated fields
        usage = f"; API usage {sf.api_usage[0]}/{sf.api_usage[1]}" if sf.api_usage else ""
        return f"Lead fields readable ({page.total_size} row{'s' * (page.total_size != 1)} in a LIMIT 1 probe){usage}"

    def cxone() -> str:
        try:
            info = sink.describe()
        except RemoteRejected as e:
            raise SyncdError(_refused(config, e, "list")) from None
        if config.cxone.api == "call-lists":
            assert config.cxone.call_lists is not None
            return (f"list {config.cxone.call_lists.list_id} {info.get('listName')!r} ({info.get('status')}, "
                    f"{info.get('validRecords')} valid records)")
        return f"token accepted for {info.get('base_url')}"

    def skill() -> str:
        assert config.cxone.call_lists is not None
        try:
            return _skill(sink.skill(), config.cxone.call_lists.skill_id)  # type: ignore[attr-defined]
        except RemoteRejected as e:
            raise SyncdError(_refused(config, e, "skill")) from None

    try:
        yield Check("config", True, "valid, secrets present")
        yield check("state", lambda: _state(config))
        auth = check("salesforce auth", salesforce_auth)
        yield auth
        if auth.ok:
            yield check("salesforce clock", salesforce_clock)
            fields = check("salesforce fields", salesforce_fields)
            yield fields
            if fields.ok:
                yield check("salesforce query", salesforce_query)
        yield check(f"cxone {config.cxone.api}", cxone)
        cl = config.cxone.call_lists
        if config.cxone.api == "call-lists":
            yield check("cxone skill", skill)
        if config.cxone.api == "call-lists" and cl is not None and cl.dnc_group_id:
            yield check("cxone dnc group", lambda: _dnc_group(sink, cl.dnc_group_id, cl.skill_id))
        elif config.cxone.api == "call-lists" and cl is not None and cl.removal == "expire-only":
            yield Check("cxone dnc group", False, "removal = 'expire-only' without dnc_group_id: a lead that turns "
                        "Do Not Call stays callable until its record expires; set dnc_group_id")
    finally:
        session.close()
