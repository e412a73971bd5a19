"""The size limit of a request's head (its request line and headers) in `taskmanager serve`.

uvicorn's httptools protocol reads a head of any size (h11 has a limit, httptools none), so
a client could hold megabytes of one connection's memory before the application sees the
request. ``BoundedHttpToolsProtocol`` (see :func:`http_protocol`) counts a head's bytes and
answers 431 ``HEADERS_TOO_LARGE`` (the one error body) once it is over
:data:`MAX_HEAD_BYTES`, then closes the connection.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from taskmanager.entrypoints.http_errors import HeadersTooLargeError, error_response

if TYPE_CHECKING:
    import asyncio

#: As h11's default, and well above what a browser or the CLI sends (cookies included).
MAX_HEAD_BYTES: Final = 16 * 1024


def refusal_bytes() -> bytes:
    """The whole HTTP answer to a head over the limit."""
    response = error_response(HeadersTooLargeError(MAX_HEAD_BYTES))
    body = str(response.body).encode("utf-8")
    return (
        b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
        b"content-type: application/json\r\n"
        b"content-length: " + str(len(body)).encode() + b"\r\n"
        b"connection: close\r\n\r\n" + body
    )


def http_protocol() -> type[asyncio.Protocol] | str:
    """The HTTP protocol for uvicorn: httptools with the head limit when it is installed,
    else h11 (which ``h11_max_incomplete_event_size`` bounds)."""
    try:
        from uvicorn.protocols.http.httptools_impl import (  # noqa: PLC0415
            HttpToolsProtocol,
        )
    except ImportError:
        return "h11"

    class BoundedHttpToolsProtocol(HttpToolsProtocol):
        """httptools, refusing a head over :data:`MAX_HEAD_BYTES`.

        Two counts, since a head may come in one read or in many: the bytes of the URL and
        headers parsed so far (a head read whole at once), and the bytes read while a head
        is incomplete (httptools holds a header's partial value until its end)."""

        _in_head = False
        _parsed = 0
        _read = 0
        _too_large = False

        def on_message_begin(self) -> None:
            self._in_head, self._parsed, self._read = True, 0, 0
            super().on_message_begin()

        def on_url(self, url: bytes) -> None:
            self._count(len(url))
            super().on_url(url)

        def on_header(self, name: bytes, value: bytes) -> None:
            self._count(len(name) + len(value) + 4)  # ": " and CRLF
            super().on_header(name, value)

        def on_headers_complete(self) -> None:
            self._in_head = False
            super().on_headers_complete()

        def _count(self, size: int) -> None:
            self._parsed += size
            if self._parsed > MAX_HEAD_BYTES:
                self._too_large = True
                # httptools stops parsing; uvicorn then answers through send_400_response.
                raise HeadersTooLargeError(MAX_HEAD_BYTES)

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self._in_head and not self.transport.is_closing():
                self._read += len(data)
                if self._read > MAX_HEAD_BYTES:
                    self._too_large = True
                    self.send_400_response("")

        def send_400_response(self, msg: str) -> None:
            if not self._too_large:
                super().send_400_response(msg)
                return
            self._in_head = self._too_large = False
            self.transport.write(refusal_bytes())
            self.transport.close()

    return BoundedHttpToolsProtocol
