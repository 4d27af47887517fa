"""The New Era codec on its own: framing, CRC, numbers and replies, with hypothesis."""

from __future__ import annotations

import binascii
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pumpd.drivers.newera_codec import (
    ETX,
    STX,
    Alarm,
    BadFrame,
    BasicReader,
    CodecError,
    ErrorCode,
    Frame,
    NotRepresentable,
    Prompt,
    RateUnit,
    Reply,
    SafeReader,
    VolumeUnit,
    crc16,
    decode_dispensed,
    decode_rate,
    decode_version,
    decode_volume,
    encode_basic_reply,
    encode_rate,
    encode_safe,
    encode_volume,
    format_number,
    parse_number,
    parse_reply,
    reply_text,
    request_text,
)

payloads = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1, max_size=60
).map(str.encode)
"""The protocol's payloads are ASCII text (a control byte in one could resynchronise the
reader inside it; on the wire the 0.5 s inter-byte timeout ends such a packet)."""
representable = st.builds(
    lambda m, k: Decimal(m).scaleb(-k), st.integers(0, 9999), st.integers(0, 3)
)


def test_the_manuals_saf0_packet() -> None:
    assert crc16(b"SAF0") == 0x5543
    assert encode_safe(b"SAF0") == bytes([0x02, 0x08]) + b"SAF0" + bytes([0x55, 0x43, 0x03])


@given(payloads)
def test_crc_is_crc_hqx_with_initial_zero(data: bytes) -> None:
    assert crc16(data) == binascii.crc_hqx(data, 0)
    packet = encode_safe(data)
    assert packet[0] == STX
    assert packet[-1] == ETX
    assert packet[1] == len(data) + 4
    assert int.from_bytes(packet[-3:-1], "big") == crc16(data)


@given(st.lists(payloads, min_size=1, max_size=5), st.data())
def test_safe_frames_round_trip_in_any_chunking(items: list[bytes], data: st.DataObject) -> None:
    stream = b"".join(encode_safe(p) for p in items)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=6)))
    reader = SafeReader()
    got: list[Frame | BadFrame] = []
    last = 0
    for cut in [*cuts, len(stream)]:
        got.extend(reader.feed(stream[last:cut]))
        last = cut
    assert got == [Frame(p) for p in items]
    assert not reader.pending


@given(payloads, st.integers(0, 1000), st.integers(1, 0x7F))
def test_any_corrupted_byte_is_caught(data: bytes, where: int, flip: int) -> None:
    packet = bytearray(encode_safe(data))
    index = 2 + where % (len(packet) - 2)  # payload, CRC or ETX
    packet[index] ^= flip
    frames = SafeReader().feed(bytes(packet) + encode_safe(b"01S"))
    # Never a frame with other content than was sent: the damaged one is not accepted.
    assert [f for f in frames if isinstance(f, Frame)] in ([], [Frame(b"01S")])
    if index < len(packet) - 3 and packet[index] != STX:
        assert frames[-1] == Frame(b"01S")  # resynchronised on the next packet


def test_noise_before_a_packet_is_counted_and_skipped() -> None:
    reader = SafeReader()
    assert reader.feed(b"\xff\x00junk" + encode_safe(b"01I")) == [Frame(b"01I")]
    assert reader.noise_bytes == 6


def test_reset_drops_a_partial_packet() -> None:
    reader = SafeReader()
    assert reader.feed(encode_safe(b"01I")[:4]) == []
    reader.reset()
    assert reader.feed(encode_safe(b"01S")) == [Frame(b"01S")]


def test_basic_replies_split_on_stx_etx() -> None:
    reader = BasicReader()
    assert reader.feed(b"x" + encode_basic_reply("01S") + encode_basic_reply("02I")[:3]) == [
        Frame(b"01S")
    ]
    assert reader.feed(b"I\x03") == [Frame(b"02I")]


replies = st.builds(
    Reply,
    address=st.integers(0, 99),
    prompt=st.sampled_from(Prompt),
    alarm=st.none(),
    error=st.none() | st.sampled_from(ErrorCode),
    data=st.from_regex(r"[A-Z0-9.]{0,12}", fullmatch=True).filter(lambda s: not s.startswith("?")),
) | st.builds(
    Reply,
    address=st.integers(0, 99),
    prompt=st.none(),
    alarm=st.sampled_from(Alarm),
    error=st.none(),
    data=st.just(""),
)


