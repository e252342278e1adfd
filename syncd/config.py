"""The model of ``syncd.toml`` (the secrets that never live in it: ``syncd/secrets.py``).

Every key is binding (DESIGN.md); unknown keys are errors so that a typo cannot pass silently.
A bad file yields one :class:`~syncd.errors.ConfigError` holding one line per problem.
"""

from __future__ import annotations

import ipaddress
import re
import sys
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import phonenumbers
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from syncd.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised only on 3.10
    import tomli as tomllib

SF_IDENTIFIER = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,79}$")
CSV_COLUMNS = ("ExternalId", "PhoneNumber", "FirstName", "LastName", "Company", "Email", "Status",
               "City", "State", "Zip")
SINK_BATCH_LIMITS = {"call-lists": 500_000, "contacts-batch": 500}


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_url(value: str) -> str:
    """An absolute https URL, or http only to a loopback host (the simulator)."""
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError(f"must be an absolute https:// URL, got {value!r}")
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise ValueError(f"plain http:// is allowed only for loopback hosts, got {value!r}")
    return value.rstrip("/")


def check_fields(fields: dict[str, str]) -> dict[str, str]:
    """Extra columns: a plain column name each, mapped to a Lead field or a one-level relationship field."""
    for column, path in fields.items():
        if not column or len(column) > 80 or any(c in column for c in ',"\r\n'):
            raise ValueError(f"column name {column!r} must be 1..80 characters without commas, quotes or newlines")
        parts = path.split(".")
        if len(parts) > 2 or not all(SF_IDENTIFIER.match(p) for p in parts):
            raise ValueError(f"{column} = {path!r}: not a Lead field (Lead_Score__c) or a one-level "
                             "relationship field (Owner.Name)")
    return fields


Url = Annotated[str, Field(min_length=1)]
PositiveSeconds = Annotated[float, Field(gt=0)]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StateConfig(Section):
    path: Path = Path("state/syncd.db")
    busy_timeout_seconds: Annotated[float, Field(gt=0, le=600)] = 10.0


class HttpConfig(Section):
    connect_timeout_seconds: Annotated[float, Field(gt=0, le=300)] = 10.0
    read_timeout_seconds: Annotated[float, Field(gt=0, le=900)] = 120.0
    retries: Annotated[int, Field(ge=0, le=20)] = 5
    backoff_seconds: Annotated[float, Field(ge=0, le=60)] = 0.5
    max_backoff_seconds: Annotated[float, Field(ge=0, le=600)] = 30.0


class ScheduleConfig(Section):
    interval_seconds: Annotated[int, Field(ge=1)] | None = 300
    cron: str | None = None
    timezone: str = "UTC"  # IANA name the cron fields are read in (an interval needs none)
    full_refresh_days: Annotated[float, Field(ge=0, le=366)] = 7.0  # 0: only after reset or a delete-log gap

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{v!r} is not an IANA time zone name (e.g. UTC, Europe/Berlin, America/New_York)") \
                from None
        return v

    def tz(self) -> Any:
        from zoneinfo import ZoneInfo

        return ZoneInfo(self.timezone)

    def cron_trigger(self) -> Any:
        """The scheduler's trigger for ``cron``, read in ``timezone`` (checked, daemon and metrics alike)."""
        from apscheduler.triggers.cron import CronTrigger

        assert self.cron is not None
        return CronTrigger.from_crontab(self.cron, timezone=self.tz())

    def longest_gap(self, start: Any = None) -> float:
        """Seconds of the longest wait between two scheduled runs (a cron's night or weekend included),
        over the week from ``start``: what "no success for 3 intervals" alerts count in."""
        if not self.cron:
            return float(self.interval_seconds or 300)
        from datetime import datetime, timedelta, timezone

        trigger = self.cron_trigger()
        now = start or datetime.now(timezone.utc)
        end, prev, gap = now + timedelta(days=8), None, 0.0
        fire = trigger.get_next_fire_time(None, now)
        while fire is not None and fire < end:
            if prev is not None:
                gap = max(gap, (fire - prev).total_seconds())
            prev, fire = fire, trigger.get_next_fire_time(fire, fire + timedelta(seconds=1))
        return gap or 7 * 86_400.0

    @model_validator(mode="after")
    def _one_trigger(self) -> ScheduleConfig:
        if self.cron is not None:
            fields = self.cron.split()
            if len(fields) != 5:
                raise ValueError(f"cron must have 5 fields (minute hour day month weekday), got {self.cron!r}")
            # The scheduler's own parser: what it refuses here would otherwise crash the daemon at start.
            try:
                self.cron_trigger()
            except (ValueError, TypeError, KeyError) as e:
                raise ValueError(f"cron {self.cron!r} is not valid: {str(e)[:120]}") from None
        return self


