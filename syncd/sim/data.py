"""Seeded, reproducible synthetic Leads that look like a real, messy org."""

from __future__ import annotations

import random
import string
from datetime import datetime, timedelta
from typing import Any

BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
LEAD_FIELDS = (
    "Id", "FirstName", "LastName", "Name", "Company", "Phone", "MobilePhone", "Email", "Status", "IsConverted",
    "DoNotCall", "HasOptedOutOfEmail", "IsDeleted", "PostalCode", "State", "City", "Country", "SystemModstamp",
    "CreatedDate", "LastModifiedDate", "MasterRecordId", "LeadSource", "OwnerId", "Lead_Score__c", "Interests__c",
    "Score_Band__c", "Follow_Up__c", "Owner.Name", "Owner.Email",
)
# Custom fields of the simulated org (describe types them); Score_Band__c is a formula: it changes
# without moving SystemModstamp, as do the Owner's fields.
INTERESTS = ["Solar", "Solar;Wind", "Wind;Hydro", None]
USERS = [("005SIM000000001AAA", "Ada Lovelace"), ("005SIM000000002AAA", "Grace Hopper"),
         ("005SIM000000003AAA", "Alan Turing"), ("005SIM000000004AAA", "Edsger Dijkstra"),
         ("005SIM000000005AAA", "Barbara Liskov")]
STATUSES = [("Open - Not Contacted", 40), ("Working - Contacted", 30), ("Nurturing", 10),
            ("Closed - Not Converted", 12), ("Unqualified", 8)]
FIRST = ["James", "Mary", "Robert", "Patricia", "José", "Zoë", "Øyvind", "Siobhán", "Nguyễn", "李", "Mohammed",
         "Aiyana", "François", "Björn", "Anaïs", "Dmitri", "Chloé", "Kwame", "Priya", "Łukasz", "=HYPERLINK(\"x\")",
         "+Plus", "@mention", "-minus", "Renée", "محمد", "אורי"]
LAST = ["Smith", "O'Brien", "D'Angelo", "García", "Müller", "Nguyen", "Ødegård", "van der Berg", "Kowalski",
        "Zhang", "=cmd|' /C calc'!A0", "Papadopoulos", "Johnson", "Brown", "N'Diaye", "Smith-Jones", "Ångström",
        "O'Neil", "Williams", "Davis"]
COMPANIES = ["Acme, Inc.", 'The "Best" Co', "Müller & Söhne GmbH", "Initech", "Globex Corporation",
             "Umbrella Corp", "Stark Industries", "Wayne Enterprises", "Soylent, Ltd.", "O'Reilly Auto Parts",
             "Tyrell Corp", "=SUM(A1:A9)", "日本商事株式会社", "Café Olé", "Hooli", "Pied Piper", "Vandelay Industries"]
PLACES = [("San Francisco", "CA", "94105", "US"), ("New York", "NY", "10001", "US"), ("Austin", "TX", "73301", "US"),
          ("Chicago", "IL", "60601", "US"), ("Seattle", "WA", "98101", "US"), ("London", "", "EC1A 1BB", "GB"),
          ("Toronto", "ON", "M5H 2N2", "CA"), ("Paris", "", "75001", "FR"), ("Miami", "FL", "33101", "US")]
AREAS = ["415", "212", "512", "312", "206", "305", "617", "303", "404", "646", "202", "702"]


def lead_id(n: int) -> str:
    digits = ""
    while True:
        n, r = divmod(n, 62)
        digits = BASE62[r] + digits
        if n == 0:
            break
    return "00Q" + digits.rjust(12, "0") + "EAY"


def phone_variant(rng: random.Random) -> str | None:
    area, exch, line = rng.choice(AREAS), rng.randint(201, 989), rng.randint(0, 9999)
    forms = [
        (f"({area}) {exch}-{line:04d}", 22),
        (f"{area}-{exch}-{line:04d}", 14),
        (f"{area}.{exch}.{line:04d}", 8),
        (f"+1 {area} {exch} {line:04d}", 10),
        (f"1-{area}-{exch}-{line:04d}", 5),
        (f"{area}{exch}{line:04d}", 6),
        (f"+1 ({area}) {exch}-{line:04d} ext. {rng.randint(1, 999)}", 3),
        (f"{area}-{exch}-{line:04d} x{rng.randint(1, 9999)}", 3),
        (f"+44 20 7946 {rng.randint(0, 9999):04d}", 3),
        (f"+33 1 42 68 {rng.randint(10, 99)} {rng.randint(10, 99)}", 2),
        ("1-800-FLOWERS", 1),
        (f"{exch}-{line:04d}", 4),  # no area code: not a valid number
        ("call me later", 2),
        ("n/a", 2),
        ("", 5),
        ("+1 555", 2),
        (f" {area} {exch} {line:04d} ", 2),
    ]
    roll = rng.randint(1, sum(w for _, w in forms) + 8)
    for text, weight in forms:
        roll -= weight
        if roll <= 0:
            return text
    return None


