"""The fault proxy of the fault suite (lectern_dev.harness.faultproxy) against a tiny echo
server: each mode does what the network faults of tests/faults/test_network.py rely on."""

from __future__ import annotations

import socket
import socketserver
import threading
import time
from collections.abc import Iterator

import pytest

from lectern_dev.harness.faultproxy import FaultProxy


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(65536):
            self.request.sendall(data)


@pytest.fixture
def proxy() -> Iterator[FaultProxy]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Echo)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with FaultProxy("127.0.0.1", server.server_address[1]) as p:
        yield p
    server.shutdown()
    server.server_close()


def connect(proxy: FaultProxy) -> socket.socket:
    return socket.create_connection(("127.0.0.1", proxy.port), timeout=2.0)


def echoed(sock: socket.socket, data: bytes) -> bytes:
    sock.sendall(data)
    got = b""
    while len(got) < len(data):
        if not (piece := sock.recv(65536)):
            break
        got += piece
    return got


def test_pass_forwards_both_ways(proxy: FaultProxy) -> None:
    with connect(proxy) as sock:
        assert echoed(sock, b"hello") == b"hello"
        assert echoed(sock, b"x" * 200_000) == b"x" * 200_000


def test_latency_delays_each_chunk_without_queueing_them(proxy: FaultProxy) -> None:
    proxy.latency(200)
    with connect(proxy) as sock:
        started = time.monotonic()
        assert echoed(sock, b"ping") == b"ping"
        round_trip = time.monotonic() - started
        assert 0.4 <= round_trip < 1.0, round_trip  # 200 ms each way
        started = time.monotonic()
        for i in range(5):  # five chunks 20 ms apart: each is late 400 ms, not 5 x 400 ms
            sock.sendall(b"%d" % i)
            time.sleep(0.02)
        got = b""
        while len(got) < 5:
            got += sock.recv(16)
        assert got == b"01234"
        assert time.monotonic() - started < 1.0
        proxy.passthrough()
        started = time.monotonic()
        assert echoed(sock, b"fast") == b"fast"
        assert time.monotonic() - started < 0.2


def test_reset_closes_open_and_new_connections_with_rst(proxy: FaultProxy) -> None:
    with connect(proxy) as open_one:
        assert echoed(open_one, b"a") == b"a"
        proxy.reset()
        with pytest.raises(ConnectionResetError):
            open_one.sendall(b"b")
            open_one.recv(16)
    # The RST may beat connect() itself back on a loaded machine: either way, reset.
    with pytest.raises(ConnectionResetError), connect(proxy) as new_one:
        time.sleep(0.1)
        new_one.sendall(b"c")
        new_one.recv(16)
    assert proxy.counts.resets == 2
    proxy.passthrough()
    with connect(proxy) as sock:
        assert echoed(sock, b"back") == b"back"


def test_blackhole_accepts_reads_and_never_answers(proxy: FaultProxy) -> None:
    with connect(proxy) as before:
        assert echoed(before, b"a") == b"a"
        proxy.blackhole()
        with connect(proxy) as during:
            for sock in (before, during):
                sock.sendall(b"anyone there?")
                sock.settimeout(0.5)
                with pytest.raises(TimeoutError):
                    sock.recv(16)
            proxy.passthrough()
            # What met the black hole stays in it; a new connection finds the way open.
            before.sendall(b"still?")
            with pytest.raises(TimeoutError):
                before.recv(16)
    with connect(proxy) as after:
        assert echoed(after, b"back") == b"back"
    assert proxy.counts.blackholed == 2
