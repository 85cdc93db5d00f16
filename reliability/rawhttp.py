"""HTTP/1.1 over a bare asyncio socket, for requests no well-behaved client sends: a body that
never finishes, a body that trickles in a byte at a time, a Content-Length the client never means
to honour. Each function says when the status line came and how much of the body had been sent by
then, which is how a drill tells that the server answered without reading the body.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field

CHUNK = 64 * 1024


@dataclass
class RawAnswer:
    """What one raw request got back."""

    status: int | None = None  # None: no status line (reset, closed, or timed out)
    began: float = 0.0  # time.monotonic() when the request started (comparable across processes)
    seconds: float | None = None  # from the first byte sent to the status line
    body_sent: int = 0  # body bytes sent before the status line came
    sent_total: int = 0  # body bytes sent in all (a flood goes on after the answer)
    closed_s: float | None = None  # when the server was seen to have closed (a send failed)
    declared: int = 0  # the Content-Length the request announced
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    error: str | None = None

    @property
    def before_body(self) -> bool:
        """Answered before the whole declared body was sent: the server did not wait for it."""
        return self.status is not None and self.body_sent < self.declared


def head(
    method: str, path: str, port: int, length: int, headers: dict[str, str] | None = None
) -> bytes:
    lines = [
        f"{method} {path} HTTP/1.1",
        f"Host: 127.0.0.1:{port}",
        f"Content-Length: {length}",
        *(f"{k}: {v}" for k, v in (headers or {}).items()),
        "",
        "",
    ]
    return "\r\n".join(lines).encode("latin-1")


class _Conn:
    """A non-blocking socket used directly: a failed send (the server closed its end) leaves what
    the server already sent readable, which a stream transport would discard."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.loop = asyncio.get_running_loop()
        self.open_for_sending = True

    @classmethod
    async def open(cls, port: int, timeout: float) -> _Conn | None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            await asyncio.wait_for(
                asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port)), timeout
            )
        except (OSError, TimeoutError):
            sock.close()
            return None
        return cls(sock)

    async def send(self, data: bytes) -> bool:
        """Whether the server still takes data."""
        if not self.open_for_sending:
            return False
        try:
            await self.loop.sock_sendall(self.sock, data)
        except OSError:
            self.open_for_sending = False
        return self.open_for_sending

    async def read_answer(
        self, answer: RawAnswer, started: float, on_status: Callable[[], None] | None = None
    ) -> None:
        """One response (status line, headers, Content-Length body) into ``answer``;
        ``on_status`` runs the moment the status line is in."""
        buffer = b""
        while b"\r\n\r\n" not in buffer:
            chunk = await self._recv()
            if not chunk:
                answer.error = answer.error or "closed without an answer"
                return
            if not buffer and answer.seconds is None:
                answer.seconds = time.monotonic() - started
                if on_status is not None:
                    on_status()
            buffer += chunk
        header_text, _, rest = buffer.partition(b"\r\n\r\n")
        status_line, *lines = header_text.decode("latin-1").split("\r\n")
        answer.status = int(status_line.split(" ", 2)[1])
        for line in lines:
            name, _, value = line.partition(":")
            answer.headers[name.strip().lower()] = value.strip()
        length = int(answer.headers.get("content-length", "0") or 0)
        while len(rest) < length:
            chunk = await self._recv()
            if not chunk:
                break
            rest += chunk
        answer.body = rest[:length]

    async def _recv(self) -> bytes:
        try:
            return await self.loop.sock_recv(self.sock, CHUNK)
        except OSError:
            return b""

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


