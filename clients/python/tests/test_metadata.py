"""What the client puts on the wire, seen by an in-process grpc server: bearer token and user agent."""

from __future__ import annotations

from concurrent import futures
from typing import Any, Dict, Iterator, List

import grpc
import pytest

from hush_client import USER_AGENT, HushClient, pb

identity_pb2, projects_pb2, events_pb2 = pb.identity_pb2, pb.projects_pb2, pb.events_pb2

Seen = List[Dict[str, Any]]


def _record(seen: Seen, method: str, context: grpc.ServicerContext) -> None:
    seen.append({"method": method, **{k: v for k, v in context.invocation_metadata()}})


class Identity(pb.identity_pb2_grpc.IdentityServiceServicer):
    def __init__(self, seen: Seen) -> None:
        self.seen = seen

    def Login(self, request: Any, context: grpc.ServicerContext) -> Any:
        _record(self.seen, "Login", context)
        return identity_pb2.LoginResponse(access_token="tok-123", identity_id="i", org_id="o")


class Projects(pb.projects_pb2_grpc.ProjectsServiceServicer):
    def __init__(self, seen: Seen) -> None:
        self.seen = seen

    def CreateProject(self, request: Any, context: grpc.ServicerContext) -> Any:
        _record(self.seen, "CreateProject", context)
        return projects_pb2.CreateProjectResponse(project=projects_pb2.Project(id="p1", name=request.name))


class Events(pb.events_pb2_grpc.EventsServiceServicer):
    def __init__(self, seen: Seen) -> None:
        self.seen = seen

    def Subscribe(self, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        _record(self.seen, "Subscribe", context)
        yield events_pb2.SubscribeResponse(heartbeat=events_pb2.Heartbeat())
        yield events_pb2.SubscribeResponse(event=events_pb2.Event(cursor="7", type="secret:create"))


@pytest.fixture
def fake_server() -> Iterator[tuple[str, Seen]]:
    seen: Seen = []
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    pb.identity_pb2_grpc.add_IdentityServiceServicer_to_server(Identity(seen), server)
    pb.projects_pb2_grpc.add_ProjectsServiceServicer_to_server(Projects(seen), server)
    pb.events_pb2_grpc.add_EventsServiceServicer_to_server(Events(seen), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}", seen
    finally:
        server.stop(grace=None)


def test_bearer_token_and_user_agent_on_every_call(fake_server: tuple[str, Seen]) -> None:
    target, seen = fake_server
    with HushClient(target) as client:
        client.login("id", "secret")
        assert client.create_project("demo").id == "p1"
        with client.subscribe("p1", wait_ready=False) as events:
            assert next(events).cursor == "7"
    by_method = {s["method"]: s for s in seen}
    assert "authorization" not in by_method["Login"]
    assert by_method["CreateProject"]["authorization"] == "Bearer tok-123"
    assert by_method["Subscribe"]["authorization"] == "Bearer tok-123"
    for call in seen:
        assert call["user-agent"].startswith(USER_AGENT + " "), call["user-agent"]


def test_token_can_be_given_or_cleared(fake_server: tuple[str, Seen]) -> None:
    target, seen = fake_server
    with HushClient(target, token="given") as client:
        client.create_project("a")
        client.token = None
        client.create_project("b")
    assert seen[0]["authorization"] == "Bearer given"
    assert "authorization" not in seen[1]
