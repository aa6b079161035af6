"""SMS segment arithmetic (GSM 03.38 basic and extension tables, UCS-2 fallback)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

_GSM7_BASIC: Final[frozenset[str]] = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
#: Extension-table characters cost two septets (escape + character).
_GSM7_EXTENSION: Final[frozenset[str]] = frozenset("^{}\\[~]|€\f")

#: Most segments an SMS body may take (SPEC section 6).
MAX_SEGMENTS: Final = 2


@dataclass(frozen=True, slots=True)
class SegmentCount:
    """How a body will be split by the carrier."""

    #: ``GSM-7`` or ``UCS-2``.
    encoding: str
    #: Length in the encoding's units (septets or UTF-16 code units).
    units: int
    #: Number of segments the body is sent as.
    segments: int


def count_segments(body: str) -> SegmentCount:
    """Count the segments of ``body`` the way carriers do (160/153 GSM-7, 70/67 UCS-2).

    A character is never split across two segments: an extension character's escape pair,
    or the surrogate pair of a character outside the BMP (an emoji), moves whole to the
    next segment, which can cost a segment more than ``units / 153`` (or ``/ 67``) suggests.
    """
    if all(c in _GSM7_BASIC or c in _GSM7_EXTENSION for c in body):
        sizes = [2 if c in _GSM7_EXTENSION else 1 for c in body]
        single, multi, encoding = 160, 153, "GSM-7"
    else:
        sizes = [2 if ord(c) > 0xFFFF else 1 for c in body]
        single, multi, encoding = 70, 67, "UCS-2"
    units = sum(sizes)
    segments, used = 1, 0
    if units > single:
        for size in sizes:
            if used + size > multi:
                segments, used = segments + 1, 0
            used += size
    return SegmentCount(encoding=encoding, units=units, segments=segments)


def over_limit(body: str, limit: int = MAX_SEGMENTS) -> SegmentCount | None:
    """The segment count of ``body`` when it is past ``limit`` segments, else None.

    The dispatcher asks before handing an SMS to a provider: a body past the limit is
    never sent (SPEC section 6), whatever made it long (a long or non-GSM name).
    """
    count = count_segments(body)
    return count if count.segments > limit else None
