"""The data channel's transport: TLS 1.2+, pinned certificate, one-time token (§4.5, M39)."""

import os
import queue
import socket
import ssl
import threading

import pytest

from agent.migration import channel, frames
from agent.migration.datathread import DataTarget, start_source_transfer
from agent.migration.dataplane import TargetEngine

from tests.migration.test_dataplane import FakeHypervisor, random_page


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return channel.make_self_signed(str(tmp_path_factory.mktemp("tls")))


@pytest.fixture
def listener(certs):
    cert, key, _ = certs
    port = channel.DataListener(channel.server_context(cert, key))
    yield port
    port.close()


def accept_in_thread(listener, authorize, timeout=10):
    box = queue.Queue()

    def run():
        try:
            box.put(listener.accept(authorize, timeout=timeout))
        except Exception as error:
            box.put(error)

    threading.Thread(target=run, daemon=True).start()
    return box


def test_source_with_the_right_pin_and_token_gets_in(listener, certs):
    token = os.urandom(32)
    box = accept_in_thread(listener, channel.token_checker(token))
    chan = channel.connect("127.0.0.1", listener.port, certs[2], token, page_count=77)
    accepted, login = box.get(timeout=10)
    assert login.page_count == 77 and login.version == frames.PROTOCOL_VERSION
    assert chan.sock.version() in ("TLSv1.2", "TLSv1.3")
    chan.send(frames.ZERO, 5, 6)
    chan.flush()  # small frames are batched until a flush (or a read)
    header, _ = accepted.read_header()
    assert (header.kind, header.arg0, header.arg1) == (frames.ZERO, 5, 6)
    chan.close()
    accepted.close()


def test_a_different_certificate_is_refused_before_anything_is_sent(listener):
    wrong = "00" * 32
    tokens = []
    box = accept_in_thread(listener, tokens.append, timeout=2)
    with pytest.raises(channel.ChannelError, match="not the pinned"):
        channel.connect("127.0.0.1", listener.port, wrong, os.urandom(32), 1)
    assert isinstance(box.get(timeout=10), channel.ChannelError)  # nobody logged in
    assert tokens == []


def test_wrong_token_is_closed_without_reply_and_a_token_works_once(listener, certs):
    token = os.urandom(32)
    box = accept_in_thread(listener, channel.token_checker(token))
    bad = channel.connect("127.0.0.1", listener.port, certs[2], os.urandom(32), 1)
    bad.sock.settimeout(10)
    assert bad.sock.recv(1) == b""  # closed, and not one byte of explanation
    good = channel.connect("127.0.0.1", listener.port, certs[2], token, 1)
    box.get(timeout=10)[0].close()
    good.close()
    box = accept_in_thread(listener, channel.token_checker(token))
    authorize = channel.token_checker(token)
    assert authorize(token) and not authorize(token)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_tls_below_1_2_is_refused(listener, certs):
    box = accept_in_thread(listener, lambda token: True, timeout=2)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    # Security level 0 lets this client really offer TLS 1.1: the refusal must come
    # from the data port (its protocol-version alert), not from our own client.
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    context.minimum_version = ssl.TLSVersion.TLSv1
    context.maximum_version = ssl.TLSVersion.TLSv1_1
    raw = socket.create_connection(("127.0.0.1", listener.port), timeout=10)
    with pytest.raises(ssl.SSLError, match="(?i)protocol.version"):
        context.wrap_socket(raw)
    raw.close()
    assert isinstance(box.get(timeout=10), channel.ChannelError)


class ImmediateReactor:
    """Just enough reactor for the thread API: calls from threads land in a queue."""

    def __init__(self):
        self.calls = queue.Queue()

    def callFromThread(self, f, *args):
        self.calls.put((f, args))

    def run_until(self, condition, timeout=30):
        while not condition():
            f, args = self.calls.get(timeout=timeout)
            f(*args)


def test_thread_api_delivers_the_result_through_the_reactor(listener, certs):
    source, target = FakeHypervisor(), FakeHypervisor()
    guest = source.add("g", 256)
    target.add("g", 256)
    for page in range(0, 256, 3):
        guest.write(page, random_page())
    token = os.urandom(32)
    done = {}

    def receive():
        chan, login = listener.accept(channel.token_checker(token), timeout=10)
        done["target"] = TargetEngine(target, "g", chan, login).run()

    thread = threading.Thread(target=receive, daemon=True)
    thread.start()
    reactor = ImmediateReactor()
    rounds = []
    transfer = start_source_transfer(
        reactor, source, "g", DataTarget("127.0.0.1", listener.port, certs[2], token),
        on_round=rounds.append)
    results = []
    transfer.deferred.addBoth(results.append)
    reactor.run_until(lambda: results)
    thread.join(timeout=10)
    assert results[0].ok, results[0]
    assert done["target"].ok
    assert target.guests["g"].ram == guest.ram
    assert [s.round for s in rounds] == [1]
    assert transfer.statistics().status == "done"


