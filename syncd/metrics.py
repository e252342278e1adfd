"""Optional Prometheus metrics (``[metrics] listen``), read from the state at scrape time.

Counts come from the database, so they are right across restarts and whatever process did the
work; only the live figures (jobs in flight, Salesforce API usage) come from the running daemon.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from syncd import __version__
from syncd.errors import ConfigError, StateError
from syncd.store import Store

log = logging.getLogger(__name__)


@dataclass
class Live:
    """What only the running daemon knows; updated from the engine's progress."""

    api_used: int | None = None
    api_limit: int | None = None


class StateCollector:
    def __init__(self, db: Path, live: Live, interval_seconds: float | None = None) -> None:
        self.db = db
        self.live = live
        self.interval_seconds = interval_seconds  # the schedule's (longest) gap between runs

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        try:
            store = Store(self.db, readonly=True)
        except StateError:
            return
        try:
            totals = store.totals()
            counts = store.counts()
            last_ok = store.last_success()
            checked = store.last_verification()
            last = store.last_finished_run()
        finally:
            store.close()
        info = GaugeMetricFamily("syncd_build_info", "The running syncd's version", labels=["version"])
        info.add_metric([__version__], 1)
        yield info
        if self.interval_seconds:
            yield GaugeMetricFamily("syncd_schedule_interval_seconds", "Longest gap between two scheduled runs",
                                    value=self.interval_seconds)
        if last is not None:
            started, finished = datetime.fromisoformat(last["started_at"]), datetime.fromisoformat(last["finished_at"])
            yield GaugeMetricFamily("syncd_last_run_timestamp_seconds", "End of the last finished run",
                                    value=finished.timestamp())
            yield GaugeMetricFamily("syncd_last_run_ok", "1 if the last finished run ended ok, else 0",
                                    value=1 if last["status"] == "ok" else 0)
            yield GaugeMetricFamily("syncd_last_run_duration_seconds", "How long the last finished run took",
                                    value=(finished - started).total_seconds())
        for name, value, text in (("read", totals["read"], "Lead records read from Salesforce"),
                                  ("sent", totals["sent"], "Leads uploaded to CXone"),
                                  ("removed", totals["removed"], "Leads removed from the CXone list")):
            yield CounterMetricFamily(f"syncd_leads_{name}", text, value=value)
        skipped = GaugeMetricFamily("syncd_leads_skipped", "Leads not on the list, by reason", labels=["reason"])
        for reason, n in counts["skipped"].items():
            skipped.add_metric([reason], n)
        yield skipped
        leads = GaugeMetricFamily("syncd_leads", "Tracked leads by state", labels=["state"])
        for key in ("tracked", "on_list", "dirty", "pending_removal", "parked", "suppressed", "unremovable"):
            leads.add_metric([key], counts["leads"][key])
        yield leads
        batches = GaugeMetricFamily("syncd_batches", "Batches by state", labels=["state"])
        for state, n in counts["batches"].items():
            batches.add_metric([state], n)
        yield batches
        yield GaugeMetricFamily("syncd_jobs_in_flight", "CXone jobs submitted and not yet closed",
                                value=counts["batches"]["submitted"])
        if checked is not None:
            drift = GaugeMetricFamily("syncd_verify_drift", "What the last verification of the list found",
                                      labels=["kind"])
            for kind in ("missing", "expired", "finalized", "wrong", "unexpected", "removed_again", "unrestorable",
                         "rejected"):
                drift.add_metric([kind], checked[kind])
            drift.add_metric(["unremovable"], counts["leads"]["unremovable"])
            yield drift
            yield GaugeMetricFamily("syncd_verify_timestamp_seconds", "When the list was last verified",
                                    value=datetime.fromisoformat(checked["at"]).timestamp())
        if last_ok:
            yield GaugeMetricFamily("syncd_last_success_timestamp_seconds", "End of the last successful run",
                                    value=datetime.fromisoformat(last_ok).timestamp())
        if self.live.api_used is not None and self.live.api_limit:
            usage = GaugeMetricFamily("syncd_salesforce_api_requests", "Salesforce API usage (24 h)",
                                      labels=["kind"])
            usage.add_metric(["used"], self.live.api_used)
            usage.add_metric(["limit"], self.live.api_limit)
            yield usage


def serve(host: str, port: int, db: Path, live: Live, interval_seconds: float | None = None) -> Any:
    """Start the metrics endpoint; returns the server (call ``shutdown()`` to stop it)."""
    try:
        from prometheus_client import CollectorRegistry, start_http_server
    except ImportError:
        raise ConfigError(["metrics.listen is set but prometheus-client is not installed "
                           "(pip install 'syncd[metrics]')"]) from None
    registry = CollectorRegistry()
    registry.register(StateCollector(db, live, interval_seconds))
    try:
        server, _thread = start_http_server(port, addr=host, registry=registry)
    except OSError as e:
        raise ConfigError([f"metrics.listen: cannot listen on {host}:{port} ({e.strerror})"]) from None
    log.info("metrics on http://%s:%d/metrics", host, port)
    return server
