"""uvicorn in a background thread, with a read deadline per request.

uvicorn closes idle keep-alive connections (``timeout_keep_alive``) but gives a client that
opened a connection, or sent part of a request, all the time it wants: 300 such clients hold
300 connections forever (slowloris). :class:`_DeadlineProtocol` gives every request
``read_timeout_s`` from its first byte (or from the connection's opening) until its body is
complete, then closes the connection. Malformed HTTP gets a JSON 400 instead of uvicorn's
plain text.

A server that answers before it has read the whole body (413 on a declared Content-Length) and
then closes makes the kernel reset the connection: the unread bytes turn the close into an RST,
and the client, still sending, may never read the answer. So such a close *lingers*, as nginx's
``lingering_close`` does: the answer is flushed, the write side shut (FIN), and what the client
still sends is read and dropped for up to :data:`LINGER_S`, until it closes its side.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from dataclasses import dataclass
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from aiops.logs import get_logger

__all__ = ["HttpLimits", "ServerThread"]

log = get_logger("aiops.http")

LINGER_S = 5.0  # how long a closing connection keeps reading a body it will not use


@dataclass(frozen=True, slots=True)
class HttpLimits:
    """Limits of one HTTP server.

    Args:
        read_timeout_s: a request's headers and body must arrive within this long.
        keepalive_timeout_s: an idle keep-alive connection is closed after this long.
        max_connections: above this many open connections or requests in flight, 503.
        max_body_bytes: a bigger body is answered 413 without being read.
        max_header_bytes: a bigger request head is answered 400.
    """

    read_timeout_s: float = 10.0
    keepalive_timeout_s: float = 5.0
    max_connections: int = 1000
    max_body_bytes: int = 10 * 1024 * 1024  # a burst of 10,000 Alertmanager alerts fits
    max_header_bytes: int = 16 * 1024


class _LingeringTransport:
    """The transport uvicorn sees: its ``close()`` lingers while the client still sends a body."""

    def __init__(self, transport: asyncio.Transport, protocol: _DeadlineProtocol) -> None:
        self._transport = transport
        self._protocol = protocol

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)

    def is_closing(self) -> bool:
        return self._protocol.lingering or self._transport.is_closing()

    def close(self) -> None:
        if self._protocol.lingering or self._transport.is_closing():
            return
        if self._protocol.conn.their_state is h11.SEND_BODY and self._transport.can_write_eof():
            self._protocol.linger()
        else:
            self._transport.close()


class _DeadlineProtocol(H11Protocol):
    read_timeout_s = 10.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._deadline: asyncio.TimerHandle | None = None
        self._raw_transport = transport
        self._linger_timer: asyncio.TimerHandle | None = None
        self.lingering = False
        super().connection_made(_LingeringTransport(transport, self))  # type: ignore[arg-type]
        self._arm()

    def linger(self) -> None:
        """Flush the answer, shut the write side, drop what the client still sends, then close."""
        self.lingering = True
        self._disarm()
        self._raw_transport.write_eof()  # sent once the answer has left the buffer
        self._raw_transport.resume_reading()  # uvicorn may have paused it under a big body
        self._linger_timer = self.loop.call_later(LINGER_S, self._raw_transport.close)

    def _arm(self) -> None:
        if self._deadline is None:
            self._deadline = self.loop.call_later(self.read_timeout_s, self._read_timed_out)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def data_received(self, data: bytes) -> None:
        if self.lingering:
            return  # the rest of a body already answered
        if self.conn.their_state is h11.IDLE:
            self._arm()  # a new request begins (the keep-alive timer covered the idle time)
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE and self.conn.their_state is not h11.SEND_BODY:
            self._disarm()  # the request is complete (or the connection is done)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.conn.their_state is h11.IDLE:
            self._disarm()

    def shutdown(self) -> None:
        super().shutdown()
        if self.lingering:
            self._raw_transport.close()  # the server is stopping: no time for a dropped body

    def eof_received(self) -> None:
        if self.lingering:
            self._raw_transport.close()  # the client has sent all it will and read the answer

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self._linger_timer is not None:
            self._linger_timer.cancel()
        super().connection_lost(exc)

    def _read_timed_out(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        if self.cycle is None or self.conn.our_state is h11.IDLE and self.conn.their_state is not h11.SEND_BODY:
            try:
                self._send_json(408, "request not received within the read timeout", linger=False)
                return
            except h11.LocalProtocolError:
                pass
        self._raw_transport.close()  # a handler waiting for the body sees a disconnect

    def send_400_response(self, msg: str) -> None:
        try:
            self._send_json(400, f"malformed HTTP request: {msg}")
        except h11.LocalProtocolError:
            self.transport.close()

    def _send_json(self, status: int, message: str, linger: bool = True) -> None:
        body = json.dumps({"status": "error", "error": message}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                   (b"connection", b"close")]
        if self.conn.our_state is not h11.SEND_RESPONSE and self.conn.our_state is not h11.IDLE:
            raise h11.LocalProtocolError("response already started")
        out = h11.Connection(h11.SERVER)  # a fresh state machine: the client's may be broken
        data = out.send(h11.Response(status_code=status, headers=headers, reason=b""))
        self.transport.write((data or b"") + body)
        if linger:
            self.transport.close()
        else:
            self._raw_transport.close()  # a stalled client gets no more time


class ServerThread:
    """Serve an ASGI app with uvicorn on a thread of its own.

    Args:
        app: the ASGI application.
        host: address to bind.
        port: port to bind (0: a free one).
        limits: timeouts and sizes.
    """

    def __init__(self, app: Any, host: str, port: int, limits: HttpLimits) -> None:
        protocol = type("DeadlineProtocol", (_DeadlineProtocol,), {"read_timeout_s": limits.read_timeout_s})
        self.sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.sock.set_inheritable(True)
        config = uvicorn.Config(
            app, http=protocol, lifespan="off", access_log=False, log_config=None, server_header=False,
            timeout_keep_alive=max(1, int(limits.keepalive_timeout_s)),
            limit_concurrency=limits.max_connections, h11_max_incomplete_event_size=limits.max_header_bytes,
            backlog=min(2048, limits.max_connections), timeout_graceful_shutdown=2,
        )
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, name=f"http-{self.port}", daemon=True)
        self._failed: BaseException | None = None

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    def _run(self) -> None:
        try:
            asyncio.run(self.server.serve(sockets=[self.sock]))
        except BaseException as exc:  # reported by start()
            self._failed = exc

    def start(self, timeout_s: float = 10.0) -> None:
        """Start serving; returns once the server accepts connections."""
        self._thread.start()
        deadline = threading.Event()
        for _ in range(int(timeout_s / 0.01)):
            if self.server.started or self._failed is not None or not self._thread.is_alive():
                break
            deadline.wait(0.01)
        if not self.server.started:
            raise RuntimeError(f"HTTP server did not start: {self._failed!r}")

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop accepting, finish requests in flight (up to ``timeout_s``), close the socket."""
        self.server.should_exit = True
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            self.server.force_exit = True
            self._thread.join(2.0)
        self.sock.close()
