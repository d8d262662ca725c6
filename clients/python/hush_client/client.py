"""HushClient: one channel, the bearer token, the service stubs and a few conveniences."""

from __future__ import annotations

import json
import os
import time
from typing import Any, Optional, Sequence, Tuple, Union

import grpc

from ._auth import BearerTokenInterceptor
from ._version import USER_AGENT
from .events import Subscription
from .pb import (
    audit_logs_pb2_grpc,
    audit_streams_pb2_grpc,
    events_pb2,
    events_pb2_grpc,
    identity_pb2,
    identity_pb2_grpc,
    projects_pb2,
    projects_pb2_grpc,
    secrets_pb2,
    secrets_pb2_grpc,
)

PathLike = Union[str, "os.PathLike[str]"]

_HEALTH_CHECK = "/grpc.health.v1.Health/Check"
_HEALTH_STATUS = {0: "UNKNOWN", 1: "SERVING", 2: "NOT_SERVING", 3: "SERVICE_UNKNOWN"}


class HushClient:
    """A client of one hush server.

    >>> client = HushClient("127.0.0.1:8080")
    >>> client.login(client_id, client_secret)          # or HushClient.from_bootstrap("hush-data/bootstrap.json")
    >>> project = client.create_project("demo")
    >>> client.set_secret(project.id, "dev", "DB_PASSWORD", "s3cr3t", secret_path="/api")
    >>> client.get_secret(project.id, "dev", "DB_PASSWORD", secret_path="/api").value
    's3cr3t'

    After :meth:`login` (or with ``token=``) every call made through this client, including calls on the stubs
    (``client.secrets.ListSecrets(...)``), carries ``authorization: Bearer <token>``. The channel announces the
    user agent ``grpc-python-hush/<version>``. The client is thread-safe as grpc channels are; use it as a context
    manager or call :meth:`close`.

    Args:
        target: ``host:port`` of the server.
        credentials: TLS channel credentials (``grpc.ssl_channel_credentials()``); ``None`` = plaintext (h2c).
        token: an access token to use instead of logging in.
        timeout: default deadline in seconds for the unary convenience methods; ``None`` = no deadline.
        options: extra grpc channel options.
    """

    def __init__(
        self,
        target: str = "127.0.0.1:8080",
        *,
        credentials: Optional[grpc.ChannelCredentials] = None,
        token: Optional[str] = None,
        timeout: Optional[float] = 30.0,
        options: Sequence[Tuple[str, Any]] = (),
    ) -> None:
        self.target = target
        self.timeout = timeout
        self._token: Optional[str] = token
        #: Filled by :meth:`login`.
        self.identity_id: Optional[str] = None
        self.org_id: Optional[str] = None
        self.token_expires_at: Optional[Any] = None  # google.protobuf.Timestamp
        channel_options = [("grpc.primary_user_agent", USER_AGENT), *options]
        if credentials is None:
            raw = grpc.insecure_channel(target, options=channel_options)
        else:
            raw = grpc.secure_channel(target, credentials, options=channel_options)
        self._raw_channel = raw
        self._channel = grpc.intercept_channel(raw, BearerTokenInterceptor(lambda: self._token))
        self._identity = identity_pb2_grpc.IdentityServiceStub(self._channel)
        self._projects = projects_pb2_grpc.ProjectsServiceStub(self._channel)
        self._secrets = secrets_pb2_grpc.SecretsServiceStub(self._channel)
        self._events = events_pb2_grpc.EventsServiceStub(self._channel)
        self._audit_logs = audit_logs_pb2_grpc.AuditLogsServiceStub(self._channel)
        self._audit_streams = audit_streams_pb2_grpc.AuditStreamsServiceStub(self._channel)

    # -- construction and lifecycle -------------------------------------------------------------------------------

    @classmethod
    def from_bootstrap(cls, path: PathLike, target: str = "127.0.0.1:8080", **kwargs: Any) -> "HushClient":
        """A client logged in with the ``client_id``/``client_secret`` of a ``bootstrap.json`` (or any JSON
        file with those two keys, such as the output of ``hush identities secret create``).

        Extra keyword arguments go to :class:`HushClient`.
        """
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        try:
            client_id, client_secret = data["client_id"], data["client_secret"]
        except (KeyError, TypeError):
            raise ValueError(f"{os.fspath(path)}: expected a JSON object with client_id and client_secret") from None
        client = cls(target, **kwargs)
        try:
            client.login(client_id, client_secret)
        except BaseException:
            client.close()
            raise
        return client

    def close(self) -> None:
        """Close the channel; open subscriptions end."""
        self._raw_channel.close()

    def __enter__(self) -> "HushClient":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- authentication -------------------------------------------------------------------------------------------

    def login(self, client_id: str, client_secret: str) -> identity_pb2.LoginResponse:
        """Log in as a machine identity and keep the access token for every later call.

        Raises ``grpc.RpcError`` with ``UNAUTHENTICATED`` for wrong credentials (the kept token is unchanged).
        """
        response: identity_pb2.LoginResponse = self._identity.Login(
            identity_pb2.LoginRequest(client_id=client_id, client_secret=client_secret), timeout=self.timeout
        )
        self._token = response.access_token
        self.identity_id = response.identity_id
        self.org_id = response.org_id
        self.token_expires_at = response.expires_at
        return response

    @property
    def token(self) -> Optional[str]:
        """The bearer token sent with every call, or ``None``. Settable (``None`` sends no token)."""
        return self._token

    @token.setter
    def token(self, value: Optional[str]) -> None:
        self._token = value

    # -- stubs ----------------------------------------------------------------------------------------------------

    @property
    def channel(self) -> grpc.Channel:
        """The channel with the bearer-token interceptor, for stubs of other services."""
        return self._channel

    @property
    def identity(self) -> identity_pb2_grpc.IdentityServiceStub:
        """``hush.v1.IdentityService``: login, identities, client secrets, roles."""
        return self._identity

    @property
    def projects(self) -> projects_pb2_grpc.ProjectsServiceStub:
        """``hush.v1.ProjectsService``: projects and environments."""
        return self._projects

    @property
    def secrets(self) -> secrets_pb2_grpc.SecretsServiceStub:
        """``hush.v1.SecretsService``: secrets, versions, folders, imports."""
        return self._secrets

    @property
    def events(self) -> events_pb2_grpc.EventsServiceStub:
        """``hush.v1.EventsService``: the raw Subscribe stream (see :meth:`subscribe`)."""
        return self._events

    @property
    def audit_logs(self) -> audit_logs_pb2_grpc.AuditLogsServiceStub:
        """``hush.v1.AuditLogsService``."""
        return self._audit_logs

    @property
    def audit_streams(self) -> audit_streams_pb2_grpc.AuditStreamsServiceStub:
        """``hush.v1.AuditStreamsService``."""
        return self._audit_streams

    # -- health ---------------------------------------------------------------------------------------------------

    def health(self, service: str = "", timeout: Optional[float] = 5.0) -> str:
        """``grpc.health.v1.Health/Check``: ``"SERVING"``, ``"NOT_SERVING"``, ... Raises ``grpc.RpcError``.

        Uses raw bytes so that no health-checking package is needed: the request is ``{service}`` and the
        response ``{status}`` (field 1, an enum varint).
        """
        encoded = service.encode()
        request = (b"\x0a" + _varint(len(encoded)) + encoded) if service else b""
        check = self._raw_channel.unary_unary(
            _HEALTH_CHECK, request_serializer=lambda b: b, response_deserializer=lambda b: b
        )
        response: bytes = check(request, timeout=timeout)
        status = 0
        if response[:1] == b"\x08":
            status, _ = _read_varint(response, 1)
        return _HEALTH_STATUS.get(status, str(status))

    def wait_until_serving(self, timeout: float = 30.0, interval: float = 0.1) -> None:
        """Poll :meth:`health` until the server answers ``SERVING``; ``TimeoutError`` after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        last: object = None
        while True:
            try:
                last = self.health(timeout=max(0.1, min(2.0, deadline - time.monotonic())))
                if last == "SERVING":
                    return
            except grpc.RpcError as error:
                last = error
            if time.monotonic() >= deadline:
                raise TimeoutError(f"hush at {self.target} not serving after {timeout}s (last answer: {last})")
            time.sleep(interval)

    # -- conveniences ---------------------------------------------------------------------------------------------

    def create_project(self, name: str) -> projects_pb2.Project:
        """Create a project (with the environments dev, staging and prod) and return it."""
        response: projects_pb2.CreateProjectResponse = self._projects.CreateProject(
            projects_pb2.CreateProjectRequest(name=name), timeout=self.timeout
        )
        return response.project

    def set_secret(
        self,
        project_id: str,
        environment: str,
        key: str,
        value: str,
        *,
        secret_path: str = "/",
        comment: Optional[str] = None,
        expected_version: Optional[int] = None,
    ) -> secrets_pb2.Secret:
        """Create the secret, or update it if it exists (a new version). Returns it without its value.

        ``comment=None`` leaves an existing secret's comment as it is. With ``expected_version`` (check-and-set)
        the existing secret is updated only if it is at that version now; otherwise ``grpc.RpcError`` with
        ``ABORTED`` names the current version and nothing is written (it never creates).
        """
        if expected_version is None:
            created = self._create_unless_exists(project_id, environment, key, value, secret_path, comment)
            if created is not None:
                return created
        request = secrets_pb2.UpdateSecretRequest(
            project_id=project_id, environment=environment, secret_path=secret_path, key=key, value=value
        )
        if comment is not None:
            request.comment = comment
        if expected_version is not None:
            request.expected_version = expected_version
        updated: secrets_pb2.UpdateSecretResponse = self._secrets.UpdateSecret(request, timeout=self.timeout)
        return updated.secret

    def _create_unless_exists(
        self,
        project_id: str,
        environment: str,
        key: str,
        value: str,
        secret_path: str,
        comment: Optional[str],
    ) -> Optional[secrets_pb2.Secret]:
        """Create the secret; None if it exists already."""
        try:
            created: secrets_pb2.CreateSecretResponse = self._secrets.CreateSecret(
                secrets_pb2.CreateSecretRequest(
                    project_id=project_id,
                    environment=environment,
                    secret_path=secret_path,
                    key=key,
                    value=value,
                    comment=comment or "",
                ),
                timeout=self.timeout,
            )
            return created.secret
        except grpc.RpcError as error:
            if error.code() != grpc.StatusCode.ALREADY_EXISTS:
                raise
        return None

    def get_secret(
        self,
        project_id: str,
        environment: str,
        key: str,
        *,
        secret_path: str = "/",
        include_imports: bool = False,
        version: int = 0,
    ) -> secrets_pb2.Secret:
        """Read one secret with its value (``.value``); ``version=0`` is the current one.

        Raises ``grpc.RpcError`` with ``NOT_FOUND`` if it does not exist.
        """
        response: secrets_pb2.GetSecretResponse = self._secrets.GetSecret(
            secrets_pb2.GetSecretRequest(
                project_id=project_id,
                environment=environment,
                secret_path=secret_path,
                key=key,
                include_imports=include_imports,
                version=version,
            ),
            timeout=self.timeout,
        )
        return response.secret

    def list_secrets(
        self,
        project_id: str,
        environment: str,
        *,
        secret_path: str = "/",
        recursive: bool = False,
        include_imports: bool = False,
    ) -> list[secrets_pb2.Secret]:
        """The secrets of a folder with their values, ordered by path then key (imported ones last).

        The server answers in pages (bounded in count and size); this follows them to the end."""
        secrets: list[secrets_pb2.Secret] = []
        page_token = ""
        while True:
            response: secrets_pb2.ListSecretsResponse = self._secrets.ListSecrets(
                secrets_pb2.ListSecretsRequest(
                    project_id=project_id,
                    environment=environment,
                    secret_path=secret_path,
                    recursive=recursive,
                    include_imports=include_imports,
                    page_token=page_token,
                ),
                timeout=self.timeout,
            )
            secrets.extend(response.secrets)
            page_token = response.next_page_token
            if not page_token:
                return secrets

    def delete_secret(
        self,
        project_id: str,
        environment: str,
        key: str,
        *,
        secret_path: str = "/",
        expected_version: Optional[int] = None,
    ) -> None:
        """Delete a secret and its versions; with ``expected_version``, only if it is at that version now
        (otherwise ``grpc.RpcError`` with ``ABORTED``, and nothing is deleted)."""
        request = secrets_pb2.DeleteSecretRequest(
            project_id=project_id, environment=environment, secret_path=secret_path, key=key
        )
        if expected_version is not None:
            request.expected_version = expected_version
        self._secrets.DeleteSecret(request, timeout=self.timeout)

    def subscribe(
        self,
        project_id: str,
        event_types: Union[str, Sequence[str]] = ("secret:*",),
        environment: str = "",
        secret_path: str = "",
        resume_after: Optional[str] = None,
        *,
        wait_ready: bool = True,
        timeout: Optional[float] = None,
    ) -> Subscription:
        """Open ``EventsService.Subscribe`` and return a :class:`~hush_client.events.Subscription`: an iterator
        of ``hush.v1.Event`` that skips heartbeats and raises :class:`~hush_client.events.LaggedError` (with the
        cursor to resume from) when the server says the subscriber lagged.

        Args:
            project_id: the project to watch.
            event_types: ``"secret:create"``, ``"secret:update"``, ``"secret:delete"``,
                ``"secret:import-mutation"``, ``"secret:*"`` or ``"*"``; one registration per type.
            environment: environment slug every registration is limited to; ``""`` = any.
            secret_path: folder glob (``"/"``, ``"/api/*"``, ``"/api/**"``); ``""`` = anywhere.
            resume_after: replay the events after this cursor (``Event.cursor``, ``LaggedError.resume_after``)
                before going live; ``None`` = new events only.
            wait_ready: block until the server accepted the subscription, so that every change committed after
                this method returns is delivered; a refused subscription (``PERMISSION_DENIED``, ``NOT_FOUND``,
                ``UNAVAILABLE``, ...) then raises ``grpc.RpcError`` here. With ``False`` errors surface on iteration.
            timeout: deadline for the whole stream in seconds; ``None`` = none.

        Events carry names and paths, never values: read a value with :meth:`get_secret`.
        """
        types = [event_types] if isinstance(event_types, str) else list(event_types)
        if not types:
            raise ValueError("event_types: at least one event type")
        conditions = events_pb2.EventConditions(environment_slug=environment, secret_path=secret_path)
        request = events_pb2.SubscribeRequest(
            project_id=project_id,
            registrations=[events_pb2.Registration(event_type=t, conditions=conditions) for t in types],
        )
        if resume_after is not None:
            request.resume_after = resume_after
        subscription = Subscription(self._events.Subscribe(request, timeout=timeout), resume_after=resume_after)
        if wait_ready:
            subscription.wait_ready()
        return subscription


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _read_varint(data: bytes, pos: int) -> Tuple[int, int]:
    result = shift = 0
    while pos < len(data):
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            break
        shift += 7
    return result, pos
