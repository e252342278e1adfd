"""The tutorial's approach (shared/seed), done fairly, against the same simulator and sink as syncd.

Every run: fetch every matching lead into memory, transform them all (syncd's own phone and
eligibility rules, so both produce the same list), then upload in chunks of 500 one at a time,
polling each job every 5 s until it completes before sending the next. No state: every lead is
sent again on every run. Correct pagination (relative nextRecordsUrl on the instance) and retries
come from syncd's client, so the comparison is about the approach, not about the tutorial's bugs.

``python bench/baseline.py --config syncd.toml`` prints ``read N sent M``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from syncd.clock import utcnow
from syncd.config_file import load_config
from syncd.cxone.calllists import CallListsSink
from syncd.http import session_for
from syncd.salesforce import SalesforceClient
from syncd.secrets import load_secrets
from syncd.soql import literal_string, select_fields
from syncd.transform import Contact, Rules, transform

CHUNK = 500  # the tutorial's BATCH_SIZE
POLL_SECONDS = 5.0  # the tutorial's poll interval


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", type=Path, required=True)
    args = parser.parse_args()
    config = load_config(args.config)
    secrets = load_secrets(config)
    session = session_for(config.http)
    sf = SalesforceClient(config.salesforce, secrets, session)
    assert config.cxone.call_lists is not None
    sink = CallListsSink(config.cxone.call_lists, secrets, session, utcnow)

    statuses = ", ".join(literal_string(s) for s in config.salesforce.eligible_statuses)
    soql = (f"SELECT {', '.join(select_fields(config.salesforce.phone_fields))} FROM Lead "  # noqa: S608
            f"WHERE Status IN ({statuses}) AND IsConverted = false AND DoNotCall = false AND IsDeleted = false")
    records = []
    page = sf.query_all(soql)
    records.extend(page.records)
    while page.next_url:
        page = sf.next_page(page.next_url)
        records.extend(page.records)

    rules = Rules(frozenset(config.salesforce.eligible_statuses), tuple(config.salesforce.phone_fields),
                  config.salesforce.default_region)
    rows = []
    limit = CallListsSink.max_record_chars
    for record in records:
        out = transform(record, rules)
        if isinstance(out, Contact):
            line = sink.render(out)
            if limit is None or len(line) <= limit:
                rows.append(line)

    for n, start in enumerate(range(0, len(rows), CHUNK)):
        job = sink.upload(f"tutorial-{n}.csv", rows[start:start + CHUNK])
        while sink.job_status(job).state == "pending":
            time.sleep(POLL_SECONDS)
    print(f"read {len(records)} sent {len(rows)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
