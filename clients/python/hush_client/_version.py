"""Version of the hush-client package."""

__version__ = "0.1.0"

#: Prepended to grpc's own user agent on every channel, e.g. ``grpc-python-hush/0.1.0 grpc-python/1.66.0 …``.
USER_AGENT = f"grpc-python-hush/{__version__}"
