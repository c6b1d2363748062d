"""Entry points and the daily loop, run for real: `uvicorn app.main:app` and `fastapi run` serve,
importing app.main needs nothing, and `make migration` / `make migrate` / `make dev` work on a
fresh checkout with no Docker and no DATABASE_URL, share one local server, and stop everything
they started however they are stopped.
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import psutil
import pytest
from sqlalchemy.engine import URL

from scripts import dev as dev_script
from tests.conftest import PROJECT_ROOT

BIN_DIR = Path(sys.executable).parent
# What a fresh clone does not have (git-ignored), or what would make it depend on this one.
NOT_IN_A_CHECKOUT = (".venv", ".devdata", ".env", ".git", "*_cache", "__pycache__", ".coverage*")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def wait_until_healthy(process: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        assert process.poll() is None, f"exited with {process.returncode}:\n{log.read_text()}"
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    pytest.fail(f"nothing healthy on port {port} after 90 s:\n{log.read_text()}")


def test_importing_app_main_needs_no_database_nor_settings(scratch_dir: Path) -> None:
    # No environment at all and no .env (the working directory is empty): only the defaults.
    code = "from fastapi import FastAPI; import app.main as m; assert isinstance(m.app, FastAPI)"
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=scratch_dir,
        env={"PYTHONPATH": str(PROJECT_ROOT)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    "command",
    [
        pytest.param([sys.executable, "-m", "uvicorn", "app.main:app"], id="uvicorn app.main:app"),
        pytest.param([str(BIN_DIR / "fastapi"), "run"], id="fastapi run"),
    ],
)
def test_entry_point_serves(command: list[str], database_url: URL, scratch_dir: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url.render_as_string(hide_password=False),
        "ENVIRONMENT": "test",
    }
    log = scratch_dir / "server.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [*command, "--host", "127.0.0.1", "--port", str(port)],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until_healthy(process, port, log)
        # Ready means the lifespan connected to the database given in the environment.
        assert httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=5).status_code == 200
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture(scope="module")
def checkout() -> Iterator[Path]:
    """A copy of the project as a fresh clone has it: no .env, no .devdata, no venv."""
    # Not under pytest's tmp dir: the local server runs as another user when tests run as root.
    with tempfile.TemporaryDirectory(prefix="checkout-") as parent:
        root = Path(parent) / "project"
        shutil.copytree(PROJECT_ROOT, root, ignore=shutil.ignore_patterns(*NOT_IN_A_CHECKOUT))
        yield root
        # A failed test may leave the local server running: stop it before its data goes.
        if (pid := postmaster_pid(root)) and psutil.pid_exists(pid):
            psutil.Process(pid).kill()


def postmaster_pid(checkout: Path) -> int | None:
    pid_file = checkout / ".devdata" / "postgres" / "postmaster.pid"
    return int(pid_file.read_text().split()[0]) if pid_file.exists() else None


def make(checkout: Path, *args: str, **env: str) -> tuple[list[str], dict[str, str]]:
    """`make ARGS` in the checkout, with no database configured.

    RUN= runs the recipes' commands straight from this venv instead of through `uv run`, which
    would create a second venv in the copy.
    """
    environment = {**os.environ, "PATH": f"{BIN_DIR}{os.pathsep}{os.environ['PATH']}", **env}
    for name in ("DATABASE_URL", "POSTGRES_HOST", "VIRTUAL_ENV", "MAKEFLAGS"):
        environment.pop(name, None)
    return ["make", "--no-print-directory", "-C", str(checkout), *args, "RUN="], environment


def test_make_migration_on_a_fresh_checkout(checkout: Path) -> None:
    versions = checkout / "migrations" / "versions"
    before = set(versions.iterdir())
    command, env = make(checkout, "migration", "m=probe the daily loop")
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "DATABASE_URL=postgresql://" in result.stdout, "it says which database it used"
    (revision,) = set(versions.iterdir()) - before
    try:
        assert revision.name.endswith("_probe_the_daily_loop.py")
        # It autogenerated against a database at head: no model changes, so an empty upgrade.
        assert "pass" in revision.read_text().split("def upgrade")[1].split("def downgrade")[0]
    finally:
        revision.unlink()
    pid = postmaster_pid(checkout)
    assert pid is None or not psutil.pid_exists(pid), "the local server outlived the command"


def send_to_group(dev: subprocess.Popen[bytes], signum: int) -> None:
    os.killpg(dev.pid, signum)  # as a terminal's Ctrl-C, or a supervisor stopping a job


def send_to_make(dev: subprocess.Popen[bytes], signum: int) -> None:
    dev.send_signal(signum)


def send_to_python(dev: subprocess.Popen[bytes], signum: int) -> None:
    (script,) = [
        child
        for child in psutil.Process(dev.pid).children(recursive=True)
        if "scripts.dev" in child.cmdline()
    ]
    script.send_signal(signum)


@pytest.mark.parametrize(
    ("send", "signum"),
    [
        pytest.param(send_to_group, signal.SIGINT, id="ctrl-c"),
        pytest.param(send_to_group, signal.SIGTERM, id="sigterm-to-the-group"),
        pytest.param(send_to_make, signal.SIGTERM, id="sigterm-to-make"),
        pytest.param(send_to_python, signal.SIGTERM, id="sigterm-to-scripts.dev"),
    ],
)
def test_stopping_make_dev_stops_everything_it_started(
    checkout: Path,
    send: Callable[[subprocess.Popen[bytes], int], None],
    signum: int,
    scratch_dir: Path,
) -> None:
    port = free_port()
    command, env = make(checkout, "dev", PORT=str(port))
    log = scratch_dir / "dev.log"
    with log.open("wb") as output:
        dev = subprocess.Popen(
            command, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        wait_until_healthy(dev, port, log)
        assert "DATABASE_URL=postgresql://" in log.read_text(), "make dev prints its database"
        # `make migrate` meanwhile joins the local server, and leaves it running for make dev.
        migrate, migrate_env = make(checkout, "migrate")
        joined = subprocess.run(migrate, env=migrate_env, capture_output=True, text=True)
        assert joined.returncode == 0, joined.stdout + joined.stderr
        assert httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=5).status_code == 200
        started = psutil.Process(dev.pid).children(recursive=True)
        assert len(started) >= 3, started  # scripts.dev, uvicorn's reloader and its worker
        postmaster = psutil.Process(postmaster_pid(checkout))
        send(dev, signum)
        dev.wait(timeout=60)
        _, alive = psutil.wait_procs([*started, postmaster], timeout=10)
        assert not alive, f"still running: {alive}\n{log.read_text()}"
        assert not port_open(port)
    finally:
        if dev.poll() is None:
            os.killpg(dev.pid, signal.SIGKILL)


def test_a_process_group_that_ignores_sigterm_is_killed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dev_script, "STOP_TIMEOUT_S", 0.5)
    stubborn = "trap '' TERM; sleep 60 & echo started; wait"  # the sleep inherits the trap
    process = subprocess.Popen(
        ["sh", "-c", stubborn], stdout=subprocess.PIPE, start_new_session=True
    )
    assert process.stdout is not None
    assert process.stdout.readline() == b"started\n"
    dev_script.stop_group(process)
    assert not dev_script.signal_group(process.pid, 0), "a process of the group survived"


def test_make_migration_without_a_message_says_how(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        dev_script.main(["migration", ""])
    assert exit_info.value.code == 2
    assert 'make migration m="add orders"' in capsys.readouterr().err
