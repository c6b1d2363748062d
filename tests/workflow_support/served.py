"""The default project served on loopback with a real Prometheus scraping it, for running the
rendered e2e suite (tests/e2e) from the outside: reuses tests/monitoring_support."""

from __future__ import annotations

import shutil
import sys
import tomllib
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import yaml
from monitoring_support import project as service
from monitoring_support.prometheus import Prometheus, free_port


@dataclass(frozen=True)
class Served:
    project: Path
    python: Path  # a venv with the project's runtime and dev dependencies
    base_url: str
    prometheus_url: str


def install_dev_group(project: Path, python: Path) -> None:
    """The rendered tests need the dev group (pytest, httpx) on top of the runtime."""
    groups = tomllib.loads((project / "pyproject.toml").read_text())["dependency-groups"]
    uv = shutil.which("uv") or shutil.which("uv", path=str(Path(sys.executable).parent))
    if uv:
        service.run(uv, "pip", "install", "--quiet", "--python", python, *groups["dev"])
    else:
        service.run(python, "-m", "pip", "install", "--quiet", *groups["dev"])


def prometheus_config(project: Path, app: str, port: int, path: Path) -> Path:
    """The project's compose config, scraping the loopback app every 2 s."""
    config = yaml.safe_load((project / "monitoring" / "prometheus" / "prometheus.yml").read_text())
    config["global"].update(scrape_interval="2s", evaluation_interval="2s")
    config["rule_files"] = [
        str(project / "monitoring" / "prometheus" / rule) for rule in config["rule_files"]
    ]
    for job in config["scrape_configs"]:
        target = app if job["job_name"] == "app" else f"127.0.0.1:{port}"
        job["static_configs"] = [{"targets": [target]}]
    path.write_text(yaml.safe_dump(config))
    return path


@contextmanager
def serve_with_prometheus(project: Path, work: Path) -> Iterator[Served]:
    python = service.install(project, work / "venv")
    install_dev_group(project, python)
    with ExitStack() as cleanup:
        database_url = cleanup.enter_context(service.fresh_database(python))
        service.migrate(python, project, database_url)
        app = cleanup.enter_context(service.serve(python, project, database_url, work / "app.log"))
        port = free_port()
        config = prometheus_config(project, app, port, work / "prometheus.yml")
        prometheus = Prometheus(config, work, port)
        cleanup.callback(prometheus.stop)
        yield Served(project, python, f"http://{app}", prometheus.url)
