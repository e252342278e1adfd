"""Raw phone text → E.164, with phonenumbers' answers and without its per-number overhead.

Part of the transform (DESIGN: phone normalisation). A number is valid exactly when
``phonenumbers`` says so: parsed with the default region, valid for that region or, failing that,
for the region the number belongs to. Three things make it cheap enough for a million leads:

- plain North American text ("(415) 555-0134", "+1 415.555.0134 x12") is read by one regex, which
  ``tests/test_phones.py`` proves gives the number ``phonenumbers.parse`` gives;
- so are plain digit groups ("+44 20 7946 0958", "555-0134"), wherever ``parse`` would do more than
  split off the country code (an international or national prefix, a leading zero) the library
  reads them instead;
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
# ASCII digits only: the library reads digits of other scripts as ASCII ones, so those take its road.
NANP_PLAIN = re.compile(r"^ *(?:\+?1[ .-]?)?(?:\(([2-9]\d\d)\)|([2-9]\d\d)) ?[ .-]?([2-9]\d\d)[ .-]?(\d{4})"
                        r"(?: *(?:x|ext\.?) ?\d{1,6})? *$", re.ASCII)
# Digit groups split by single spaces, dots or dashes, after an optional "+": "+33 1 42 68 53 01".
DIGIT_GROUPS = re.compile(r" *(\+?)([0-9]+(?:[ .-][0-9]+)*) *", re.ASCII)
_NOT_DIGITS = str.maketrans("", "", " .-")
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
    lengths: set[int] = set()  # of a number valid in at least one of the regions
    for region in codes:
        metadata = PhoneMetadata.metadata_for_region(region.upper(), None)
        if metadata is None:
            continue
        leading = re.compile(metadata.leading_digits) if metadata.leading_digits is not None else None
        regions.append((leading, region))
        lengths.update(n for n in range(1, _MAX_NSN_DIGITS + 1) if _allows(metadata.general_desc, n))

    def valid(nsn: str) -> bool:
        if len(nsn) not in lengths:  # "555-0134" under +1: no region needs a look
            return False
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
        metadata = PhoneMetadata.metadata_for_region(region.upper(), None)
        idd = metadata.international_prefix if metadata is not None else None
        self._idd = re.compile(idd) if idd else None
        self._code_text = str(self.country_code)
        self._national_prefix = _prefix_pattern(metadata)

    def e164(self, raw: str) -> str | None:
        """The number in E.164, or None if phonenumbers cannot parse it or finds it invalid."""
        if self.country_code == 1:
            m = NANP_PLAIN.match(raw)
            if m:
                bracketed, area, exchange, line = m.groups()
                nsn = (bracketed or area) + exchange + line
                return "+1" + nsn if self._valid_here(nsn) or self._valid_nanp(nsn) else None
        if len(raw) <= MAX_RAW_CHARS:
            m = DIGIT_GROUPS.fullmatch(raw)
            if m:
                plus, groups = m.groups()
                try:
                    return self._digits_e164(groups.translate(_NOT_DIGITS), plus == "+")
                except _AskLibrary:
                    pass
        return self._library_e164(raw[:MAX_RAW_CHARS])

    def _digits_e164(self, digits: str, plus: bool) -> str | None:
        """``parse`` for bare digits where all it does is take a country code off, else _AskLibrary."""
        if len(digits) < 3 or digits[0] == "0":
            raise _AskLibrary
        if plus:
            # _extract_country_code: the first one to three digits that are a known calling code.
            for size in (1, 2, 3):
                code = int(digits[:size])
                if code in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
                    break
            else:
                raise _AskLibrary
            nsn, prefixes = digits[size:], national_prefix(code)
        else:
            # Neither an international prefix nor the default region's own code in front, which
            # _maybe_extract_country_code would take off.
            if (self._idd is not None and self._idd.match(digits)) or digits.startswith(self._code_text):
                raise _AskLibrary
            code, nsn, prefixes = self.country_code, digits, self._national_prefix
        # A national prefix the parse might strip, a leading zero it keeps apart, a length it refuses.
        if not 2 <= len(nsn) <= _MAX_NSN_DIGITS or nsn[0] == "0" or (prefixes is not None and prefixes.match(nsn)):
            raise _AskLibrary
        if code == self.country_code and self._valid_here(nsn):
            return f"+{code}{nsn}"
        try:
            valid = country_validator(code)(nsn)
        except ValueError:  # a non-geographic code (+800, +882): the library's own check
            raise _AskLibrary from None
        return f"+{code}{nsn}" if valid else None

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


class _AskLibrary(Exception):
    """The text needs more of ``parse`` than the fast road does: phonenumbers reads it."""


def _prefix_pattern(metadata: PhoneMetadata | None) -> re.Pattern[str] | None:
    prefix = metadata.national_prefix_for_parsing if metadata is not None else None
    return re.compile(prefix) if prefix else None  # compiled as the library compiles it


@functools.cache
def national_prefix(country_code: int) -> re.Pattern[str] | None:
    """The national prefix ``parse`` strips after a +code: that of the code's main region."""
    region = phonenumbers.region_code_for_country_code(country_code)
    return _prefix_pattern(PhoneMetadata.metadata_for_region_or_calling_code(country_code, region))


@functools.cache
def phone_rules(region: str) -> PhoneRules:
    return PhoneRules(region)
