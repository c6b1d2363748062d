"""The Unleash server of `bench/run.py --flags`, run with the feature_flags=unleash project's
Python (in its directory, so its `scripts.local_unleash` and `scripts.local_postgres` helpers are
reused: the same npm package and start options as its own tests).

    python unleash.py serve SERVER_URL FLAG   Unleash on a database of its own on SERVER_URL,
                                              FLAG created and switched on; prints
                                              `URL CLIENT_TOKEN`, waits for stdin to close, then
                                              stops Unleash and drops its database
"""

import signal
import sys
import tempfile
import uuid
from pathlib import Path

from scripts.local_postgres import create_database, drop_database
from scripts.local_unleash import LocalUnleash


def serve(server_url: str, flag: str) -> None:
    name = f"bench_unleash_{uuid.uuid4().hex[:12]}"
    database = create_database(server_url, name)
    unleash = None
    try:
        with tempfile.TemporaryDirectory(prefix="bench-unleash-") as directory:
            unleash = LocalUnleash(database, Path(directory))
            unleash.start()
            unleash.create_flag(flag)
            unleash.toggle(flag, on=True)
            print(unleash.url, unleash.client_token, flush=True)
            sys.stdin.read()  # bench/run.py closes our stdin (or kills us) when it is done
    finally:
        if unleash is not None:
            unleash.stop()
        drop_database(server_url, name)


def main(command: str, *args: str) -> None:
    # bench/run.py ends with SIGTERM to the process group: unwind, so the database is dropped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if command == "serve":
        serve(*args)
    else:
        sys.exit(f"unknown command {command!r}")


if __name__ == "__main__":
    main(*sys.argv[1:])
