"""The gRPC front's HTTP/1.1 client to nginx: asyncio streams, a small keep-alive pool.

Why not a library: the front talks to one server it configures itself (nginx's loopback server for
the front, config/nginx-grpc-server.part), with bodies it builds and answers nginx frames with a
Content-Length (or chunked); the standard library's asyncio streams do it in this page, and the
service gains no runtime dependency. Cancelling a send (the gRPC client's deadline passed, or it
went away) closes its connection, so nginx stops waiting on TorchServe for it as well.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from scripts.service.grpc_front.translate import UpstreamRequest

MAX_HEAD_BYTES = 64 * 1024  # nginx's answers carry a few small headers
IDLE_S = 20.0  # under nginx's keepalive_timeout (30 s): never reuse a connection nginx may be closing


class UpstreamError(ConnectionError):
    """nginx could not be reached, or its answer was cut off or malformed."""


class _Stale(Exception):
    """A kept-alive connection that nginx had closed: nothing of the request was answered."""


@dataclass
class HttpAnswer:
    status: int
    headers: dict[str, str] = field(default_factory=dict)  # names in lower case
    body: bytes = b""


@dataclass
class _Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    last_used: float = 0.0

    def close(self) -> None:
        self.writer.close()


class UpstreamPool:
    """Connections to ``host:port``, one per request in flight, idle ones kept for reuse."""

    def __init__(self, host: str, port: int, max_idle: int = 64, idle_s: float = IDLE_S) -> None:
        self.host = host
        self.port = port
        self.max_idle = max_idle
        self.idle_s = idle_s
        self._idle: list[_Connection] = []

    async def send(self, request: UpstreamRequest) -> HttpAnswer:
        """One request, one answer. A kept-alive connection found closed is replaced once."""
        data = encode_request(request, f"{self.host}:{self.port}")
        while True:
            connection, reused = self._take_idle(), True
            if connection is None:
                connection, reused = await self._connect(), False
            try:
                connection.writer.write(data)
                await connection.writer.drain()
                answer, keep = await read_answer(connection.reader, request.method)
            except (_Stale, ConnectionError) as error:
                connection.close()
                if reused:
                    continue  # nginx closed it while idle; the request never reached a handler
                raise UpstreamError(f"nginx closed the connection: {error}") from error
            except asyncio.IncompleteReadError as error:
                connection.close()
                raise UpstreamError("nginx's answer was cut off") from error
            except BaseException:  # cancelled (deadline, client gone) or a bug: never reuse it
                connection.close()
                raise
            if keep and len(self._idle) < self.max_idle:
                connection.last_used = time.monotonic()
                self._idle.append(connection)
            else:
                connection.close()
            return answer

    def _take_idle(self) -> _Connection | None:
        now = time.monotonic()
        while self._idle:
            connection = self._idle.pop()
            if now - connection.last_used < self.idle_s and not connection.reader.at_eof():
                return connection
            connection.close()
        return None

    async def _connect(self) -> _Connection:
        try:
            reader, writer = await asyncio.open_connection(self.host, self.port, limit=MAX_HEAD_BYTES)
        except OSError as error:
            raise UpstreamError(f"cannot reach nginx at {self.host}:{self.port}: {error}") from error
        return _Connection(reader, writer)

    def close(self) -> None:
        while self._idle:
            self._idle.pop().close()


def encode_request(request: UpstreamRequest, host: str) -> bytes:
    lines = [f"{request.method} {request.path} HTTP/1.1", f"Host: {host}", f"Content-Length: {len(request.body)}"]
    lines += [f"{name}: {value}" for name, value in request.headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + request.body


async def read_answer(reader: asyncio.StreamReader, method: str = "POST") -> tuple[HttpAnswer, bool]:
    """One HTTP/1.1 answer; also whether the connection may carry another request."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as error:
        if not error.partial:
            raise _Stale("closed before answering") from None
        raise
    except asyncio.LimitOverrunError as error:
        raise UpstreamError("nginx's answer has oversized headers") from error
    lines = head.decode("latin-1").split("\r\n")
    version, _, rest = lines[0].partition(" ")
    status_text = rest.partition(" ")[0]
    if not version.startswith("HTTP/1.") or not status_text.isdigit():
        raise UpstreamError(f"not an HTTP answer: {lines[0][:60]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, _, value = line.partition(":")
        name, value = name.strip().lower(), value.strip()
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    status = int(status_text)
    keep = version == "HTTP/1.1" and "close" not in headers.get("connection", "").lower()
    if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
        body = b""
    elif "chunked" in headers.get("transfer-encoding", "").lower():
        body = await _read_chunked(reader)
    elif headers.get("content-length", "").isdigit():
        body = await reader.readexactly(int(headers["content-length"]))
    else:  # delimited by the end of the connection
        body, keep = await reader.read(), False
    return HttpAnswer(status, headers, body), keep


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts = []
    while True:
        size_line = await reader.readuntil(b"\r\n")
        try:
            size = int(size_line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise UpstreamError("malformed chunked answer") from None
        if size == 0:
            while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers, if any
                pass
            return b"".join(parts)
        parts.append(await reader.readexactly(size))
        await reader.readexactly(2)
