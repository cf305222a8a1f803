"""Frame codec of the data channel (spec §10.1, §10.7; issue 5 item 1)."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.migration import frames


def decode_all(data: bytes) -> list[frames.Frame]:
    decoder = frames.FrameDecoder()
    decoder.receive_data(data)
    out = []
    while True:
        frame = decoder.next_frame()
        if frame is frames.NEED_DATA:
            return out
        out.append(frame)


def test_pages_frame_round_trips_header_and_payload():
    payload = bytes(range(256)) * 32
    data = frames.encode_frame(frames.PAGES, 0, 4096, 1, payload)
    (frame,) = decode_all(data)
    assert frame.header.kind == frames.PAGES
    assert (frame.header.arg0, frame.header.arg1, frame.header.length) == (4096, 1, len(payload))
    assert frame.payload == payload
    assert not frame.header.compressed


def test_header_is_thirty_two_bytes_and_payload_is_not_copied_into_it():
    view = memoryview(bytearray(8192))
    header = frames.encode_header(frames.PAGES, 7, 1, 1, view)
    assert len(header) == frames.HEADER_SIZE == 32


@given(st.lists(st.tuples(st.sampled_from([frames.PAGES, frames.ZERO, frames.ROUND_END]),
                          st.integers(0, 2**40), st.integers(0, 2**20), st.binary(max_size=300)),
                max_size=8),
       st.integers(1, 50))
def test_decoder_returns_the_same_frames_whatever_the_chunking(items, chunk):
    stream = b"".join(frames.encode_frame(k, seq, a0, a1, p) for seq, (k, a0, a1, p) in
                      enumerate(items))
    decoder = frames.FrameDecoder()
    got = []
    for i in range(0, len(stream), chunk):
        decoder.receive_data(stream[i:i + chunk])
        while (frame := decoder.next_frame()) is not frames.NEED_DATA:
            got.append((frame.header.kind, frame.header.arg0, frame.header.arg1, frame.payload))
    assert got == list(items)


@pytest.mark.parametrize("position", [0, 3, 9, 20, 27, 28, 40, 1000])
def test_any_flipped_byte_is_rejected(position):
    """Corruption anywhere in header or payload is detected by the frame checksum (not
    M113, which is the memory digest of §10.7)."""
    data = bytearray(frames.encode_frame(frames.PAGES, 0, 10, 1, b"\x5a" * 2048))
    data[position] ^= 0x01
    with pytest.raises(frames.FrameError):
        decode_all(bytes(data))


def test_checksum_error_names_the_frame():
    data = bytearray(frames.encode_frame(frames.PAGES, 0, 10, 1, b"\x5a" * 100))
    data[-1] ^= 0xFF
    with pytest.raises(frames.ChecksumError, match="PAGES frame #0"):
        decode_all(bytes(data))


def test_a_lost_frame_is_detected_by_its_sequence_number():
    first = frames.encode_frame(frames.ZERO, 0, 0, 5)
    third = frames.encode_frame(frames.ZERO, 2, 5, 5)
    with pytest.raises(frames.FrameError, match="sequence 2, expected 1"):
        decode_all(first + third)


def test_decoder_stays_failed_after_an_error():
    decoder = frames.FrameDecoder()
    decoder.receive_data(b"XX" + bytes(30))
    with pytest.raises(frames.FrameError, match="magic"):
        decoder.next_frame()
    decoder.receive_data(frames.encode_frame(frames.ZERO, 0, 0, 1))
    with pytest.raises(frames.FrameError, match="magic"):
        decoder.next_frame()


def test_oversized_and_unknown_frames_are_refused():
    with pytest.raises(ValueError):
        frames.encode_header(99, 0)
    header = bytearray(frames.encode_header(frames.PAGES, 0))
    header[4:8] = (frames.MAX_PAYLOAD + 1).to_bytes(4, "big")
    with pytest.raises(frames.FrameError, match="exceeds"):
        frames.parse_header(bytes(header))
    header = bytearray(frames.encode_header(frames.PAGES, 0))
    header[3] = 0x80
    with pytest.raises(frames.FrameError, match="flags"):
        frames.parse_header(bytes(header))


def test_short_input_needs_more_data():
    data = frames.encode_frame(frames.VCPU, 0, 3, 0, b"abc")
    decoder = frames.FrameDecoder()
    decoder.receive_data(data[:-1])
    assert decoder.next_frame() is frames.NEED_DATA
    decoder.receive_data(data[-1:])
    assert decoder.next_frame().payload == b"abc"


@pytest.mark.parametrize("pages", [1, 64])  # below and above KeyedChecksum.POLY1305_MIN
@pytest.mark.parametrize("position", [2, 20, 31, 32, 5000])
def test_keyed_checksum_detects_corruption_and_a_wrong_key(position, pages):
    key = bytes(range(32))
    checksum = frames.KeyedChecksum(key)
    payload = b"\x33" * 8192 * pages
    data = bytearray(frames.encode_frame(frames.PAGES, 0, 1, pages, payload, checksum=checksum))
    decoder = frames.FrameDecoder(checksum=checksum)
    decoder.receive_data(bytes(data))
    assert decoder.next_frame().payload == payload
    data[position] ^= 0x10
    with pytest.raises(frames.FrameError):
        decoder = frames.FrameDecoder(checksum=checksum)
        decoder.receive_data(bytes(data))
        decoder.next_frame()
    data[position] ^= 0x10
    other = frames.FrameDecoder(checksum=frames.KeyedChecksum(bytes(32)))
    other.receive_data(bytes(data))
    with pytest.raises(frames.ChecksumError):
        other.next_frame()


def test_keyed_checksum_uses_poly1305_for_large_payloads_and_keyed_crc_for_small_ones():
    import zlib

    from cryptography.hazmat.primitives.poly1305 import Poly1305

    key = bytes(range(32))
    checksum = frames.KeyedChecksum(key)
    prefix = bytes(28)
    small = b"\x01" * (checksum.POLY1305_MIN - 1)
    large = b"\x01" * checksum.POLY1305_MIN
    assert checksum(prefix, small) == zlib.crc32(prefix + small, zlib.crc32(key))
    assert checksum(prefix, large) == int.from_bytes(
        Poly1305.generate_tag(key, prefix + large)[:4], "big")
