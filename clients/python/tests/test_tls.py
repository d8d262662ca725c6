"""The client against `hush serve --tls-self-signed`: TLS with the server's certificate as CA works end to end;
cleartext and an untrusted certificate fail promptly."""

from __future__ import annotations

import queue
import threading

import grpc
import pytest

from conftest import HushServer, tls_credentials
from hush_client import HushClient


def test_login_secrets_and_events_over_tls(hush_tls_server: HushServer) -> None:
    credentials = tls_credentials(hush_tls_server.data_dir)
    with HushClient.from_bootstrap(
        hush_tls_server.bootstrap_path, target=hush_tls_server.target, credentials=credentials
    ) as client:
        project_id = client.create_project("py-tls").id
        events: "queue.Queue[object]" = queue.Queue()
        with client.subscribe(project_id, environment="dev", secret_path="/**") as subscription:
            threading.Thread(target=lambda: events.put(next(iter(subscription))), daemon=True).start()
            client.set_secret(project_id, "dev", "OVER_TLS", "v1")
            event = events.get(timeout=15)
        assert event.type == "secret:create"  # type: ignore[attr-defined]
        assert client.get_secret(project_id, "dev", "OVER_TLS").value == "v1"


def test_cleartext_client_fails_against_the_tls_port(hush_tls_server: HushServer) -> None:
    with HushClient(hush_tls_server.target) as client:
        with pytest.raises(grpc.RpcError) as info:
            client.health(timeout=5.0)
        assert info.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


def test_certificate_from_an_unknown_ca_is_refused(hush_tls_server: HushServer) -> None:
    # The system's public roots do not include a self-signed development certificate.
    with HushClient(hush_tls_server.target, credentials=grpc.ssl_channel_credentials()) as client:
        with pytest.raises(grpc.RpcError) as info:
            client.health(timeout=5.0)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
