"""Fixtures of the reliability, fuzz and security tests (imported by those modules): the
default project, its venv, a throwaway PostgreSQL server and a served app."""

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import pytest
from monitoring_support import project as service

from .app import ServedApp, prepare_database, serve
from .postgres import ThrowawayPostgres


@pytest.fixture(scope="module")
def project(bake: Callable[[dict[str, object]], Path]) -> Path:
    return bake({})


@pytest.fixture(scope="module")
def python(project: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv with the rendered project's runtime dependencies."""
    return service.install(project, tmp_path_factory.mktemp("venv") / "venv")


@pytest.fixture(scope="module")
def postgres() -> Iterator[ThrowawayPostgres]:
    server = ThrowawayPostgres()
    yield server
    server.destroy()


@pytest.fixture
def database(
    python: Path, project: Path, postgres: ThrowawayPostgres, request: pytest.FixtureRequest
) -> str:
    """A fresh migrated database for one test; returns its URL."""
    if not postgres.is_running():  # a failed outage test may leave it stopped
        postgres.start()
    name = "t_" + request.node.name.lower().replace("[", "_").replace("]", "")[:40]
    return prepare_database(python, project, postgres, name)


@pytest.fixture
def make_app(
    python: Path, project: Path, tmp_path: Path
) -> Callable[..., AbstractContextManager[ServedApp]]:
    """Serve the app (production command) on a database URL, with extra settings."""

    def make(database_url: str, **settings: object) -> AbstractContextManager[ServedApp]:
        env = {key.upper(): str(value) for key, value in settings.items()}
        return serve(python, project, database_url, tmp_path / "app.log", env)

    return make
