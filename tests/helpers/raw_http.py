"""HTTP spoken by hand over a socket: the slow and half-finished clients an attacker would open."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

# What each kind of slow client sends, then never finishes.
SLOW = {
    "idle": b"",
    "head": b"GET /healthz HTTP/1.1\r\nHost: slow\r\nX-Slow: ",
    "body": (
        b"POST /hooks/circleci HTTP/1.1\r\nHost: slow\r\nContent-Type: application/json\r\n"
        b"Content-Length: 204800\r\n\r\n{" + b" " * 1023
    ),
}


@dataclass
class RawConnection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    async def closed_by_server(self, within: float) -> bytes:
        """Wait until the server closes the connection; what it sent before closing."""
        received = b""
        async with asyncio.timeout(within):
            with contextlib.suppress(ConnectionResetError):
                while chunk := await self.reader.read(65536):
                    received += chunk
        return received

    def is_open(self) -> bool:
        """Whether the server has neither closed nor reset the connection yet."""
        return not self.reader.at_eof() and self.reader.exception() is None

    def close(self) -> None:
        self.writer.close()


async def slow_client(port: int, kind: str, query: str = "") -> RawConnection:
    """Connect to ``port`` and send the start of a request of ``kind`` (``SLOW``), no more."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    start = (
        SLOW[kind].replace(b" HTTP/1.1", f"?{query} HTTP/1.1".encode(), 1) if query else SLOW[kind]
    )
    if start:
        writer.write(start)
        await writer.drain()
    return RawConnection(reader, writer)


async def status_of(
    port: int,
    path: str = "/healthz",
    within: float = 5.0,
    *,
    method: str = "GET",
    body: bytes = b"",
) -> int:
    """``method path`` (with ``body``) on a new connection; the status code."""
    async with asyncio.timeout(within):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            head = (
                f"{method} {path} HTTP/1.1\r\nHost: probe\r\nConnection: close\r\n"
                f"Content-Length: {len(body)}\r\n\r\n"
            )
            writer.write(head.encode() + body)
            status = await reader.readline()
        finally:
            writer.close()
    return int(status.split()[1])


async def until_status(port: int, path: str, wanted: int, within: float = 20.0) -> None:
    """Ask ``path`` until it answers ``wanted`` (a child process offers no event to wait on)."""
    async with asyncio.timeout(within):
        while True:
            with contextlib.suppress(OSError):
                if await status_of(port, path) == wanted:
                    return
            await asyncio.sleep(0.05)