class SalesforceConfig(Section):
    login_url: Url = "https://login.salesforce.com"
    auth: Literal["client_credentials", "jwt_bearer", "refresh_token", "access_token"] = "client_credentials"
    client_id: str = ""
    username: str = ""  # the JWT bearer flow's subject
    instance_url: str = ""  # only for auth = "access_token"
    api_version: Annotated[str, Field(pattern=r"^\d{2,3}\.0$")] = "62.0"
    eligible_statuses: Annotated[list[str], Field(min_length=1)] = ["Open - Not Contacted", "Working - Contacted"]
    phone_fields: Annotated[list[str], Field(min_length=1)] = ["MobilePhone", "Phone"]
    default_region: str = "US"
    where: str = ""
    jwt_audience: str = ""  # jwt_bearer; empty: https://login.salesforce.com (test.salesforce.com for sandboxes)
    lookback_seconds: Annotated[int, Field(ge=0, le=86_400 * 15)] = 300
    lag_seconds: Annotated[int, Field(ge=0, le=86_400)] = 60
    page_size: Annotated[int, Field(ge=200, le=2000)] = 2000
    max_api_usage_percent: Annotated[int, Field(ge=1, le=100)] = 80
    # rest | bulk | auto: Bulk API 2.0 for the first run, full refreshes and windows of more rows than
    # bulk_threshold (their first REST page's totalSize says how many).
    read_api: Literal["rest", "bulk", "auto"] = "auto"
    bulk_threshold: Annotated[int, Field(ge=0)] = 50_000

    _urls = field_validator("login_url")(check_url)

    @field_validator("instance_url")
    @classmethod
    def _instance(cls, v: str) -> str:
        return check_url(v) if v else v

    @field_validator("where")
    @classmethod
    def _where(cls, v: str) -> str:
        from syncd.soql.where import WhereError, parse_where  # here: syncd.soql imports this module

        try:
            parse_where(v)
        except WhereError as e:
            raise ValueError(f"{e}; see README, Configuration, where") from None
        return v.strip()

    @field_validator("jwt_audience")
    @classmethod
    def _audience(cls, v: str) -> str:
        return check_url(v) if v else v

    @property
    def audience(self) -> str:
        """The JWT ``aud``: Salesforce's login host, never the My Domain URL the token is posted to."""
        if self.jwt_audience:
            return self.jwt_audience
        host = (urlsplit(self.login_url).hostname or "").lower()
        sandbox = host == "test.salesforce.com" or ".sandbox." in host or host.endswith(".cs.force.com")
        return "https://test.salesforce.com" if sandbox else "https://login.salesforce.com"

    @field_validator("phone_fields")
    @classmethod
    def _identifiers(cls, v: list[str]) -> list[str]:
        for name in v:
            if not SF_IDENTIFIER.match(name):
                raise ValueError(f"{name!r} is not a Salesforce field name")
        return v

    @field_validator("default_region")
    @classmethod
    def _region(cls, v: str) -> str:
        if v.upper() not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f"{v!r} is not a region phonenumbers knows (ISO 3166 alpha-2, e.g. US, GB)")
        return v.upper()

    @model_validator(mode="after")
    def _auth_needs(self) -> SalesforceConfig:
        if self.auth in ("client_credentials", "jwt_bearer", "refresh_token") and not self.client_id:
            raise ValueError(f"client_id is required for auth = {self.auth!r}")
        if self.auth == "jwt_bearer" and not self.username:
            raise ValueError("username is required for auth = 'jwt_bearer'")
        if self.auth == "access_token" and not self.instance_url:
            raise ValueError("instance_url is required for auth = 'access_token'")
        return self


class CallListsConfig(Section):
    issuer: Url = "https://cxone.niceincontact.com"
    client_id: Annotated[str, Field(min_length=1)]
    api_endpoint: str = ""
    api_version: Annotated[str, Field(pattern=r"^\d{1,3}\.\d{1,2}$")] = "33.0"
    list_id: Annotated[int, Field(ge=1)]
    list_name: Annotated[str, Field(min_length=1)]
    skill_id: Annotated[int, Field(ge=1)]
    start_skill: bool = False
    expiration_days: Annotated[int, Field(ge=0, le=3650)] = 30
    refresh_before_days: Annotated[int, Field(ge=0, le=3650)] = 5
    default_time_zone: str = ""
    source_name: str = ""  # removeProspects' source; empty: list_name
    upload_mode: Literal["upsert", "snapshot"] = "upsert"
    removal: Literal["remove-prospects", "expire-only"] = "remove-prospects"
    dnc_group_id: Annotated[int, Field(ge=0)] = 0
    columns: dict[str, str] = {}
    fields: dict[str, str] = {}  # extra column name -> Lead field (``Lead_Score__c``, ``Owner.Name``)

    _urls = field_validator("issuer")(check_url)
    _fields = field_validator("fields")(lambda v: check_fields(v))

    @field_validator("api_endpoint")
    @classmethod
    def _endpoint(cls, v: str) -> str:
        return check_url(v) if v else v

    @field_validator("columns")
    @classmethod
    def _columns(cls, v: dict[str, str]) -> dict[str, str]:
        for key, name in v.items():
            if key not in CSV_COLUMNS:
                raise ValueError(f"unknown column {key!r}; known: {', '.join(CSV_COLUMNS)}")
            if not name or any(c in name for c in ',"\r\n'):
                raise ValueError(f"column name for {key} must be non-empty without commas, quotes or newlines")
        return v

    @model_validator(mode="after")
    def _expiry(self) -> CallListsConfig:
        if self.removal == "expire-only" and not self.expiration_days:
            raise ValueError("removal = 'expire-only' needs expiration_days > 0: a record that never expires "
                             "would never leave the list")
        if self.expiration_days and self.refresh_before_days >= self.expiration_days:
            raise ValueError(f"refresh_before_days ({self.refresh_before_days}) must be below expiration_days "
                             f"({self.expiration_days}), or every lead is re-sent every run")
        return self

    @property
    def source(self) -> str:
        return self.source_name or self.list_name

    def header(self) -> list[str]:
        return [self.columns.get(c, c) for c in CSV_COLUMNS] + list(self.fields)

    @model_validator(mode="after")
    def _unique_columns(self) -> CallListsConfig:
        header = [h.lower() for h in self.header()]
        dupes = sorted({h for h in header if header.count(h) > 1})
        if dupes:
            raise ValueError(f"column names must be unique; repeated: {', '.join(dupes)}")
        return self


