"""Run the rendered project's test suite on other releases of its dependencies.

Renders the default project, installs its lock (`uv sync`), then for each scenario installs
other releases over it and runs the project's own tests, printing for each whether the fast
paths (app/routing.py, app/metrics.py) or their fallbacks served, and the suite's result:

    .venv/bin/python scripts/release_spread.py --fastapi 0.115.14 0.150.0 0.165.0
    .venv/bin/python scripts/release_spread.py --release "starlette-exporter==0.23.0 uvicorn==0.32"
    .venv/bin/python scripts/release_spread.py --newest     # the newest release of everything
    .venv/bin/python scripts/release_spread.py --newest --option feature_flags=unleash
    .venv/bin/python scripts/release_spread.py --newest --option internal_packages=true

`--newest` installs the newest release of every dependency, beyond the project's own upper
bounds, so a release that breaks the project shows up before a pull request raises a bound.
A scenario's tests run on TEST_DATABASE_URL when set, else on a throwaway embedded PostgreSQL.
Exit status: 0 when every scenario's suite passed.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

from cookiecutter.main import cookiecutter

TEMPLATE = Path(__file__).resolve().parent.parent
SHOWN = ("fastapi", "starlette", "pydantic", "sqlalchemy", "starlette-exporter", "uvicorn")

# Run inside the rendered project: which releases are installed, and which paths serve.
REPORT = """
import json
from importlib.metadata import version
from importlib.util import find_spec
from app import routing
from app.config import Settings
from app.main import create_app
app = create_app(Settings(_env_file=None, database_url="postgresql://spread@127.0.0.1/spread"))
# starlette-exporter's own middleware is there only when the metrics fast path is off.
exporter = any("Prometheus" in m.cls.__name__ for m in app.user_middleware)
print(json.dumps({
    "versions": {name: version(name) for name in %r},
    "routing": routing.fast_path_problem() or "fast",
    "metrics": "fallback" if exporter else "fast",
    **({"flags": __import__("app.flags").flags.fast_path_problem() or "fast"}
       if find_spec("app.flags") else {}),
}))
"""


def run(command: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command,
        cwd=cwd,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=False,
    )


def uv() -> str:
    beside_python = Path(sys.executable).parent
    found = shutil.which("uv", path=f"{beside_python}{os.pathsep}{os.environ['PATH']}")
    if found is None:
        sys.exit("uv not found: install the template's tools (make .venv/.installed)")
    return found


def render(into: Path, options: dict[str, str]) -> Path:
    return Path(
        cookiecutter(str(TEMPLATE), no_input=True, output_dir=str(into), extra_context=options)
    )


def direct_dependencies(project: Path) -> list[str]:
    """The names of the project's dependencies and dev dependencies, without their bounds; not
    its workspace packages (internal_packages), which no index has a newer release of (and
    PyPI may have another project's of the same name)."""
    pyproject = tomllib.loads((project / "pyproject.toml").read_text())
    specs = [*pyproject["project"]["dependencies"], *pyproject["dependency-groups"]["dev"]]
    sources = pyproject.get("tool", {}).get("uv", {}).get("sources", {})
    workspace = {name for name, source in sources.items() if source.get("workspace")}
    names = [spec.split(">")[0].split("<")[0].split("=")[0].strip() for spec in specs]
    return [name for name in names if name not in workspace]


def scenario(project: Path, name: str, install: list[str]) -> dict[str, object]:
    """Reset to the lock, install `install` over it, report what serves and run the tests."""
    python = str(project / ".venv" / "bin" / "python")
    synced = run([uv(), "sync", "--frozen", "--quiet"], project)
    if synced.returncode != 0:
        return {"scenario": name, "result": "uv sync failed: " + synced.stderr.strip()}
    installed = run([uv(), "pip", "install", "--quiet", "--python", python, *install], project)
    if installed.returncode != 0:
        return {"scenario": name, "result": "install failed: " + installed.stderr.strip()}
    report = run([python, "-c", REPORT % (SHOWN,)], project, LOG_LEVEL="ERROR")
    if report.returncode != 0:
        return {"scenario": name, "result": "app failed to start: " + report.stderr.strip()}
    outcome: dict[str, object] = {"scenario": name, **json.loads(report.stdout.splitlines()[-1])}
    tests = run([python, "-m", "pytest", "-q", "-p", "no:cacheprovider"], project)
    summary = tests.stdout.strip().splitlines()[-1] if tests.stdout.strip() else tests.stderr
    outcome["result"] = ("passed: " if tests.returncode == 0 else "FAILED: ") + summary
    if tests.returncode != 0:
        outcome["output"] = tests.stdout[-6000:]
    return outcome


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fastapi", nargs="*", default=[], help="FastAPI releases to try")
    parser.add_argument(
        "--release", nargs="*", default=[], help="requirement sets to try, each one scenario"
    )
    parser.add_argument("--newest", action="store_true", help="newest release of everything")
    parser.add_argument("--keep", type=Path, help="render into this directory and keep it")
    parser.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a template option for the rendered project, e.g. feature_flags=unleash",
    )
    args = parser.parse_args()
    if not (args.fastapi or args.release or args.newest):
        parser.error("name FastAPI releases (--fastapi X Y), --release sets and/or --newest")

    with tempfile.TemporaryDirectory(prefix="release-spread-") as scratch:
        options = dict(option.split("=", 1) for option in args.option)
        project = render(args.keep or Path(scratch), options)
        locked = run([uv(), "sync", "--quiet"], project)  # locks on first run, as `make install`
        if locked.returncode != 0:
            sys.exit(f"uv sync failed in {project}:\n{locked.stderr}")
        scenarios = [(f"fastapi=={v}", [f"fastapi=={v}"]) for v in args.fastapi]
        scenarios += [(requirements, requirements.split()) for requirements in args.release]
        if args.newest:
            newest = ["--upgrade", *direct_dependencies(project)]
            scenarios.append(("newest releases", newest))
        outcomes = []
        for name, install in scenarios:
            outcome = scenario(project, name, install)
            outcomes.append(outcome)
            print(json.dumps({k: v for k, v in outcome.items() if k != "output"}), flush=True)
            if "output" in outcome:
                print(outcome["output"], file=sys.stderr)
    return 0 if all(str(o["result"]).startswith("passed") for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
