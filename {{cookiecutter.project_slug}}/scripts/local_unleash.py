"""A local Unleash server without Docker, for the feature-flag tests: the `unleash-server` npm
package (6.x runs on Node.js 20) on a free port, on a PostgreSQL database of its own, with an
admin and a client API token created at start.

The package is installed once into UNLEASH_SERVER_DIR (default .devdata/unleash-server) with
`npm install`; Node.js 20+ and npm must be on PATH.
"""

import json
import os
import shutil
import socket
import subprocess
import time
import uuid
from pathlib import Path

import httpx
from sqlalchemy.engine import URL

VERSION = "6.10.1"
START_TIMEOUT_S = 90
SERVER_DIR = Path(os.environ.get("UNLEASH_SERVER_DIR", ".devdata/unleash-server")).resolve()
START_SCRIPT = """
const unleash = require('unleash-server');
const env = process.env;
unleash.start({
  db: {host: env.DB_HOST, port: Number(env.DB_PORT), user: env.DB_USER,
       password: env.DB_PASSWORD || '', database: env.DB_NAME, ssl: false},
  server: {port: Number(env.PORT), host: '127.0.0.1'},
  authentication: {initApiTokens: [
    {type: 'admin', secret: env.ADMIN_TOKEN, environment: '*', project: '*', tokenName: 'admin'},
    {type: 'client', secret: env.CLIENT_TOKEN, environment: 'development', project: 'default',
     tokenName: 'client'},
  ]},
  logLevel: 'warn',
}).then(() => console.log('unleash started'));
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def installed() -> Path:
    """The directory holding node_modules/unleash-server, installed on first use."""
    package = SERVER_DIR / "node_modules" / "unleash-server" / "package.json"
    if package.exists() and json.loads(package.read_text())["version"] == VERSION:
        return SERVER_DIR
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        raise RuntimeError("Node.js 20+ and npm are needed to run Unleash locally")
    SERVER_DIR.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [npm, "install", "--no-audit", "--no-fund", "--silent", f"unleash-server@{VERSION}"],
        cwd=SERVER_DIR,
        check=True,
    )
    return SERVER_DIR


class LocalUnleash:
    """One Unleash server; the tests start, stop and start it again (same port, same data)."""

    def __init__(self, database: URL, directory: Path) -> None:
        self.database = database
        self.directory = directory
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.api_url = f"{self.url}/api"
        suffix = uuid.uuid4().hex
        self.admin_token = f"*:*.admin{suffix}"
        self.client_token = f"default:development.client{suffix}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        server_dir = installed()
        script = self.directory / "start-unleash.js"
        script.write_text(START_SCRIPT)
        db = self.database
        # The embedded server listens on a unix socket: its directory is the `host` query.
        host = str(db.query.get("host") or db.host or "127.0.0.1")
        env = {
            **os.environ,
            "NODE_PATH": str(server_dir / "node_modules"),
            "DB_HOST": host,
            "DB_PORT": str(db.port or 5432),
            "DB_USER": db.username or "postgres",
            "DB_PASSWORD": db.password or "",
            "DB_NAME": db.database or "postgres",
            "PORT": str(self.port),
            "ADMIN_TOKEN": self.admin_token,
            "CLIENT_TOKEN": self.client_token,
        }
        log = (self.directory / "unleash.log").open("ab")
        self.process = subprocess.Popen(
            ["node", str(script)], cwd=server_dir, env=env, stdout=log, stderr=log
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self.healthy():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                text = (self.directory / "unleash.log").read_text(errors="replace")
                raise RuntimeError(f"Unleash did not start:\n{text[-3000:]}")
            time.sleep(0.2)

    def healthy(self) -> bool:
        try:
            return httpx.get(f"{self.url}/health", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None

    def admin(self, method: str, path: str, **json_body: object) -> httpx.Response:
        response = httpx.request(
            method,
            f"{self.api_url}/admin{path}",
            headers={"Authorization": self.admin_token},
            json=json_body or None,
            timeout=10,
        )
        response.raise_for_status()
        return response

    def create_flag(self, name: str) -> None:
        """A release flag in the default project, with the default strategy, switched off."""
        self.admin("POST", "/projects/default/features", name=name)
        environment = f"/projects/default/features/{name}/environments/development"
        self.admin("POST", f"{environment}/strategies", name="default")

    def toggle(self, name: str, *, on: bool) -> None:
        environment = f"/projects/default/features/{name}/environments/development"
        self.admin("POST", f"{environment}/{'on' if on else 'off'}")