def _pick(rng: random.Random, weighted: list[tuple[str, int]]) -> str:
    roll = rng.randint(1, sum(w for _, w in weighted))
    for value, weight in weighted:
        roll -= weight
        if roll <= 0:
            return value
    return weighted[-1][0]


def make_lead(rng: random.Random, n: int, stamp: datetime) -> dict[str, Any]:
    first, last = rng.choice(FIRST), rng.choice(LAST)
    city, state, postal, country = rng.choice(PLACES)
    converted = rng.random() < 0.05
    lead: dict[str, Any] = {
        "Id": lead_id(n),
        "FirstName": first if rng.random() > 0.03 else None,
        "LastName": last,
        "Company": rng.choice(COMPANIES),
        "Phone": phone_variant(rng),
        "MobilePhone": phone_variant(rng) if rng.random() < 0.45 else None,
        "Email": f"{first.lower()[:6]}.{n}@example.com" if rng.random() < 0.8 else rng.choice([None, "not-an-email"]),
        "Status": "Closed - Converted" if converted else _pick(rng, STATUSES),
        "IsConverted": converted,
        "DoNotCall": rng.random() < 0.06,
        "HasOptedOutOfEmail": rng.random() < 0.1,
        "IsDeleted": False,
        "PostalCode": postal,
        "State": state,
        "City": city,
        "Country": country,
        "LeadSource": rng.choice(["Web", "Phone Inquiry", "Partner Referral", "Trade Show", None]),
        "MasterRecordId": None,
        # Derived from n, not drawn: the random stream (and so every other field) stays as it was.
        "OwnerId": USERS[n % len(USERS)][0],
        "Lead_Score__c": float((n * 37) % 100),
        "Interests__c": INTERESTS[n % len(INTERESTS)],
        "Score_Band__c": "ABC"[((n * 37) % 100) // 34],
        "Follow_Up__c": None,
        "CreatedDate": stamp,
        "LastModifiedDate": stamp,
        "SystemModstamp": stamp,
    }
    lead["Name"] = " ".join(p for p in (lead["FirstName"], lead["LastName"]) if p)
    return lead


def generate(count: int, seed: int, now: datetime, start: int = 0, scatter_ids: bool = False) -> list[dict[str, Any]]:
    """``count`` leads modified over the 90 days before ``now``; some share a second (bulk updates).

    By default a lead's Id follows its SystemModstamp, as in an org whose leads were each touched only
    when made. ``scatter_ids`` deals the same Ids out in a shuffled order (a stream of its own: every
    other field is as without it), as in an org whose leads were modified long after they were made
    (assignment, scoring, marketing sync): read by SystemModstamp, their Ids come in no order."""
    rng = random.Random(seed)
    numbers = list(range(start + 1, start + count + 1))
    if scatter_ids:
        random.Random(f"{seed}:ids").shuffle(numbers)
    leads = []
    stamp = now - timedelta(days=90)
    step = timedelta(days=90).total_seconds() / max(count, 1)
    for i in range(count):
        if rng.random() > 0.15:  # otherwise: same second as the previous row, as a bulk update leaves it
            stamp = now - timedelta(days=90) + timedelta(seconds=int(i * step))
        leads.append(make_lead(rng, numbers[i], stamp.replace(microsecond=0)))
    return leads


def mutation(rng: random.Random, lead: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """A realistic change to one lead: (kind, fields to set)."""
    kind = _pick(rng, [("phone", 30), ("name", 20), ("status", 15), ("convert", 10), ("dnc", 10),
                       ("delete", 8), ("undnc", 7)])
    if kind == "phone":
        return kind, {"Phone": phone_variant(rng), "MobilePhone": phone_variant(rng) if rng.random() < 0.4 else None}
    if kind == "name":
        return kind, {"FirstName": rng.choice(FIRST), "Company": rng.choice(COMPANIES)}
    if kind == "status":
        return kind, {"Status": _pick(rng, STATUSES)}
    if kind == "convert":
        return kind, {"IsConverted": True, "Status": "Closed - Converted"}
    if kind == "dnc":
        return kind, {"DoNotCall": True}
    if kind == "delete":
        return kind, {"IsDeleted": True}
    return kind, {"DoNotCall": False, "Status": "Working - Contacted"}


# The order the org's SystemModstamp index gives leads in (``SalesforceSim._candidates``).
BY_STAMP = ("SystemModstamp", "Id")
