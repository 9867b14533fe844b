"""Connection limits of the model service: slow or half-open clients cannot starve the others.

uvicorn's own ``limit_concurrency`` counts *connections*, including ones that never finish their request line,
and it sets no deadline for a request's headers: 64 sockets that send half a header made every client, token
holders included, get 503 for as long as they stayed open. So the service runs uvicorn's h11 protocol with:

- a deadline for each request's headers (``header_timeout``): a connection that has not sent them in time is
  closed;
- a cap on header-incomplete connections per client address (``max_pending_per_client``): a new one closes the
  client's oldest, so one address cannot hold every socket while a well-behaved request still gets through;
- a cap on open sockets (``max_open``), beyond which new ones are closed at once (file descriptors are finite).

Admission of complete requests (in flight overall and per client) and the body deadline are enforced by the
service's ASGI guard (:mod:`tvmedge.serve.app`), where the request is known.
"""

from __future__ import annotations

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

__all__ = ["guarded_protocol"]


def guarded_protocol(header_timeout: float, max_pending_per_client: int, max_open: int) -> type:
    """An ``H11Protocol`` subclass (uvicorn's ``http=`` setting) enforcing the limits above."""
    pending: dict = {}  # client address -> its header-incomplete connections, oldest first

    class GuardedH11Protocol(H11Protocol):
        def connection_made(self, transport) -> None:
            self._deadline = None
            super().connection_made(transport)
            if len(self.connections) > max_open:
                transport.close()
                return
            self._await_headers()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self.transport.is_closing():
                self._headers_done()
            elif self.conn.their_state is h11.IDLE:  # a request line / headers begun and not finished
                self._await_headers()
            else:
                self._headers_done()

        def connection_lost(self, exc) -> None:
            self._headers_done()
            super().connection_lost(exc)

        def _client(self) -> str:
            return self.client[0] if self.client else "-"

        def _await_headers(self) -> None:
            waiting = pending.setdefault(self._client(), [])
            if self not in waiting:
                waiting.append(self)
            while len(waiting) > max_pending_per_client:
                waiting[0]._drop()
            if self._deadline is None:
                self._deadline = self.loop.call_later(header_timeout, self._drop)

        def _headers_done(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None
            waiting = pending.get(self._client())
            if waiting and self in waiting:
                waiting.remove(self)
                if not waiting:
                    del pending[self._client()]

        def _drop(self) -> None:
            self._headers_done()
            if not self.transport.is_closing():
                self.transport.close()

    return GuardedH11Protocol
