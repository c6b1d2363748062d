"""`make dev`: migrate and serve with auto-reload on DATABASE_URL, else on a local PostgreSQL.

The local server keeps its data in .devdata/ between runs and stops when this command exits.
"""

import os
import signal
import subprocess
import sys
from pathlib import Path

from scripts.local_postgres import create_database, local_server

DATA_DIR = Path(".devdata/postgres").resolve()
DATABASE_NAME = "{{ cookiecutter.package_name }}"


def serve(env: dict[str, str]) -> int:
    subprocess.run([sys.executable, "-m", "alembic", "upgrade", "head"], env=env, check=True)
    port = env.get("PORT", "8000")
    command = [sys.executable, "-m", "uvicorn", "app.main:create_app", "--factory", "--reload"]
    try:
        return subprocess.run([*command, "--port", port], env=env).returncode
    except KeyboardInterrupt:
        return 0


def main() -> int:
    # Stop the local server on SIGTERM as on Ctrl-C: SystemExit unwinds through `with`.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    env = dict(os.environ)
    if env.get("DATABASE_URL"):
        return serve(env)
    with local_server(DATA_DIR, keep_data=True) as server:
        url = create_database(server, DATABASE_NAME)
        print(f"Using the local PostgreSQL in {DATA_DIR}", flush=True)
        return serve({**env, "DATABASE_URL": url.render_as_string(hide_password=False)})


if __name__ == "__main__":
    sys.exit(main())
