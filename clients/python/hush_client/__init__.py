"""Python client for the hush secrets service (gRPC, package ``hush.v1``).

- :class:`HushClient`: login, bearer token on every call, service stubs, conveniences, :meth:`HushClient.subscribe`.
- :class:`Subscription` / :class:`LaggedError`: iterating an event stream.
- :mod:`hush_client.pb`: the generated message and stub modules (``pb.secrets_pb2``, ``pb.events_pb2_grpc``, ...).

The generated modules live in ``hush_client/gen`` and are produced by ``generate.sh``.
"""

from __future__ import annotations

from . import pb
from ._version import USER_AGENT, __version__
from .client import HushClient
from .events import LaggedError, Subscription

__all__ = ["HushClient", "LaggedError", "Subscription", "USER_AGENT", "__version__", "pb"]
