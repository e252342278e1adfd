"""The ``syncd.toml`` a client needs to talk to a simulator at ``url`` (``Simulator.config_toml``)."""

from __future__ import annotations

import json

from syncd.sim import cxone as cx
from syncd.sim import salesforce as sf


def config_toml(url: str, *, api: str = "call-lists", state_path: str = "state/syncd.db",
                batch_size: int | None = None, lag_seconds: int = 0, poll_interval: float = 0.2,
                interval_seconds: int = 60, verify_every_hours: float = 24, max_removal_percent: float = 20,
                upload_mode: str = "upsert", removal: str = "remove-prospects", dnc_group_id: int = 0,
                expiration_days: int = 30, where: str = "", full_refresh_days: float = 7,
                salesforce_extra: str = "", fields: str = "", read_api: str = "auto",
                bulk_threshold: int = 50_000, list_id: int = 1234, skill_id: int = 5678,
                columns: str = "") -> str:
    """A config for this simulator; ``salesforce_extra`` and ``fields`` are raw TOML lines for the
    [salesforce] section and the extra-column table of the sink."""
    size = batch_size or (500 if api == "contacts-batch" else 5000)
    sink_fields = f"[cxone.{api.replace('-', '_')}.fields]\n{fields}\n" if fields else ""
    sink_fields += f"[cxone.call_lists.columns]\n{columns}\n" if columns else ""
    return f"""\
[state]
path = "{state_path}"

[schedule]
interval_seconds = {interval_seconds}
full_refresh_days = {full_refresh_days:g}

[salesforce]
login_url = "{url}"
auth = "client_credentials"
client_id = "{sf.CLIENT_ID}"
eligible_statuses = ["Open - Not Contacted", "Working - Contacted"]
phone_fields = ["MobilePhone", "Phone"]
default_region = "US"
lookback_seconds = 300
lag_seconds = {lag_seconds}
page_size = 2000
where = {json.dumps(where)}
read_api = "{read_api}"
bulk_threshold = {bulk_threshold}
{salesforce_extra}

[cxone]
api = "{api}"
batch_size = {size}
max_in_flight = 4
poll_interval_seconds = {poll_interval}
job_timeout_seconds = 120
max_attempts = 3
verify_every_hours = {verify_every_hours:g}
max_removal_percent = {max_removal_percent:g}

[cxone.call_lists]
issuer = "{url}"
client_id = "{cx.CLIENT_ID}"
list_id = {list_id}
list_name = "Salesforce Leads"
skill_id = {skill_id}
expiration_days = {expiration_days}
upload_mode = "{upload_mode}"
removal = "{removal}"
dnc_group_id = {dnc_group_id}

[cxone.contacts_batch]
token_url = "{url}/oauth2/token"
base_url = "{url}"
client_id = "{cx.CLIENT_ID}"

{sink_fields}"""
