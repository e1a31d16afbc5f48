"""The gateway's HTTP protocol (gateway/one_write.py): the writes of one event-loop step leave
in one write, and nothing is held past its step (a stream still leaves chunk by chunk)."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn

from trailguard.gateway.one_write import OneWriteHttpToolsProtocol, StepWriteTransport


class RecordingTransport(asyncio.Transport):
    """Stands in for the socket transport, to count the writes it is given."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: Any) -> None:
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_write_buffer_size(self) -> int:
        return 0


def test_the_writes_of_one_step_are_one_write_and_each_step_its_own() -> None:
    async def scenario() -> tuple[list[bytes], list[bytes], list[bytes]]:
        real = RecordingTransport()
        joined = StepWriteTransport(real, asyncio.get_running_loop())
        joined.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
        joined.write(b"{}")
        assert real.writes == [], "nothing leaves before the step ends"
        assert joined.get_write_buffer_size() == 40
        await asyncio.sleep(0)
        first = list(real.writes)
        joined.write(b"chunk 1")
        await asyncio.sleep(0)
        joined.write(b"chunk 2")
        await asyncio.sleep(0)
        streamed = real.writes[1:]
        joined.write(b"last words")
        joined.close()
        return first, streamed, real.writes[3:]

    first, streamed, closing = asyncio.run(scenario())
    assert first == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}"]
    assert streamed == [b"chunk 1", b"chunk 2"], "a write in a later step is a write of its own"
    assert closing == [b"last words"], "closing sends what was kept first"


async def _streaming_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    headers = [(b"content-type", b"text/plain")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"first", "more_body": True})
    await asyncio.sleep(1.0)
    await send({"type": "http.response.body", "body": b"second", "more_body": False})


@pytest.fixture
def server() -> Iterator[int]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = uvicorn.Config(
        _streaming_app, host="127.0.0.1", port=port, http=OneWriteHttpToolsProtocol,
        log_level="warning", lifespan="off",
    )  # fmt: skip
    running = uvicorn.Server(config)
    thread = threading.Thread(target=running.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not running.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    yield port
    running.should_exit = True
    thread.join(10)


def test_a_streamed_response_is_not_held_back(server: int) -> None:
    """Through a real uvicorn on a socket: the first chunk arrives while the app still waits
    to send the second."""
    with socket.create_connection(("127.0.0.1", server), timeout=5) as client:
        client.sendall(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        sent_at = time.monotonic()
        received = b""
        while b"first" not in received:
            received += client.recv(65536)
        first_after = time.monotonic() - sent_at
        while b"0\r\n\r\n" not in received:
            received += client.recv(65536)
        all_after = time.monotonic() - sent_at
    assert received.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"second" in received
    assert first_after < 0.8 <= all_after, (first_after, all_after)
