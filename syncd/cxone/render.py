"""How a contact is written for each sink: a CSV line for call lists, a JSON object for contacts batch.

What is rendered here is stored with the staged batch and sent byte for byte, on every resend.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from syncd.transform import Contact


def csv_values(contact: Contact) -> list[str]:
    """Values in the order of ``config.CSV_COLUMNS``, then the mapped extra columns'."""
    c = contact
    values = [c.external_id, c.phone, c.first_name, c.last_name, c.company, c.email, c.status, c.city,
              c.state, c.zip]
    return values + list(c.extra) if c.extra else values


def csv_line(values: Sequence[str]) -> str:
    """One CSV record as ``csv.writer`` writes it for the file's CRLF lines, without the terminator.

    RFC 4180 quoting (QUOTE_MINIMAL): a value holding a comma, a quote or a line break is quoted,
    its quotes doubled; a record of one empty value is ``""``.
    """
    line = ",".join(values)
    if len(values) > 1 and line.count(",") == len(values) - 1 and '"' not in line and "\n" not in line \
            and "\r" not in line:
        return line  # nothing to quote (no value holds a comma, quote or line break): the common case
    if len(values) == 1 and not values[0]:
        return '""'
    return ",".join(['"' + v.replace('"', '""') + '"' if "," in v or '"' in v or "\n" in v or "\r" in v else v
                     for v in values])


def batch_contact(contact: Contact, columns: Sequence[str] = ()) -> dict[str, Any]:
    """The contacts-batch API's contact object; the mapped extra columns go in ``custom_attributes``."""
    c = contact
    name = " ".join(p for p in (c.first_name, c.last_name) if p) or c.company or c.external_id
    attrs = {"sf_status": c.status, "sf_source": "Lead", "company": c.company, "city": c.city,
             "state": c.state, "zip": c.zip}
    attrs.update(zip(columns, c.extra, strict=True))
    return {
        "external_id": c.external_id,
        "name": name,
        "phone_numbers": [{"number": c.phone, "type": c.phone_type, "primary": True}],
        "email_addresses": [{"email": c.email, "primary": True}] if c.email else [],
        "custom_attributes": attrs,
    }
