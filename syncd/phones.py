"""Raw phone text → E.164, with phonenumbers' answers and without its per-number overhead.

Part of the transform (DESIGN: phone normalisation). A number is valid exactly when
``phonenumbers`` says so: parsed with the default region, valid for that region or, failing that,
for the region the number belongs to. Two things make it cheap enough for a million leads:

- plain North American text ("(415) 555-0134", "+1 415.555.0134 x12") is read by one regex, which
  ``tests/test_phones.py`` proves gives the number ``phonenumbers.parse`` gives;
- validity is checked against the region's metadata compiled once into one pattern per number
  length, which is what ``is_valid_number_for_region`` evaluates pattern by pattern on every call
  (and, for a +1 number from outside the default region, the library's region lookup over the
  two dozen NANP regions, the same way). Other text takes the library's own path.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable

import phonenumbers
from phonenumbers.phonemetadata import PhoneMetadata

# "(415) 555-0134", "415.555.0134", "+1 415 555 0134", "1-415-555-0134": area code and exchange start 2-9.
# An extension ("x204", "ext. 12") may follow: E.164 has no extension, so it does not change the number.
NANP_PLAIN = re.compile(r"^ *(?:\+?1[ .-]?)?(?:\(([2-9]\d\d)\)|([2-9]\d\d)) ?[ .-]?([2-9]\d\d)[ .-]?(\d{4})"
                        r"(?: *(?:x|ext\.?) ?\d{1,6})? *$")
MAX_RAW_CHARS = 64  # longer text is cut before parsing: no phone number needs more

# The number types _number_type_helper tries after the general description: a number is valid for
# a region when the general description and at least one of these match it.
_TYPES = ("premium_rate", "toll_free", "shared_cost", "voip", "personal_number", "pager", "uan", "voicemail",
          "fixed_line", "mobile")
_MAX_NSN_DIGITS = 17  # the longest national significant number the ITU allows


def _allows(desc: object, length: int) -> bool:
    """``_is_number_matching_desc``'s length rule: no possible lengths listed means any length."""
    lengths = getattr(desc, "possible_length", None) or ()
    return not lengths or length in lengths


def _pattern(desc: object) -> str | None:
    pattern = getattr(desc, "national_number_pattern", None)
    return pattern or None  # the library never matches an empty or missing pattern


@functools.cache
def region_validator(region: str) -> Callable[[str], bool]:
    """``nsn -> is_valid_number_for_region`` for one region, compiled from its metadata (once)."""
    metadata = PhoneMetadata.metadata_for_region(region.upper(), None)
    general = _pattern(metadata.general_desc) if metadata is not None else None
    if metadata is None or general is None:
        return lambda nsn: False
    table: dict[int, re.Pattern[str]] = {}
    for length in range(1, _MAX_NSN_DIGITS + 1):
        if not _allows(metadata.general_desc, length):
            continue
        parts = [p for name in _TYPES
                 if (desc := getattr(metadata, name, None)) is not None and _allows(desc, length)
                 and (p := _pattern(desc)) is not None]
        if parts:
            # Both must match the whole number: the general description as a lookahead to the end,
            # then any one type (one regex call instead of two).
            table[length] = re.compile(f"(?=(?:{general})\\Z)(?:" + "|".join(f"(?:{p})" for p in parts) + ")")

    def valid(nsn: str) -> bool:
        pattern = table.get(len(nsn))
        return pattern is not None and pattern.fullmatch(nsn) is not None

    return valid


@functools.cache
def country_validator(country_code: int) -> Callable[[str], bool]:
    """``nsn -> is_valid_number`` for a geographic country code, with the library's region lookup.

    The region is the first of the code's regions whose leading digits match, or (for a region
    without leading digits) whose numbers include this one; the number must be valid there.
    """
    codes = phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(country_code, ())
    if phonenumbers.REGION_CODE_FOR_NON_GEO_ENTITY in codes:
        raise ValueError(f"+{country_code} is not geographic")
    if len(codes) == 1:
        return region_validator(codes[0])
    regions: list[tuple[re.Pattern[str] | None, str]] = []
    for region in codes:
        metadata = PhoneMetadata.metadata_for_region(region.upper(), None)
        if metadata is None:
            continue
        leading = re.compile(metadata.leading_digits) if metadata.leading_digits is not None else None
        regions.append((leading, region))

    def valid(nsn: str) -> bool:
        # A region's patterns are compiled when a number first reaches it (+1 has two dozen regions).
        for leading, region in regions:
            if leading is not None:
                if leading.match(nsn):
                    return region_validator(region)(nsn)
            elif region_validator(region)(nsn):
                return True
        return False

    return valid


class PhoneRules:
    """E.164 for raw text, with ``region`` as the default region of numbers written without one."""

    def __init__(self, region: str) -> None:
        self.region = region
        self.country_code = int(phonenumbers.country_code_for_region(region))
        self._valid_here = region_validator(region)
        self._valid_nanp = country_validator(1)

    def e164(self, raw: str) -> str | None:
        """The number in E.164, or None if phonenumbers cannot parse it or finds it invalid."""
        if self.country_code == 1:
            m = NANP_PLAIN.match(raw)
            if m:
                bracketed, area, exchange, line = m.groups()
                nsn = (bracketed or area) + exchange + line
                return "+1" + nsn if self._valid_here(nsn) or self._valid_nanp(nsn) else None
        return self._library_e164(raw[:MAX_RAW_CHARS])

    @functools.lru_cache(maxsize=4096)  # noqa: B019 - one PhoneRules per region lives as long as the process
    def _library_e164(self, raw: str) -> str | None:
        # The same junk recurs across an org ("n/a", "call me later", "1-800-FLOWERS"): remembered.
        try:
            number = phonenumbers.parse(raw, self.region)
        except phonenumbers.NumberParseException:
            return None
        # The default region first: the same answer as is_valid_number for its numbers, without
        # the region lookup over every region of the country code (+1 has two dozen).
        nsn = phonenumbers.national_significant_number(number)
        if (number.country_code == self.country_code and self._valid_here(nsn)) or _valid_anywhere(number, nsn):
            return str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))
        return None


def _valid_anywhere(number: phonenumbers.PhoneNumber, nsn: str) -> bool:
    """``phonenumbers.is_valid_number``; compiled for geographic codes (all but +800, +882 and such)."""
    code = number.country_code
    if code is None or phonenumbers.REGION_CODE_FOR_NON_GEO_ENTITY in phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(
            code, ()):
        return bool(phonenumbers.is_valid_number(number))
    return country_validator(code)(nsn)


@functools.cache
def phone_rules(region: str) -> PhoneRules:
    return PhoneRules(region)
