"""In-process fuzzing of the request decoder and the stream reader with hypothesis.

``decode_request`` must never raise and always return a Request or a DocumentFailure, for any
bytes (§2.8, §3.7, §3.8). ``StreamReader`` must only ever return its events or raise
``StreamFault`` (§1.13), keep to its limits, and find the same elements whatever the split of
the input into reads (TCP and TLS may cut anywhere).
"""

from __future__ import annotations

import random
import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.xmlapi.decode import decode_request
from agent.xmlapi.model import DocumentFailure, Request
from agent.xmpp.reader import NEED_DATA, Element, Header, StreamEnd, StreamFault, StreamReader
from tools.fuzz import mutate

FUZZ = settings(max_examples=150, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
HANG_GUARD = 5.0

mutated_documents = st.builds(
    lambda gen, seed: gen(random.Random(seed)).data,
    st.sampled_from([mutate.grammar_mutation, mutate.byte_mutation, mutate.truncation,
                     mutate.encoding_trick, mutate.entity_trick, mutate.unbalanced,
                     mutate.stanza, mutate.random_bytes, mutate.nesting]),
    st.integers(0, 2**32),
)
any_bytes = st.one_of(st.binary(max_size=2000), mutated_documents,
                      st.sampled_from(list(mutate.CORPUS.values())))


def decoded_within_guard(raw: bytes):
    started = time.perf_counter()
    result = decode_request(raw)
    assert time.perf_counter() - started < HANG_GUARD
    return result


@FUZZ
@given(any_bytes)
def test_decode_request_never_raises_and_returns_a_request_or_document_failure(raw):
    """§2.8/§3.7: every input has an answer; a bug must not escape as an exception."""
    result = decoded_within_guard(raw)
    assert isinstance(result, (Request, DocumentFailure))
    if isinstance(result, DocumentFailure):
        assert result.message and isinstance(result.version, str)


@FUZZ
@given(st.sampled_from(mutate.CORPUS_NAMES), st.integers(0, 2**32))
def test_well_formed_grammar_mutations_never_fail_the_whole_document_with_a_parse_error(name, seed):
    """§3.8: a mutation serialised by lxml is namespace-well-formed, so whatever it breaks is
    reported at document, command or object level, never as an XML parse error."""
    rng = random.Random(seed)
    root = mutate.etree.fromstring(mutate.CORPUS[name])
    mutate._tree_mutation(rng, root)
    result = decoded_within_guard(mutate.etree.tostring(root))
    if isinstance(result, DocumentFailure):
        assert not result.message.startswith("XML parse error"), result.message


def events_of(chunks: list[bytes], max_element: int = 1 << 16) -> list:
    """Feed ``chunks`` one by one; the list of events (element bytes, header, end) and the
    fault condition if the stream broke."""
    reader = StreamReader(max_element=max_element, max_depth=32, stanza_names=frozenset({"iq"}))
    out: list = []
    try:
        for chunk in chunks:
            reader.feed(chunk)
            while True:
                event = reader.next_event()
                if event is NEED_DATA:
                    break
                assert isinstance(event, (Header, Element, StreamEnd)), event
                if isinstance(event, Element):
                    assert len(event.raw) <= max_element
                    out.append(("element", event.raw))
                elif isinstance(event, Header):
                    out.append(("header", event.qname))
                else:
                    out.append(("end",))
    except StreamFault as fault:
        out.append(("fault", fault.condition))
    return out


stream_bodies = st.lists(st.one_of(mutated_documents, st.binary(max_size=200),
                                   st.sampled_from([b" ", b"<!-- c -->", b"<?xml version='1.0'?>",
                                                    b"<presence/>", b"</stream:stream>"])),
                         max_size=4).map(b"".join)


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in zip([0] + points, points + [len(data)])]


@FUZZ
@given(stream_bodies, st.lists(st.integers(0, 10**6), max_size=30))
def test_stream_reader_finds_the_same_elements_whatever_the_split_into_reads(body, cuts):
    """§1.13: boundaries by literal tag names do not depend on how TCP/TLS cut the bytes."""
    data = mutate.STREAM_HEADER + body
    whole = events_of([data])
    assert events_of(split(data, cuts)) == whole
    assert events_of([bytes([b]) for b in data[:3000]] + [data[3000:]]) == whole


@FUZZ
@given(st.binary(max_size=3000))
def test_stream_reader_on_raw_bytes_only_returns_events_or_stream_faults(data):
    """Before the header too: any bytes give events, NEED_DATA, or a StreamFault."""
    events_of([data])
    events_of([b"\xef\xbb\xbf" + data])


@FUZZ
@given(st.integers(33, 5000), st.integers(1, 4096))
def test_stream_reader_refuses_nesting_beyond_32_levels_whatever_the_split(depth, chunk):
    """C65 (reader side): policy-violation as soon as the 33rd level opens."""
    data = mutate.STREAM_HEADER + b"<LDM_interface>" + b"<a>" * depth
    events = events_of([data[i:i + chunk] for i in range(0, len(data), chunk)], max_element=1 << 20)
    assert events[-1] == ("fault", "policy-violation")
