"""Iterating over an ``EventsService.Subscribe`` stream: events only, heartbeats skipped, Lagged raised."""

from __future__ import annotations

import threading
from typing import Any, Iterator, Optional

import grpc

from .pb import events_pb2


class LaggedError(Exception):
    """The server ended the stream because the subscriber fell behind.

    No event is lost: subscribe again with ``resume_after=error.resume_after``.
    """

    def __init__(self, resume_after: str, reason: str) -> None:
        super().__init__(f"subscription lagged ({reason or 'no reason given'}); resume after cursor {resume_after!r}")
        #: Cursor to pass as ``resume_after`` to continue where the stream stopped.
        self.resume_after = resume_after
        #: Human-readable reason, for logs.
        self.reason = reason


class Subscription(Iterator[events_pb2.Event]):
    """An open event stream: iterate it to get :class:`hush.v1.Event` messages as they are committed.

    - Heartbeats are consumed silently (``last_heartbeat`` keeps the time of the latest one).
    - A ``Lagged`` message raises :class:`LaggedError` carrying the cursor to resume from.
    - An error from the server raises :class:`grpc.RpcError` (e.g. ``PERMISSION_DENIED``, ``NOT_FOUND``).
    - :meth:`cancel` (from any thread) or leaving a ``with`` block ends the iteration cleanly.

    ``last_cursor`` is the cursor of the last event returned, or the ``resume_after`` the stream was opened with;
    after a dropped connection, subscribe again with ``resume_after=subscription.last_cursor``.
    """

    def __init__(self, call: Any, resume_after: Optional[str] = None) -> None:
        # `call` is the object grpc returns for a unary-stream call: an iterator of SubscribeResponse that is
        # also a grpc.Call (cancel, initial_metadata, ...) and a grpc.Future.
        self._call = call
        self._cancelled = threading.Event()
        self.last_cursor: Optional[str] = resume_after
        self.last_heartbeat: Optional[Any] = None  # google.protobuf.Timestamp of the latest heartbeat

    def wait_ready(self) -> None:
        """Block until the server accepted the subscription (its response headers arrived).

        From then on every event committed is delivered. If the call already failed (``UNAVAILABLE``,
        ``PERMISSION_DENIED``, ``NOT_FOUND``, ...), raises that ``grpc.RpcError``; an error that arrives later is
        raised by the next iteration instead.
        """
        self._call.initial_metadata()
        done = getattr(self._call, "done", None)
        if callable(done) and done() and isinstance(self._call, grpc.RpcError):
            if self._call.code() != grpc.StatusCode.OK:
                raise self._call

    def cancel(self) -> None:
        """End the stream; a thread blocked in iteration gets ``StopIteration``."""
        self._cancelled.set()
        self._call.cancel()

    @property
    def cancelled(self) -> bool:
        """Whether :meth:`cancel` was called."""
        return self._cancelled.is_set()

    def __iter__(self) -> "Subscription":
        return self

    def __next__(self) -> events_pb2.Event:
        while True:
            if self._cancelled.is_set():
                raise StopIteration
            try:
                response: events_pb2.SubscribeResponse = next(self._call)
            except grpc.RpcError as error:
                if self._cancelled.is_set() and _code(error) == grpc.StatusCode.CANCELLED:
                    raise StopIteration from None
                raise
            kind = response.WhichOneof("message")
            if kind == "event":
                self.last_cursor = response.event.cursor
                return response.event
            if kind == "heartbeat":
                self.last_heartbeat = response.heartbeat.time
                continue
            if kind == "lagged":
                raise LaggedError(response.lagged.resume_after, response.lagged.reason)
            # An unknown message kind from a newer server: skip it.

    def __enter__(self) -> "Subscription":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.cancel()


def _code(error: grpc.RpcError) -> Optional[grpc.StatusCode]:
    code = getattr(error, "code", None)
    return code() if callable(code) else None
