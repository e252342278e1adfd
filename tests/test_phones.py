"""syncd.phones gives exactly phonenumbers' answers, by a faster road."""

from __future__ import annotations

import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from syncd.phones import NANP_PLAIN, PhoneRules, country_validator, region_validator

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
# International text, including codes shared by several regions (+7, +39, +44, +47, +262, +590, +599)
# and non-geographic ones (+800, +882, +979).
international = st.builds(
    lambda cc, rest: f"+{cc} {rest}",
    st.sampled_from([7, 33, 39, 44, 47, 49, 61, 81, 86, 91, 262, 358, 590, 599, 800, 882, 883, 979]),
    st.from_regex(r"\(?0?\)?[0-9][0-9 .-]{3,13}", fullmatch=True))


@settings(max_examples=600, deadline=None)
@given(nanp, st.sampled_from(["US", "CA", "PR", "JM"]))
def test_north_american_text_gives_what_phonenumbers_gives(raw: str, region: str) -> None:
    assert NANP_PLAIN.match(raw)
    assert PhoneRules(region).e164(raw) == reference_e164(raw, region)


@settings(max_examples=1500, deadline=None)
@given(st.one_of(anything, nanp, international, st.text(max_size=20)), st.sampled_from(REGIONS))
def test_any_text_in_any_region_gives_what_phonenumbers_gives(raw: str, region: str) -> None:
    assert PhoneRules(region).e164(raw) == reference_e164(raw, region)


# Regions whose national or international prefixes make parse do more than take a code off:
# AR and MX rewrite national numbers, RU dials 8, HU 06, IT keeps leading zeros, KZ shares +7.
PREFIX_REGIONS = [*REGIONS, "AR", "RU", "HU", "KZ", "AT", "CN", "KR", "SG", "ZA", "NZ"]
digit_groups = st.from_regex(r" {0,2}\+?[0-9]{1,4}(?:[ .-][0-9]{1,5}){0,5} {0,2}", fullmatch=True)


@settings(max_examples=2000, deadline=None)
@given(digit_groups, st.sampled_from(PREFIX_REGIONS))
def test_plain_digit_groups_give_what_phonenumbers_gives(raw: str, region: str) -> None:
    assert PhoneRules(region).e164(raw) == reference_e164(raw, region)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(PREFIX_REGIONS), st.sampled_from(["FIXED_LINE", "MOBILE", "TOLL_FREE"]),
       st.sampled_from(["", " ", "-", "."]), st.booleans())
def test_example_numbers_written_plainly_give_what_phonenumbers_gives(region: str, kind: str, sep: str,
                                                                     international: bool) -> None:
    number = phonenumbers.example_number_for_type(region, getattr(phonenumbers.PhoneNumberType, kind))
    if number is None:
        return
    nsn = phonenumbers.national_significant_number(number)
    text = f"+{number.country_code}{sep}{nsn[:3]}{sep}{nsn[3:]}" if international else f"{nsn[:3]}{sep}{nsn[3:]}"
    assert PhoneRules(region).e164(text) == reference_e164(text, region)
    if international:
        assert PhoneRules(region).e164(text) == phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


@pytest.mark.parametrize("raw", ["(415) 555-\u0662\u0666\u0667\u0661", "\u0664\u0661\u0665 555 2671",
                                 "+\u0664\u0664 20 7946 0958", "\uff14\uff11\uff15-555-2671"])
def test_digits_of_other_scripts_come_out_as_ascii_digits(raw: str) -> None:
    e164 = PhoneRules("US").e164(raw)
    assert e164 == reference_e164(raw, "US")
    assert e164 is not None
    assert e164.isascii()


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


@settings(max_examples=800, deadline=None)
@given(st.one_of(st.from_regex(r"[2-9][0-9]{9}", fullmatch=True),
                 st.sampled_from(["876", "416", "787", "809", "268", "684", "340", "939"]).flatmap(
                     lambda area: st.from_regex(rf"{area}[2-9][0-9]{{6}}", fullmatch=True)),
                 st.from_regex(r"[1-9][0-9]{0,12}", fullmatch=True)))
def test_the_nanp_region_lookup_is_is_valid_number(nsn: str) -> None:
    number = phonenumbers.PhoneNumber(country_code=1, national_number=int(nsn))
    assert country_validator(1)(nsn) == phonenumbers.is_valid_number(number)


@pytest.mark.parametrize("code", [33, 44, 49, 61, 7, 39])
def test_the_region_lookup_of_other_codes_is_is_valid_number(code: int) -> None:
    import random

    rng = random.Random(code)
    for _ in range(300):
        nsn = str(rng.randint(1, 10 ** rng.randint(6, 11)))
        number = phonenumbers.PhoneNumber(country_code=code, national_number=int(nsn))
        assert country_validator(code)(nsn) == phonenumbers.is_valid_number(number), nsn
    for region in phonenumbers.COUNTRY_CODE_TO_REGION_CODE[code]:  # and numbers that are valid
        example = phonenumbers.example_number(region)
        if example is not None and not example.italian_leading_zero:
            assert country_validator(code)(str(example.national_number)), (region, example)
