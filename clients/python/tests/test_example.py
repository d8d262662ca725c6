"""examples/subscribe.py as a subprocess: it prints one JSON line per event."""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
from typing import IO, Optional

from conftest import PYTHON_DIR, HushServer
from hush_client import HushClient

TIMEOUT = 30.0


def lines(stream: IO[str]) -> "queue.Queue[Optional[str]]":
    q: "queue.Queue[Optional[str]]" = queue.Queue()

    def pump() -> None:
        for line in stream:
            q.put(line)
        q.put(None)

    threading.Thread(target=pump, daemon=True).start()
    return q


def wait_for(q: "queue.Queue[Optional[str]]", prefix: str, what: str) -> str:
    seen: list[str] = []
    while True:
        try:
            line = q.get(timeout=TIMEOUT)
        except queue.Empty:
            raise AssertionError(f"no {what} within {TIMEOUT}s; saw {seen}") from None
        if line is None:
            raise AssertionError(f"example exited before {what}; saw {seen}")
        seen.append(line)
        if line.startswith(prefix):
            return line


def test_example_prints_a_json_line_per_event(hush_server: HushServer, client: HushClient, project_id: str) -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            str(PYTHON_DIR / "examples" / "subscribe.py"),
            "--server",
            hush_server.target,
            "--bootstrap",
            str(hush_server.bootstrap_path),
            "--project",
            project_id,
            "--env",
            "dev",
            "--path",
            "/**",
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None and process.stderr is not None
        stdout, stderr = lines(process.stdout), lines(process.stderr)
        wait_for(stderr, "subscribed to project", "'subscribed' status line")
        client.set_secret(project_id, "dev", "FROM_EXAMPLE", "hidden-value", secret_path="/ex")
        line = wait_for(stdout, "{", "JSON line")
        record = json.loads(line)
        assert record["type"] == "secret:create"
        assert record["project_id"] == project_id
        assert record["secrets"] == [{"environment": "dev", "secret_path": "/ex", "secret_key": "FROM_EXAMPLE", "version": 1}]
        assert record["cursor"]
        assert "hidden-value" not in line
    finally:
        process.terminate()
        try:
            code = process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            code = process.wait()
    assert code == 0, f"example exited with {code} after SIGTERM"
