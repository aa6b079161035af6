"""SMS segment counting: GSM-7 vs UCS-2, extension characters, and the segment boundaries."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reminders.sms import MAX_SEGMENTS, count_segments, over_limit

CI = settings(max_examples=200, deadline=None, database=None)

#: GSM 03.38 basic table, written out row by row from the standard (0x1B, the escape, left out).
GSM7_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmno"
    "pqrstuvwxyzäöñüà"
)
#: GSM 03.38 extension table: each costs an escape septet plus itself.
GSM7_EXTENSION = "\f^{}\\[~]|€"
#: Characters outside both tables that look harmless in a template.
NOT_GSM7 = ["á", "í", "ó", "ú", "ç", "ê", "`", "ł", "ж", "中", "’", "“", "…", "\t", "😀"]


def test_the_basic_table_is_complete() -> None:
    """The basic table written here holds all 127 characters, so the checks below cover them all."""
    assert len(set(GSM7_BASIC)) == 127


def test_basic_characters_are_gsm7_one_septet_each() -> None:
    """A body of every basic-table character is GSM-7 and costs one septet per character."""
    count = count_segments(GSM7_BASIC)
    assert (count.encoding, count.units) == ("GSM-7", 127)


@pytest.mark.parametrize("char", list(GSM7_EXTENSION))
def test_extension_characters_are_gsm7_and_count_double(char: str) -> None:
    """Each extension-table character keeps GSM-7 but costs two septets."""
    count = count_segments(f"a{char}b")
    assert (count.encoding, count.units) == ("GSM-7", 4)


@pytest.mark.parametrize("char", NOT_GSM7)
def test_one_character_outside_gsm7_switches_the_whole_body_to_ucs2(char: str) -> None:
    """A single non-GSM character makes the body UCS-2, counted in UTF-16 code units."""
    body = "Hola, recuerde su cita " + char
    count = count_segments(body)
    assert count.encoding == "UCS-2"
    assert count.units == len(body) + (1 if char == "😀" else 0)


@pytest.mark.parametrize(
    ("body", "encoding", "units", "segments"),
    [
        pytest.param("", "GSM-7", 0, 1, id="empty"),
        pytest.param("a" * 160, "GSM-7", 160, 1, id="a*160"),
        pytest.param("a" * 161, "GSM-7", 161, 2, id="a*161"),
        pytest.param("a" * 306, "GSM-7", 306, 2, id="a*306"),
        pytest.param("a" * 307, "GSM-7", 307, 3, id="a*307"),
        pytest.param("a" * 459, "GSM-7", 459, 3, id="a*459"),
        pytest.param("a" * 460, "GSM-7", 460, 4, id="a*460"),
        pytest.param("ж" * 70, "UCS-2", 70, 1, id="zhe*70"),
        pytest.param("ж" * 71, "UCS-2", 71, 2, id="zhe*71"),
        pytest.param("ж" * 134, "UCS-2", 134, 2, id="zhe*134"),
        pytest.param("ж" * 135, "UCS-2", 135, 3, id="zhe*135"),
        # extension characters count double at the boundaries too
        pytest.param("€" * 80, "GSM-7", 160, 1, id="euro*80"),
        pytest.param("€" * 80 + "a", "GSM-7", 161, 2, id="euro*80+a"),
        pytest.param("a" * 159 + "{", "GSM-7", 161, 2, id="a*159+{"),
        pytest.param("a" + "[" * 152 + "a", "GSM-7", 306, 2, id="a+[*152+a"),
        pytest.param("a" + "[" * 152 + "aa", "GSM-7", 307, 3, id="a+[*152+aa"),
        # 76 pairs fill 152 of a segment's 153 septets; the 77th cannot be split
        pytest.param("[" * 153, "GSM-7", 306, 3, id="[*153"),
        # an emoji is two UTF-16 code units
        pytest.param("😀" * 35, "UCS-2", 70, 1, id="emoji*35"),
        pytest.param("😀" * 35 + "a", "UCS-2", 71, 2, id="emoji*35+a"),
    ],
)
def test_segment_boundaries(body: str, encoding: str, units: int, segments: int) -> None:
    """160/153 septets per GSM-7 segment and 70/67 code units per UCS-2 segment."""
    count = count_segments(body)
    assert (count.encoding, count.units, count.segments) == (encoding, units, segments)


def test_an_escape_pair_is_not_split_across_segments() -> None:
    """An extension character straddling the 153rd septet moves whole to the next segment."""
    body = "a" * 152 + "€" + "a" * 152
    count = count_segments(body)
    assert (count.units, count.segments) == (306, 3)


def test_a_surrogate_pair_is_not_split_across_segments() -> None:
    """An emoji straddling the 67th UCS-2 code unit moves whole to the next segment."""
    body = "ж" * 66 + "😀" + "ж" * 66
    count = count_segments(body)
    assert (count.units, count.segments) == (134, 3)


def test_the_limit_is_two_segments() -> None:
    """SPEC 6: SMS bodies stay within two segments."""
    assert MAX_SEGMENTS == 2


@CI
@given(body=st.text(alphabet=GSM7_BASIC, max_size=1000))
def test_plain_gsm7_bodies_split_every_153_septets(body: str) -> None:
    """A basic-table body is one segment up to 160 characters, then ceil(n / 153)."""
    count = count_segments(body)
    assert count.encoding == "GSM-7"
    assert count.units == len(body)
    assert count.segments == (1 if len(body) <= 160 else -(-len(body) // 153))


@CI
@given(body=st.text(alphabet="жßабвгдеёзийклмнопрстуфхцчшщъыьэюя中文", min_size=1, max_size=500))
def test_bmp_ucs2_bodies_split_every_67_units(body: str) -> None:
    """A UCS-2 body of BMP characters is one segment up to 70 units, then ceil(n / 67)."""
    body = body + "ж"  # keep it out of GSM-7 whatever was drawn
    count = count_segments(body)
    assert count.encoding == "UCS-2"
    assert count.units == len(body)
    assert count.segments == (1 if len(body) <= 70 else -(-len(body) // 67))


@CI
@given(body=st.text(alphabet=GSM7_BASIC + GSM7_EXTENSION + "ж😀", max_size=600))
def test_segments_hold_every_unit_and_waste_at_most_one_per_segment(body: str) -> None:
    """No segment holds more than its size, and each loses at most one unit to an unsplit pair."""
    count = count_segments(body)
    single, multi = (160, 153) if count.encoding == "GSM-7" else (70, 67)
    if count.units <= single:
        assert count.segments == 1
    else:
        assert count.segments * multi >= count.units
        assert count.segments * (multi - 1) < count.units + multi - 1


@pytest.mark.parametrize(
    ("body", "segments"),
    [
        pytest.param("a" * 306, None, id="gsm7-two-full-segments"),
        pytest.param("a" * 307, 3, id="gsm7-one-over"),
        pytest.param("á" * 134, None, id="ucs2-two-full-segments"),
        pytest.param("á" * 135, 3, id="ucs2-one-over"),
        pytest.param("A" * 100_195, 655, id="runaway-name"),
    ],
)
def test_over_limit_answers_only_past_the_segment_limit(body: str, segments: int | None) -> None:
    """over_limit gives the count of a body past 2 segments, and None for one within them."""
    count = over_limit(body)

    assert (count.segments if count else None) == segments
