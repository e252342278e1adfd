"""syncd.phones gives exactly phonenumbers' answers, by a faster road."""

from __future__ import annotations

import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from syncd.phones import NANP_PLAIN, PhoneRules, region_validator

REGIONS = ["US", "CA", "GB", "FR", "DE", "IN", "BR", "AU", "JP", "MX", "IT", "NG", "PR", "JM"]


def reference_e164(raw: str, region: str) -> str | None:
    """What the library says, the plain way: parse, validate, format."""
    try:
        number = phonenumbers.parse(raw[:64], region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))


nanp = st.builds(
    lambda lead, prefix, paren, area, sep1, exch, sep2, line, pad: (
        f"{lead}{prefix}{'(' + area + ')' if paren else area}{sep1}{exch}{sep2}{line}{pad}"),
    st.sampled_from(["", " ", "  "]), st.sampled_from(["", "+1 ", "1-", "1", "+1", "1 ", "+1-", "1."]), st.booleans(),
    st.from_regex(r"[2-9][0-9]{2}", fullmatch=True), st.sampled_from(["", " ", "-", ".", " -"]),
    st.from_regex(r"[2-9][0-9]{2}", fullmatch=True), st.sampled_from(["", " ", "-", "."]),
    st.from_regex(r"[0-9]{4}", fullmatch=True), st.sampled_from(["", " ", "  ", " x12", " ext. 4", "x7"]),
)
anything = st.text(alphabet="0123456789 +-().xext#*/ABCZ", max_size=24)


@settings(max_examples=600, deadline=None)
@given(nanp, st.sampled_from(["US", "CA", "PR", "JM"]))
def test_north_american_text_gives_what_phonenumbers_gives(raw: str, region: str) -> None:
    assert NANP_PLAIN.match(raw)
    assert PhoneRules(region).e164(raw) == reference_e164(raw, region)


@settings(max_examples=600, deadline=None)
@given(st.one_of(anything, nanp, st.text(max_size=20)), st.sampled_from(REGIONS))
def test_any_text_in_any_region_gives_what_phonenumbers_gives(raw: str, region: str) -> None:
    assert PhoneRules(region).e164(raw) == reference_e164(raw, region)


@settings(max_examples=800, deadline=None)
@given(st.one_of(st.from_regex(r"[1-9][0-9]{0,16}", fullmatch=True), st.from_regex(r"[2-9][0-9]{9}", fullmatch=True),
                 st.from_regex(r"[1-9][0-9]{8,10}", fullmatch=True)), st.sampled_from(REGIONS))
def test_the_compiled_region_check_is_is_valid_number_for_region(nsn: str, region: str) -> None:
    number = phonenumbers.PhoneNumber(country_code=phonenumbers.country_code_for_region(region),
                                      national_number=int(nsn))
    assert region_validator(region)(nsn) == phonenumbers.is_valid_number_for_region(number, region)


@pytest.mark.parametrize(("raw", "e164"), [
    ("(415) 555-2671", "+14155552671"),
    ("415 155 2671", None),  # an exchange cannot start with 1
    ("(999) 555-2671", None),  # no such area code
    ("(800) 555-2671", "+18005552671"),  # toll free is a valid type
    ("415-555-2671 x204", "+14155552671"),  # E.164 has no extension
    ("+1 (415) 555-2671 ext. 12", "+14155552671"),
    ("(416) 555-2671", "+14165552671"),  # Toronto: valid, though not for the default region US
    ("+44 20 7946 0958", "+442079460958"),
    ("555-2671", None),  # no area code
    ("call me later", None),
    ("+1 555", None),
])
def test_known_numbers(raw: str, e164: str | None) -> None:
    assert PhoneRules("US").e164(raw) == e164 == reference_e164(raw, "US")


def test_every_region_compiles() -> None:
    for region in phonenumbers.SUPPORTED_REGIONS:
        region_validator(region)("2025550123")