@given(replies)
def test_replies_round_trip(reply: Reply) -> None:
    if reply.error is not None:
        reply = Reply(reply.address, reply.prompt, reply.alarm, reply.error, "")
    assert parse_reply(reply_text(reply).encode()) == reply


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (b"01S", Reply(1, Prompt.STOPPED, None, None, "")),
        (b"00A?S", Reply(0, None, Alarm.STALL, None, "")),
        (b"07I?OOR", Reply(7, Prompt.INFUSING, None, ErrorCode.OUT_OF_RANGE, "")),
        (b"99S?", Reply(99, Prompt.STOPPED, None, ErrorCode.NOT_RECOGNIZED, "")),
        (b"12PI1.234W0.000ML", Reply(12, Prompt.PAUSED, None, None, "I1.234W0.000ML")),
    ],
)
def test_reply_examples(text: bytes, expected: Reply) -> None:
    assert parse_reply(text) == expected


@pytest.mark.parametrize("text", [b"1S", b"01Q", b"01A?Z", b"01S?XYZ", b"\xff\xfeS", b""])
def test_malformed_replies_are_refused(text: bytes) -> None:
    with pytest.raises(CodecError):
        parse_reply(text)


@given(representable)
def test_representable_numbers_round_trip(value: Decimal) -> None:
    text = format_number(value)
    assert parse_number(text) == value
    assert len(text.replace(".", "").lstrip("0") or "0") <= 4


@given(st.integers(10_000, 10**9).filter(lambda m: m % 10), st.integers(0, 3))
def test_more_than_four_digits_is_refused_never_rounded(mantissa: int, decimals: int) -> None:
    value = Decimal(mantissa).scaleb(-decimals)  # five or more significant digits
    with pytest.raises(NotRepresentable):
        format_number(value)


@pytest.mark.parametrize("value", ["0.0001", "12.345", "10000", "-1", "NaN", "1234.5"])
def test_number_refusals(value: str) -> None:
    with pytest.raises(NotRepresentable):
        format_number(Decimal(value))


@given(st.integers(1, 999_999).map(lambda c: Decimal(c).scaleb(-2)))
def test_rates_are_exact_or_refused(rate_ml_h: Decimal) -> None:
    try:
        text, unit = encode_rate(rate_ml_h)
    except NotRepresentable:
        return
    assert decode_rate(text + unit.value) == rate_ml_h


def test_rate_units_are_chosen_for_exactness() -> None:
    assert encode_rate(Decimal("12.5")) == ("12.5", RateUnit.ML_H)
    assert encode_rate(Decimal("0.05")) == ("0.05", RateUnit.ML_H)
    assert encode_rate(Decimal("1500")) == ("1500", RateUnit.ML_H)
    with pytest.raises(NotRepresentable):
        encode_rate(Decimal("1234.56"))


@given(st.integers(0, 10_000_000))
def test_volumes_are_exact_or_refused(volume_ul: int) -> None:
    try:
        text, unit = encode_volume(volume_ul)
    except NotRepresentable:
        assert volume_ul > 9999
        return
    assert decode_volume(text + unit.value) == volume_ul


def test_volume_examples() -> None:
    assert encode_volume(60_000) == ("60", VolumeUnit.ML)
    assert encode_volume(12_340) == ("12.34", VolumeUnit.ML)
    assert encode_volume(999) == ("0.999", VolumeUnit.ML)
    with pytest.raises(NotRepresentable):
        encode_volume(12_345)  # 12.345 mL: the pump would keep 12.34


def test_dispensed_and_version() -> None:
    assert decode_dispensed("I1.234W0.000ML") == (Decimal(1234), Decimal(0))
    assert decode_dispensed("I12.5W3.UL") == (Decimal("12.5"), Decimal(3))
    assert decode_version("NE1000V3.928") == (1000, "3.928")
    assert decode_version("NE500X2V1.02") == (500, "1.02")
    for bad in ("I1W2XX", "1.0", "NEV1"):
        with pytest.raises(CodecError):
            decode_dispensed(bad) if bad.startswith("I") or bad == "1.0" else decode_version(bad)


def test_request_text() -> None:
    assert request_text(1, "RAT", "12.5MH") == "1RAT12.5MH"
    assert request_text(0) == "0"
    for bad in (-1, 100, True):
        with pytest.raises(CodecError):
            request_text(bad)
