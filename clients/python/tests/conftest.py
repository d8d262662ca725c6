"""Starts one real `hush serve` for the test session (SQLite in a temp dir, a free loopback port)."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

import grpc
import pytest

from hush_client import HushClient

PYTHON_DIR = Path(__file__).resolve().parents[1]
REPO_ROOT = PYTHON_DIR.parents[1]
#: Heartbeats every second, so the tests see (and the helper skips) them.
HEARTBEAT_INTERVAL = "1s"


def hush_binary() -> Path:
    """HUSH_BIN, else $CARGO_TARGET_DIR/debug/hush, else <repo>/target/debug/hush."""
    if os.environ.get("HUSH_BIN"):
        return Path(os.environ["HUSH_BIN"])
    if os.environ.get("CARGO_TARGET_DIR"):
        return Path(os.environ["CARGO_TARGET_DIR"]) / "debug" / "hush"
    return REPO_ROOT / "target" / "debug" / "hush"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class HushServer:
    """A running `hush serve`."""

    target: str
    data_dir: Path
    bootstrap_path: Path
    client_id: str
    client_secret: str
    org_id: str
    identity_id: str
    log_path: Path


def _start(
    binary: Path,
    data_dir: Path,
    log_path: Path,
    extra_args: Sequence[str] = (),
    probe: Callable[[str], HushClient] = HushClient,
    host: str = "127.0.0.1",
) -> tuple[subprocess.Popen[bytes], str]:
    """Start the server and wait until its health check (through a client made by `probe`) says SERVING;
    retried on a port race."""
    last_error = ""
    for _attempt in range(3):
        port = free_port()
        listen, target = f"127.0.0.1:{port}", f"{host}:{port}"
        env = dict(os.environ, HUSH_HEARTBEAT_INTERVAL=HEARTBEAT_INTERVAL, HUSH_LOG=os.environ.get("HUSH_LOG", "info"))
        for name in ("HUSH_DATABASE_URL", "HUSH_ROOT_KEY", "HUSH_LISTEN", "HUSH_DATA_DIR"):
            env.pop(name, None)
        log = open(log_path, "ab")
        process = subprocess.Popen(
            [str(binary), "serve", "--data-dir", str(data_dir), "--listen", listen, *extra_args],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        log.close()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and process.poll() is None:
            try:
                # A fresh client each time: with --tls-self-signed the CA file exists only once the server wrote it.
                with probe(target) as client:
                    if client.health(timeout=1.0) == "SERVING":
                        return process, target
            except Exception as error:  # noqa: BLE001 - not up yet
                last_error = str(error)
            time.sleep(0.1)
        if process.poll() is None:
            process.kill()
            process.wait()
            raise RuntimeError(f"hush did not become healthy in 60s at {target}: {last_error}")
        # Exited: most likely the port was taken in between; try another one.
        last_error = f"exit code {process.returncode}"
    raise RuntimeError(f"hush serve did not start ({last_error}); log: {log_path.read_text(errors='replace')[-4000:]}")


@contextlib.contextmanager
def _serve(
    data_dir: Path,
    extra_args: Sequence[str] = (),
    probe: Callable[[str], HushClient] = HushClient,
    host: str = "127.0.0.1",
) -> Iterator[HushServer]:
    """A running `hush serve` on `data_dir`, stopped on exit."""
    binary = hush_binary()
    if not binary.is_file():
        pytest.fail(
            f"hush binary not found at {binary}: build it with `cargo build` or set HUSH_BIN", pytrace=False
        )
    log_path = data_dir / "server.log"
    process, target = _start(binary, data_dir, log_path, extra_args, probe, host)
    try:
        bootstrap_path = data_dir / "bootstrap.json"
        bootstrap = json.loads(bootstrap_path.read_text())
        yield HushServer(
            target=target,
            data_dir=data_dir,
            bootstrap_path=bootstrap_path,
            client_id=bootstrap["client_id"],
            client_secret=bootstrap["client_secret"],
            org_id=bootstrap["org_id"],
            identity_id=bootstrap["identity_id"],
            log_path=log_path,
        )
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
def hush_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HushServer]:
    """One `hush serve` for the whole session, stopped at the end."""
    with _serve(tmp_path_factory.mktemp("hush-data")) as server:
        yield server


#: The certificate `hush serve --tls-self-signed` writes into its data dir.
SELF_SIGNED_CERT = "tls-self-signed.crt"


def tls_credentials(data_dir: Path) -> grpc.ChannelCredentials:
    """Credentials trusting the self-signed certificate of the server on `data_dir`."""
    return grpc.ssl_channel_credentials(root_certificates=(data_dir / SELF_SIGNED_CERT).read_bytes())


@pytest.fixture(scope="session")
def hush_tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HushServer]:
    """A `hush serve --tls-self-signed` for the session; its target names `localhost`, which the certificate
    covers."""
    data_dir = tmp_path_factory.mktemp("hush-tls-data")
    probe = lambda target: HushClient(target, credentials=tls_credentials(data_dir))  # noqa: E731
    with _serve(data_dir, ["--tls-self-signed"], probe, host="localhost") as server:
        yield server


@pytest.fixture
def client(hush_server: HushServer) -> Iterator[HushClient]:
    """A client logged in as the bootstrap admin."""
    with HushClient.from_bootstrap(hush_server.bootstrap_path, target=hush_server.target) as c:
        yield c


@pytest.fixture
def project_id(client: HushClient) -> str:
    """A fresh project (dev, staging, prod) for one test."""
    return client.create_project(f"py-{uuid.uuid4().hex[:12]}").id
