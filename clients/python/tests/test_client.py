"""Login, bearer metadata and the secret conveniences against a live server."""

from __future__ import annotations

import grpc
import pytest

from conftest import HushServer
from hush_client import USER_AGENT, HushClient, pb


def test_health(hush_server: HushServer) -> None:
    with HushClient(hush_server.target) as c:
        assert c.health() == "SERVING"


def test_login_works(hush_server: HushServer) -> None:
    with HushClient(hush_server.target) as c:
        response = c.login(hush_server.client_id, hush_server.client_secret)
        assert response.access_token
        assert c.token == response.access_token
        assert c.identity_id == hush_server.identity_id
        assert c.org_id == hush_server.org_id
        assert c.token_expires_at is not None and c.token_expires_at.seconds > 0
        # The token goes out as bearer metadata on stub calls too.
        c.projects.ListProjects(pb.projects_pb2.ListProjectsRequest(), timeout=10)


def test_wrong_secret_is_unauthenticated(hush_server: HushServer) -> None:
    with HushClient(hush_server.target) as c:
        with pytest.raises(grpc.RpcError) as info:
            c.login(hush_server.client_id, "hush_cs_" + "x" * 43)
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert c.token is None


def test_call_without_token_is_unauthenticated(hush_server: HushServer) -> None:
    with HushClient(hush_server.target) as c:
        with pytest.raises(grpc.RpcError) as info:
            c.create_project("nope")
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_from_bootstrap_rejects_a_file_without_credentials(tmp_path: object, hush_server: HushServer) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "bad.json"
    path.write_text('{"client_id": "x"}')
    with pytest.raises(ValueError, match="client_secret"):
        HushClient.from_bootstrap(path, target=hush_server.target)


def test_user_agent() -> None:
    assert USER_AGENT.startswith("grpc-python-hush/")


def test_project_and_secret_round_trip(client: HushClient) -> None:
    project = client.create_project("py-round-trip")
    assert project.id and project.name == "py-round-trip"
    environments = client.projects.ListEnvironments(
        pb.projects_pb2.ListEnvironmentsRequest(project_id=project.id), timeout=10
    ).environments
    assert [e.slug for e in environments] == ["dev", "staging", "prod"]

    created = client.set_secret(project.id, "dev", "DB_PASSWORD", "s3cr3t", secret_path="/api", comment="db")
    assert created.key == "DB_PASSWORD" and created.version == 1
    assert created.value == ""  # writes never return values

    secret = client.get_secret(project.id, "dev", "DB_PASSWORD", secret_path="/api")
    assert (secret.value, secret.version, secret.comment, secret.secret_path) == ("s3cr3t", 1, "db", "/api")

    # set_secret on an existing key makes a new version and keeps the comment.
    updated = client.set_secret(project.id, "dev", "DB_PASSWORD", "n3w", secret_path="/api")
    assert updated.version == 2
    assert client.get_secret(project.id, "dev", "DB_PASSWORD", secret_path="/api").value == "n3w"
    assert client.get_secret(project.id, "dev", "DB_PASSWORD", secret_path="/api", version=1).value == "s3cr3t"
    assert client.get_secret(project.id, "dev", "DB_PASSWORD", secret_path="/api").comment == "db"

    assert [(s.key, s.value) for s in client.list_secrets(project.id, "dev", secret_path="/api")] == [
        ("DB_PASSWORD", "n3w")
    ]

    client.delete_secret(project.id, "dev", "DB_PASSWORD", secret_path="/api")
    with pytest.raises(grpc.RpcError) as info:
        client.get_secret(project.id, "dev", "DB_PASSWORD", secret_path="/api")
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


def test_list_secrets_follows_every_page(client: HushClient, project_id: str) -> None:
    # 250 secrets: more than the server's default page of 100, so the helper must follow next_page_token.
    secrets = [pb.secrets_pb2.SecretInput(key=f"K{i:03}", value=str(i)) for i in range(250)]
    client.secrets.BatchCreateSecrets(
        pb.secrets_pb2.BatchCreateSecretsRequest(
            project_id=project_id, environment="dev", secret_path="/many", secrets=secrets
        ),
        timeout=30,
    )
    listed = client.list_secrets(project_id, "dev", secret_path="/many")
    assert [(s.key, s.value) for s in listed] == [(f"K{i:03}", str(i)) for i in range(250)]


def test_invalid_key_is_invalid_argument(client: HushClient, project_id: str) -> None:
    with pytest.raises(grpc.RpcError) as info:
        client.set_secret(project_id, "dev", "bad key!", "v")
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "v" not in (info.value.details() or "").split()


def test_check_and_set_refuses_a_stale_version(client: HushClient, project_id: str) -> None:
    assert client.set_secret(project_id, "dev", "CAS", "v1").version == 1
    assert client.set_secret(project_id, "dev", "CAS", "v2", expected_version=1).version == 2
    with pytest.raises(grpc.RpcError) as info:
        client.set_secret(project_id, "dev", "CAS", "stale", expected_version=1)
    assert info.value.code() == grpc.StatusCode.ABORTED
    assert "is at version 2, not the expected version 1" in (info.value.details() or "")
    with pytest.raises(grpc.RpcError) as info:
        client.delete_secret(project_id, "dev", "CAS", expected_version=1)
    assert info.value.code() == grpc.StatusCode.ABORTED
    assert client.get_secret(project_id, "dev", "CAS").value == "v2"
    client.delete_secret(project_id, "dev", "CAS", expected_version=2)
