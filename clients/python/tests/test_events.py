"""subscribe(): live events, heartbeats skipped, resume_after replay, Lagged raised."""

from __future__ import annotations

import queue
import threading
import time
from typing import Any, Iterator, List, Optional

import grpc
import pytest

from hush_client import HushClient, LaggedError, Subscription, pb

events_pb2 = pb.events_pb2

TIMEOUT = 15.0


def collect(subscription: Subscription) -> "queue.Queue[Any]":
    """Iterate the subscription in a thread; every event (or the exception that ended it) goes into the queue."""
    out: "queue.Queue[Any]" = queue.Queue()

    def run() -> None:
        try:
            for event in subscription:
                out.put(event)
        except BaseException as error:  # noqa: BLE001 - handed to the test
            out.put(error)

    threading.Thread(target=run, daemon=True).start()
    return out


def next_event(q: "queue.Queue[Any]") -> events_pb2.Event:
    item = q.get(timeout=TIMEOUT)
    if isinstance(item, BaseException):
        raise item
    assert isinstance(item, events_pb2.Event)
    return item


def test_subscribe_receives_create_event(client: HushClient, project_id: str) -> None:
    with client.subscribe(project_id, environment="dev", secret_path="/**") as subscription:
        q = collect(subscription)
        time.sleep(1.5)  # the server sends a heartbeat each second while idle; the helper must skip it
        client.set_secret(project_id, "dev", "API_TOKEN", "value-never-in-events", secret_path="/svc")
        event = next_event(q)
        assert event.type == "secret:create"
        assert event.project_id == project_id
        assert event.cursor and event.id
        assert [(s.environment, s.secret_path, s.secret_key) for s in event.secrets] == [("dev", "/svc", "API_TOKEN")]
        assert event.actor.identity_id == client.identity_id
        assert b"value-never-in-events" not in event.SerializeToString()
        assert subscription.last_cursor == event.cursor
        assert subscription.last_heartbeat is not None
        # Filtered out: another environment.
        client.set_secret(project_id, "prod", "OTHER", "v")
        client.set_secret(project_id, "dev", "API_TOKEN", "v2", secret_path="/svc")
        assert next_event(q).type == "secret:update"
    # Leaving the block cancels the stream and ends the iteration cleanly.
    assert subscription.cancelled


def test_subscribe_event_types_filter(client: HushClient, project_id: str) -> None:
    with client.subscribe(project_id, event_types=["secret:delete"]) as subscription:
        q = collect(subscription)
        client.set_secret(project_id, "dev", "K", "v")
        client.delete_secret(project_id, "dev", "K")
        event = next_event(q)
        assert event.type == "secret:delete"
        assert [s.secret_key for s in event.secrets] == ["K"]


def test_resume_after_replays_missed_events(client: HushClient, project_id: str) -> None:
    with client.subscribe(project_id) as first:
        q = collect(first)
        client.set_secret(project_id, "dev", "A", "1")
        a = next_event(q)
        assert [s.secret_key for s in a.secrets] == ["A"]
    # Nobody is listening while these happen.
    client.set_secret(project_id, "dev", "B", "2")
    client.set_secret(project_id, "staging", "C", "3", secret_path="/x")
    with client.subscribe(project_id, resume_after=a.cursor) as resumed:
        q = collect(resumed)
        b, c = next_event(q), next_event(q)
        assert [(e.type, e.secrets[0].secret_key) for e in (b, c)] == [("secret:create", "B"), ("secret:create", "C")]
        # Then live again.
        client.set_secret(project_id, "dev", "D", "4")
        assert next_event(q).secrets[0].secret_key == "D"
        assert resumed.last_cursor is not None and resumed.last_cursor != a.cursor


def test_subscribe_unknown_project_raises(client: HushClient) -> None:
    # Raised by subscribe() itself once the refusal arrived, else by the first next().
    with pytest.raises(grpc.RpcError) as info:
        next(client.subscribe("00000000-0000-0000-0000-000000000000"))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


def test_subscribe_to_a_dead_server_raises_unavailable() -> None:
    with HushClient("127.0.0.1:1") as dead:
        with pytest.raises(grpc.RpcError) as info:
            dead.subscribe("00000000-0000-0000-0000-000000000000")
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE


def test_subscribe_needs_an_event_type(client: HushClient, project_id: str) -> None:
    with pytest.raises(ValueError):
        client.subscribe(project_id, event_types=[])


# -- the iterator on a scripted stream (Lagged cannot be provoked cheaply on a live server) ---------------------


class FakeCall:
    """Stands in for grpc's unary-stream call object."""

    def __init__(self, responses: List[events_pb2.SubscribeResponse]) -> None:
        self._responses: Iterator[events_pb2.SubscribeResponse] = iter(responses)
        self.cancelled = False

    def __next__(self) -> events_pb2.SubscribeResponse:
        return next(self._responses)

    def initial_metadata(self) -> Optional[Any]:
        return None

    def cancel(self) -> bool:
        self.cancelled = True
        return True


def event(cursor: str, key: str) -> events_pb2.SubscribeResponse:
    return events_pb2.SubscribeResponse(
        event=events_pb2.Event(
            cursor=cursor, type="secret:create", secrets=[events_pb2.SecretRef(environment="dev", secret_key=key)]
        )
    )


def heartbeat() -> events_pb2.SubscribeResponse:
    response = events_pb2.SubscribeResponse(heartbeat=events_pb2.Heartbeat())
    response.heartbeat.time.GetCurrentTime()
    return response


def test_iterator_skips_heartbeats_and_raises_lagged() -> None:
    call = FakeCall(
        [
            heartbeat(),
            event("1", "A"),
            heartbeat(),
            heartbeat(),
            event("2", "B"),
            events_pb2.SubscribeResponse(lagged=events_pb2.Lagged(resume_after="2", reason="subscriber too slow")),
        ]
    )
    subscription = Subscription(call, resume_after="0")
    assert subscription.last_cursor == "0"
    got = []
    with pytest.raises(LaggedError) as info:
        for e in subscription:
            got.append(e.secrets[0].secret_key)
    assert got == ["A", "B"]
    assert info.value.resume_after == "2"
    assert info.value.reason == "subscriber too slow"
    assert subscription.last_cursor == "2"
    assert subscription.last_heartbeat is not None


def test_iterator_ends_when_stream_ends_or_is_cancelled() -> None:
    assert list(Subscription(FakeCall([heartbeat(), event("1", "A")]))) != []
    call = FakeCall([event("1", "A"), event("2", "B")])
    with Subscription(call) as subscription:
        assert next(subscription).cursor == "1"
    assert call.cancelled
    with pytest.raises(StopIteration):
        next(subscription)
