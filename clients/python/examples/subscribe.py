#!/usr/bin/env python3
"""Print the events of a hush project as JSON lines, one per event, as they are committed.

    python examples/subscribe.py --server 127.0.0.1:8080 --bootstrap hush-data/bootstrap.json \
        --project <project-id> [--env dev] [--path '/**'] [--type secret:create ...] [--resume-after CURSOR]

Events carry names and paths, never secret values. The stream is resumed from the last cursor when the server
says the subscriber lagged, when the connection drops or when the access token expired, so no event is lost or
printed twice. Status messages go to stderr ("subscribed ..." once the server accepted the subscription).
Ctrl-C or SIGTERM ends it.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

import grpc
from google.protobuf.json_format import MessageToDict

try:
    import hush_client  # noqa: F401
except ModuleNotFoundError:  # running from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import hush_client

from hush_client import HushClient, LaggedError

# Worth a new subscription from the last cursor: the server restarted, the connection dropped, the token expired.
RETRYABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNAUTHENTICATED}


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", default="127.0.0.1:8080", help="host:port of hush (default %(default)s)")
    parser.add_argument("--bootstrap", required=True, help="JSON file with client_id and client_secret")
    parser.add_argument("--project", required=True, help="project id")
    parser.add_argument("--env", default="", help="environment slug; default: every environment")
    parser.add_argument("--path", default="", help="folder glob such as '/', '/api/*', '/**'; default: anywhere")
    parser.add_argument(
        "--type", dest="types", action="append", help="event type (repeatable); default: secret:*"
    )
    parser.add_argument("--resume-after", default=None, help="replay the events after this cursor first")
    args = parser.parse_args(argv)

    # SIGTERM ends the process like Ctrl-C: a clean exit instead of a traceback.
    signal.signal(signal.SIGTERM, _interrupt)

    with open(args.bootstrap, encoding="utf-8") as f:
        credentials = json.load(f)
    client = HushClient(args.server)
    cursor: Optional[str] = args.resume_after
    backoff = 0.5
    try:
        client.login(credentials["client_id"], credentials["client_secret"])
        while True:
            try:
                with client.subscribe(
                    args.project,
                    event_types=args.types or ["secret:*"],
                    environment=args.env,
                    secret_path=args.path,
                    resume_after=cursor,
                ) as events:
                    log(f"subscribed to project {args.project} (resume_after={cursor})")
                    for event in events:
                        cursor = event.cursor
                        backoff = 0.5
                        record = MessageToDict(event, preserving_proto_field_name=True)
                        print(json.dumps(record, sort_keys=True), flush=True)
                log("stream ended by the server; resubscribing")
            except LaggedError as lagged:
                log(f"lagged ({lagged.reason}); resuming after {lagged.resume_after}")
                cursor = lagged.resume_after
            except grpc.RpcError as error:
                code = error.code()
                if code not in RETRYABLE:
                    log(f"error: {code.name}: {error.details()}")
                    return 1
                log(f"{code.name}: {error.details()}; retrying in {backoff:.1f}s")
                time.sleep(backoff)
                backoff = min(backoff * 2, 30.0)
                if code == grpc.StatusCode.UNAUTHENTICATED:
                    client.login(credentials["client_id"], credentials["client_secret"])
    except KeyboardInterrupt:
        return 0
    except grpc.RpcError as error:
        log(f"error: {error.code().name}: {error.details()}")
        return 1
    finally:
        client.close()


if __name__ == "__main__":
    sys.exit(main())
