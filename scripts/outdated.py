"""List every version bound of the rendered project whose newest release falls outside it.

    .venv/bin/python scripts/outdated.py            # the table; exit 0
    .venv/bin/python scripts/outdated.py --strict   # exit 1 when a bound is behind or unknown

Renders the project with every option that adds a dependency (auth, cache, feature flags,
monitoring, internal packages) and reads its bounds: Python dependencies in pyproject.toml
(every group, the Pulumi provider `pulumi-aws` included, and the client package's with its
build backend), the Dockerfile's Python base image (the newest
`python_version` choice), docker compose images, and the GitHub actions the workflows pin. It
asks each registry for the newest release (PyPI, Docker Hub, GitHub; stable releases only) and
prints one row per bound: `ok`, `BEHIND` (the newest release is outside the bound), or
`unknown` with the reason (a registry that cannot be reached is reported, never fatal).
The registries' addresses can be replaced (--pypi, --docker-hub, --github-api) for tests.
"""

import argparse
import json
import re
import sys
import tempfile
import tomllib
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import yaml
from cookiecutter.main import cookiecutter
from packaging.requirements import Requirement
from packaging.version import InvalidVersion, Version

TEMPLATE = Path(__file__).resolve().parent.parent
OPTIONS = {
    "auth": "jwt",
    "internal_packages": True,
    "cache": "redis",
    "feature_flags": "unleash",
    "monitoring": "prometheus_grafana",
}
# A tag made of a version and an optional variant: 16-alpine, v3.14.0, 8.11.1, 3.12-slim.
TAG = re.compile(r"^v?(?P<version>\d+(?:\.\d+)*)(?P<variant>-[a-z0-9.-]+)?$")
PINNED_ACTION = re.compile(
    r"uses:\s*(?P<action>[\w.-]+/[\w.-]+)(?:/[\w./-]+)?@\S+\s+#\s*(?P<tag>v\S+)"
)


@dataclass
class Bound:
    kind: str  # python | image | action
    name: str
    bound: str
    newest: str = ""
    status: str = ""


def fetch_json(url: str) -> object:
    request = urllib.request.Request(url, headers={"User-Agent": "cookiecutter-fastapi-aws"})
    with urllib.request.urlopen(request, timeout=15) as response:
        return json.load(response)


def stable(version: str) -> Version | None:
    try:
        parsed = Version(version)
    except InvalidVersion:
        return None
    return None if parsed.is_prerelease or parsed.is_devrelease else parsed


# --- what the rendered project pins ---------------------------------------------------------


def python_bounds(project: Path) -> list[Bound]:
    specs: list[str] = []
    # The service's, and each workspace package's (internal_packages), with its build backend.
    for path in [project / "pyproject.toml", *sorted(project.glob("packages/*/pyproject.toml"))]:
        pyproject = tomllib.loads(path.read_text())
        specs += pyproject["project"]["dependencies"]
        specs += pyproject.get("build-system", {}).get("requires", [])
        for group in pyproject.get("dependency-groups", {}).values():
            specs += [spec for spec in group if isinstance(spec, str)]
    bounds: dict[str, Bound] = {}
    for spec in specs:
        requirement = Requirement(spec)
        name = requirement.name.lower()
        if str(requirement.specifier) and name not in bounds:
            bounds[name] = Bound("python", name, str(requirement.specifier))
    return list(bounds.values())


def image_bounds(project: Path) -> list[Bound]:
    compose = yaml.safe_load((project / "docker-compose.yml").read_text())
    images = {service["image"] for service in compose["services"].values() if "image" in service}
    newest_python = max(json.loads((TEMPLATE / "cookiecutter.json").read_text())["python_version"])
    images.add(f"python:{newest_python}-slim")  # the Dockerfile's base, at the newest choice
    bounds = []
    for image in sorted(images):
        name, _, tag = image.partition(":")
        if TAG.match(tag):  # not the project's own image (`<slug>:local`)
            bounds.append(Bound("image", name, tag))
    return bounds


