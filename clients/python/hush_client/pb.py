"""The generated ``hush.v1`` message and service modules, under short names.

``from hush_client.pb import secrets_pb2`` is the same module as
``hush_client.gen.hush.v1.secrets_pb2``. The modules exist only after ``generate.sh`` ran.
"""

from __future__ import annotations

try:
    from .gen.hush.v1 import (
        audit_logs_pb2,
        audit_logs_pb2_grpc,
        audit_streams_pb2,
        audit_streams_pb2_grpc,
        common_pb2,
        common_pb2_grpc,
        events_pb2,
        events_pb2_grpc,
        identity_pb2,
        identity_pb2_grpc,
        projects_pb2,
        projects_pb2_grpc,
        secrets_pb2,
        secrets_pb2_grpc,
    )
except ModuleNotFoundError as error:  # pragma: no cover - depends on the checkout
    if error.name is not None and error.name.startswith("hush_client.gen"):
        raise ModuleNotFoundError(
            "hush_client's generated modules are missing: run clients/python/generate.sh "
            "(it needs grpcio-tools: pip install -e '.[test]')",
            name=error.name,
        ) from error
    raise

__all__ = [
    "audit_logs_pb2",
    "audit_logs_pb2_grpc",
    "audit_streams_pb2",
    "audit_streams_pb2_grpc",
    "common_pb2",
    "common_pb2_grpc",
    "events_pb2",
    "events_pb2_grpc",
    "identity_pb2",
    "identity_pb2_grpc",
    "projects_pb2",
    "projects_pb2_grpc",
    "secrets_pb2",
    "secrets_pb2_grpc",
]