class ContactsBatchConfig(Section):
    token_url: Url = "https://login.nicecxone.com/oauth2/token"  # noqa: S105 - a URL, not a secret
    base_url: Url = "https://api.nicecxone.com"
    client_id: Annotated[str, Field(min_length=1)]
    fields: dict[str, str] = {}  # custom_attributes key -> Lead field

    _urls = field_validator("token_url", "base_url")(check_url)
    _fields = field_validator("fields")(lambda v: check_fields(v))


class CXoneConfig(Section):
    api: Literal["call-lists", "contacts-batch"] = "call-lists"
    batch_size: Annotated[int, Field(ge=1)] = 5000
    max_in_flight: Annotated[int, Field(ge=1, le=64)] = 4
    poll_interval_seconds: PositiveSeconds = 5.0
    job_timeout_seconds: PositiveSeconds = 1800.0
    max_attempts: Annotated[int, Field(ge=1, le=100)] = 5
    verify_every_hours: Annotated[float, Field(ge=0, le=24 * 366)] = 24.0
    max_removal_percent: Annotated[float, Field(ge=0, le=100)] = 20.0
    call_lists: CallListsConfig | None = None
    contacts_batch: ContactsBatchConfig | None = None

    @model_validator(mode="after")
    def _sink(self) -> CXoneConfig:
        limit = SINK_BATCH_LIMITS[self.api]
        if self.batch_size > limit:
            raise ValueError(f"batch_size {self.batch_size} is above the {self.api} limit of {limit}")
        if self.api == "call-lists" and self.call_lists is None:
            raise ValueError("api = 'call-lists' needs a [cxone.call_lists] section")
        if self.api == "contacts-batch" and self.contacts_batch is None:
            raise ValueError("api = 'contacts-batch' needs a [cxone.contacts_batch] section")
        return self


class MetricsConfig(Section):
    listen: str = ""  # "host:port" to serve Prometheus metrics on; empty: off

    @field_validator("listen")
    @classmethod
    def _listen(cls, v: str) -> str:
        if not v:
            return v
        host, sep, port = v.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"must be host:port, e.g. 127.0.0.1:9464, got {v!r}")
        return v

    def address(self) -> tuple[str, int]:
        host, _, port = self.listen.rpartition(":")
        return host.strip("[]"), int(port)


class Config(Section):
    state: StateConfig = StateConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    salesforce: SalesforceConfig
    cxone: CXoneConfig
    http: HttpConfig = HttpConfig()
    metrics: MetricsConfig = MetricsConfig()

    @property
    def mapped_fields(self) -> dict[str, str]:
        """The active sink's extra columns: column -> Lead field."""
        sink = self.cxone.call_lists if self.cxone.api == "call-lists" else self.cxone.contacts_batch
        return dict(sink.fields) if sink is not None else {}


def _format_error(err: Any, origin: str) -> str:
    loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        return f"{origin}: {loc}: unknown key (check its spelling against syncd.example.toml)"
    if err["type"] == "missing":
        return f"{origin}: {loc}: required key is missing"
    got = err.get("input")
    shown = "" if isinstance(got, dict | list) or got is None or repr(got) in msg else f" (got {got!r})"
    return f"{origin}: {loc}: {msg}{shown}"


def parse_config(data: dict[str, Any], origin: str = "syncd.toml") -> Config:
    try:
        return Config.model_validate(data)
    except ValidationError as e:
        raise ConfigError([_format_error(err, origin) for err in e.errors()]) from None


def config_from_text(text: str, origin: str) -> Config:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError([f"{origin}: not valid TOML: {e}"]) from None
    return parse_config(data, origin)