async def ask_before_body(
    port: int,
    method: str,
    path: str,
    headers: dict[str, str],
    body: bytes,
    declared: int | None = None,
    prefix: bytes = b"",
    wait_s: float = 3.0,
) -> RawAnswer:
    """Send the request line and headers (and ``prefix`` of the body), then wait for an answer
    before sending the rest. A server that checks the caller from the headers answers at once;
    one that waits for the body answers only after ``wait_s``, when the rest is sent."""
    declared = len(body) if declared is None else declared
    answer = RawAnswer(declared=declared)
    conn = await _Conn.open(port, wait_s)
    if conn is None:
        answer.error = "could not connect"
        return answer
    started = answer.began = time.monotonic()
    try:
        await conn.send(head(method, path, port, declared, headers) + prefix)
        answer.body_sent = len(prefix)
        reading = asyncio.ensure_future(conn.read_answer(answer, started))
        done, _ = await asyncio.wait({reading}, timeout=wait_s)
        if not done:
            # No answer from the headers alone: send the body, as a patient client would.
            if await conn.send(body[len(prefix) :]):
                answer.body_sent = len(body)
            await asyncio.wait_for(reading, wait_s + 30)
    except (TimeoutError, ValueError, IndexError) as exc:
        answer.error = answer.error or type(exc).__name__
    finally:
        conn.close()
    return answer


async def flood(
    port: int, path: str, headers: dict[str, str], declared: int, linger_s: float = 10.0
) -> RawAnswer:
    """Announce ``declared`` bytes and send them as fast as the server takes them, and go on
    after its answer, until it closes the connection (or all of them are sent, or ``linger_s``
    has passed). ``body_sent`` is how much had gone when the status line came, ``sent_total``
    how much in all, ``closed_s`` when a send first failed because the server had closed."""
    answer = RawAnswer(declared=declared)
    conn = await _Conn.open(port, 10.0)
    if conn is None:
        answer.error = "could not connect"
        return answer
    started = answer.began = time.monotonic()
    sent = 0
    chunk = b"x" * CHUNK

    def at_status() -> None:
        answer.body_sent = sent

    reading = asyncio.ensure_future(conn.read_answer(answer, started, at_status))
    try:
        going = await conn.send(head("POST", path, port, declared, headers))
        while going and sent < declared and time.monotonic() - started < linger_s:
            piece = chunk[: min(CHUNK, declared - sent)]
            going = await conn.send(piece)
            sent += len(piece) if going else 0
        if not going:
            answer.closed_s = time.monotonic() - started
        answer.sent_total = sent
        if answer.seconds is None:
            answer.body_sent = sent
        await asyncio.wait_for(reading, 30)
    except (TimeoutError, ValueError, IndexError) as exc:
        answer.error = answer.error or type(exc).__name__
    finally:
        conn.close()
        await _settle(reading)
    return answer


async def trickle(
    port: int,
    path: str,
    headers: dict[str, str],
    body: bytes,
    every_s: float = 1.0,
    stop: asyncio.Event | None = None,
) -> RawAnswer:
    """Send the headers, then the body one byte every ``every_s`` seconds, until the server
    answers (or ``stop`` is set, or the body is all sent)."""
    answer = RawAnswer(declared=len(body))
    conn = await _Conn.open(port, 10.0)
    if conn is None:
        answer.error = "could not connect"
        return answer
    started = answer.began = time.monotonic()
    reading = asyncio.ensure_future(conn.read_answer(answer, started))
    try:
        await conn.send(head("POST", path, port, len(body), headers))
        for i in range(len(body)):
            done, _ = await asyncio.wait({reading}, timeout=every_s)
            if done or (stop is not None and stop.is_set()):
                break
            if not await conn.send(body[i : i + 1]):
                break
            answer.body_sent = i + 1
        if stop is None or not stop.is_set():
            await asyncio.wait_for(reading, 30)
    except (TimeoutError, ValueError, IndexError) as exc:
        answer.error = answer.error or type(exc).__name__
    finally:
        conn.close()
        await _settle(reading)
    return answer


async def _settle(task: asyncio.Future[None]) -> None:
    if not task.done():
        task.cancel()
    with contextlib.suppress(BaseException):
        await task