def test_thread_api_errs_back_when_the_target_cannot_be_reached(certs):
    source = FakeHypervisor()
    source.add("g", 8)
    free = socket.socket()
    free.bind(("127.0.0.1", 0))
    port = free.getsockname()[1]
    free.close()
    reactor = ImmediateReactor()
    transfer = start_source_transfer(
        reactor, source, "g", DataTarget("127.0.0.1", port, certs[2], os.urandom(32)))
    results = []
    transfer.deferred.addBoth(results.append)
    reactor.run_until(lambda: results)
    assert results[0].check(channel.ChannelError)
    assert source.guests["g"].state == "running"


def test_a_token_works_only_for_its_own_stream(listener, certs):
    """M39, §4.5: one token per stream; stream 0's token presented as stream 1 is closed
    without a reply, and the connection that names the right stream gets in."""
    tokens = [os.urandom(32), os.urandom(32)]
    box = accept_in_thread(listener, channel.token_checker(tokens))
    wrong = channel.connect("127.0.0.1", listener.port, certs[2], tokens[0], 9, stream=1,
                            streams=2)
    wrong.sock.settimeout(10)
    assert wrong.sock.recv(1) == b""
    right = channel.connect("127.0.0.1", listener.port, certs[2], tokens[1], 9, stream=1,
                            streams=2)
    accepted, login = box.get(timeout=10)
    assert (login.stream, login.streams, login.page_count) == (1, 2, 9)
    accepted.close()
    right.close()
    wrong.close()


def test_stream_count_outside_1_to_8_is_refused_by_the_source():
    with pytest.raises(channel.ChannelError, match="stream"):
        channel.connect("127.0.0.1", 1, "00" * 32, os.urandom(32), 1, stream=0, streams=9)


def test_data_tokens_are_per_stream_single_use_and_expire():
    """M39: DataTokens binds each token to a migration and a stream index."""
    from agent.migration.datalisten import TOKEN_LIFETIME_S, DataTokens

    now = [100.0]
    tokens = DataTokens(clock=lambda: now[0])
    first, second = tokens.issue_streams("m1", 2)
    assert not tokens.authorize(first, 1)  # stream 0's token on stream 1: refused, and spent
    assert not tokens.authorize(first, 0)
    assert tokens.authorize(second, 1) and tokens.matched == "m1"
    assert not tokens.authorize(second, 1)  # single use
    late = tokens.issue("m2", 0)
    now[0] += TOKEN_LIFETIME_S + 1
    assert not tokens.authorize(late, 0)


def test_buffered_reads_keep_frame_boundaries_and_poll_sees_a_buffered_frame(listener, certs):
    """Small frames arrive several per TLS read; the channel keeps them apart, a large
    payload between them still arrives whole, and a frame already read from the socket is
    found by ``poll_frame`` although the socket has nothing more (M108 stream order)."""
    token = os.urandom(32)
    box = accept_in_thread(listener, channel.token_checker(token))
    source = channel.connect("127.0.0.1", listener.port, certs[2], token, page_count=10)
    target, _ = box.get(timeout=10)
    try:
        big = os.urandom(512 * 1024)
        small = [os.urandom(size) for size in (0, 1, 40, 8192, 16 * 1024)]
        for i, payload in enumerate(small):
            source.send(frames.ACK, i, 0, payload)
        source.send(frames.PAGES, 0, 64, big)
        source.send(frames.ACK, 98)
        source.send(frames.ACK, 99)
        source.flush()
        for i, payload in enumerate(small):
            frame = target.read_frame(max_payload=1 << 20)
            assert (frame.header.arg0, frame.payload) == (i, payload)
        header, raw = target.read_header()
        landed = memoryview(bytearray(len(big)))
        target.read_into(landed)
        frames.check_payload(raw, header, landed, target.checksum)
        assert bytes(landed) == big
        assert target.read_frame().header.arg0 == 98
        # ACK 99 came in with the same read: the socket has nothing left to say.
        assert target._in_end > target._in_at
        assert target.poll_frame().header.arg0 == 99
        assert target.poll_frame() is None
    finally:
        source.close()
        target.close()