def action_bounds(project: Path) -> list[Bound]:
    found: dict[str, str] = {}
    for workflow in sorted((project / ".github").rglob("*.yml")):
        for match in PINNED_ACTION.finditer(workflow.read_text()):
            found.setdefault(match["action"], match["tag"])
    return [Bound("action", action, tag) for action, tag in sorted(found.items())]


# --- the newest releases --------------------------------------------------------------------


def newest_python_package(name: str, pypi: str) -> str:
    releases = fetch_json(f"{pypi}/{name}/json")["releases"]  # type: ignore[index]
    versions = [v for v, files in releases.items() if files and stable(v) is not None]
    return str(max(versions, key=Version))


def newest_image_tag(name: str, tag: str, docker_hub: str) -> str:
    """The newest tag with the same variant and as many version parts (16-alpine -> 17-alpine,
    v3.14.0 -> v3.15.1), from the latest hundred tags."""
    repository = name if "/" in name else f"library/{name}"
    listing = fetch_json(f"{docker_hub}/v2/repositories/{repository}/tags?page_size=100")
    current = TAG.match(tag)
    assert current is not None
    shape = (current["version"].count("."), current["variant"], tag.startswith("v"))
    candidates = []
    for entry in listing["results"]:  # type: ignore[index]
        match = TAG.match(entry["name"])
        if match and (match["version"].count("."), match["variant"], entry["name"][0] == "v") == (
            shape
        ):
            candidates.append((Version(match["version"]), entry["name"]))
    return max(candidates)[1] if candidates else tag


def newest_action_tag(action: str, github_api: str) -> str:
    return str(fetch_json(f"{github_api}/repos/{action}/releases/latest")["tag_name"])  # type: ignore[index]


def image_version(tag: str) -> Version:
    match = TAG.match(tag)
    assert match is not None
    return Version(match["version"])


def assess(bound: Bound, registries: argparse.Namespace) -> Bound:
    try:
        if bound.kind == "python":
            bound.newest = newest_python_package(bound.name, registries.pypi)
            inside = Requirement(f"x{bound.bound}").specifier.contains(bound.newest)
        elif bound.kind == "image":
            bound.newest = newest_image_tag(bound.name, bound.bound, registries.docker_hub)
            inside = image_version(bound.newest) <= image_version(bound.bound)
        else:
            bound.newest = newest_action_tag(bound.name, registries.github_api)
            inside = Version(bound.newest.lstrip("v")) <= Version(bound.bound.lstrip("v"))
        bound.status = "ok" if inside else "BEHIND"
    except (OSError, ValueError, KeyError, TypeError, urllib.error.URLError) as error:
        bound.status = f"unknown ({type(error).__name__}: {str(error)[:60]})"
    return bound


def render(into: Path) -> Path:
    return Path(
        cookiecutter(str(TEMPLATE), no_input=True, output_dir=str(into), extra_context=OPTIONS)
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--strict", action="store_true", help="exit 1 on BEHIND or unknown rows")
    parser.add_argument("--pypi", default="https://pypi.org/pypi")
    parser.add_argument("--docker-hub", default="https://hub.docker.com")
    parser.add_argument("--github-api", default="https://api.github.com")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="outdated-") as scratch:
        project = render(Path(scratch))
        bounds = python_bounds(project) + image_bounds(project) + action_bounds(project)
    rows = [assess(bound, args) for bound in bounds]
    width = max(len(row.name) for row in rows)
    print(f"{'kind':<7} {'name':<{width}} {'bound':<16} {'newest':<16} status")
    for row in rows:
        print(f"{row.kind:<7} {row.name:<{width}} {row.bound:<16} {row.newest:<16} {row.status}")
    behind = [row for row in rows if row.status == "BEHIND"]
    unknown = [row for row in rows if row.status.startswith("unknown")]
    print(f"\n{len(rows)} bounds: {len(behind)} behind, {len(unknown)} unknown")
    return 1 if args.strict and (behind or unknown) else 0


if __name__ == "__main__":
    sys.exit(main())
