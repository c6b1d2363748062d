"""Static checks of a rendered project's GitHub workflows: each returns a list of problems
(empty = fine), so the tests can prove every check bites on a deliberately broken copy."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

Workflow = dict[str, Any]

FULL_SHA_PIN = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")
VERSION_COMMENT = re.compile(r"#\s*v?\d+(\.\d+)*\b")
USES_LINE = re.compile(r"^\s*(?:-\s+)?uses:\s*(?P<ref>[^\s#]+)(?P<rest>.*)$")
MAKE_CALL = re.compile(r"(?:^|[;&|(]\s*|\s)make\s+(?P<args>[^;&|\n#]*)", re.MULTILINE)
MAKE_RULE = re.compile(r"^(?P<targets>[A-Za-z0-9_.-][A-Za-z0-9_. -]*)\s*:(?!=)", re.MULTILINE)
LOCAL_SCRIPT = re.compile(r"(?:^|\s)(\./[\w./-]+)")
COMPOSE_FILE_FLAG = re.compile(r"\s(?:-f|--file)[\s=]+([\w./-]+)")
HASH_FILES = re.compile(r"hashFiles\(([^)]*)\)")
AWS_CREDENTIALS = "aws-actions/configure-aws-credentials@"
# Files the team creates after generation (`make install`), so a rendered tree lacks them.
CREATED_AFTER_GENERATION = {"uv.lock"}


def load(path: Path) -> Workflow:
    """A workflow as a dict; YAML 1.1 reads the `on:` key as True, so put it back."""
    data = yaml.safe_load(path.read_text())
    if True in data:
        data["on"] = data.pop(True)
    return data


def workflow_files(project: Path) -> list[Path]:
    return sorted((project / ".github" / "workflows").glob("*.y*ml"))


def action_files(project: Path) -> list[Path]:
    return sorted((project / ".github" / "actions").glob("*/action.y*ml"))


def jobs(workflow: Workflow) -> dict[str, dict[str, Any]]:
    return workflow.get("jobs") or {}


def steps_of(document: Workflow) -> Iterator[tuple[str, dict[str, Any]]]:
    """(job id, step) for every step of a workflow, or ("", step) of a composite action."""
    for job_id, job in jobs(document).items():
        for step in job.get("steps") or []:
            yield job_id, step
    for step in (document.get("runs") or {}).get("steps") or []:
        yield "", step


def run_scripts(document: Workflow) -> Iterator[str]:
    for _, step in steps_of(document):
        if isinstance(step.get("run"), str):
            yield step["run"]


# --- hardening -------------------------------------------------------------------------------


def pin_problems(text: str) -> list[str]:
    """Every remote `uses:` is pinned to a full commit SHA and says its version in a comment."""
    problems = []
    for number, line in enumerate(text.splitlines(), start=1):
        match = USES_LINE.match(line)
        if not match:
            continue
        ref = match["ref"].strip("'\"")
        if ref.startswith("./"):
            continue
        if ref.startswith("docker://"):
            if "@sha256:" not in ref:
                problems.append(f"line {number}: {ref} is not pinned to a digest")
            continue
        if not FULL_SHA_PIN.match(ref):
            problems.append(f"line {number}: {ref} is not pinned to a 40-hex commit SHA")
        elif not VERSION_COMMENT.search(match["rest"]):
            problems.append(f"line {number}: {ref} has no `# vX.Y.Z` version comment")
    return problems


def permission_problems(workflow: Workflow) -> list[str]:
    """Top-level permissions exist, grant `contents: read` and never write."""
    permissions = workflow.get("permissions")
    if permissions is None:
        return ["no top-level permissions block"]
    if permissions == {}:
        return []
    if not isinstance(permissions, dict):
        return [f"top-level permissions is {permissions!r}, not a per-scope mapping"]
    problems = [f"top-level {scope}: write" for scope, v in permissions.items() if v == "write"]
    if permissions.get("contents") != "read":
        problems.append("top-level permissions lack `contents: read`")
    return problems


def timeout_problems(workflow: Workflow) -> list[str]:
    """Every job with steps has a timeout (a job calling a reusable workflow cannot)."""
    return [
        f"job {job_id} has no timeout-minutes"
        for job_id, job in jobs(workflow).items()
        if "uses" not in job and "timeout-minutes" not in job
    ]


def configures_aws(
    document: Workflow, job_id: str | None = None, project: Path | None = None
) -> bool:
    """Whether the job's steps configure AWS credentials, also through a local composite action
    of `project` (`uses: ./.github/actions/...`)."""
    for owner, step in steps_of(document):
        uses = str(step.get("uses", ""))
        if job_id is not None and owner != job_id:
            continue
        if uses.startswith(AWS_CREDENTIALS):
            return True
        action = project / uses / "action.yml" if project and uses.startswith("./") else None
        if action and action.is_file() and configures_aws(load(action)):
            return True
    return False


def id_token_problems(workflow: Workflow, project: Path) -> list[str]:
    """`id-token: write` exactly where AWS credentials are configured (or a called workflow's
    jobs configure them)."""
    problems = []
    for job_id, job in jobs(workflow).items():
        grants = (job.get("permissions") or {}) if isinstance(job.get("permissions"), dict) else {}
        wants = grants.get("id-token") == "write"
        if "uses" in job:
            called = project / str(job["uses"])
            needs = called.is_file() and configures_aws(load(called))
        else:
            needs = configures_aws(workflow, job_id, project)
        if wants and not needs:
            problems.append(f"job {job_id} has id-token: write but never configures AWS")
        if needs and not wants:
            problems.append(f"job {job_id} configures AWS without id-token: write")
    return problems


def checkout_problems(document: Workflow) -> list[str]:
    return [
        f"job {job_id}: checkout without persist-credentials: false"
        for job_id, step in steps_of(document)
        if str(step.get("uses", "")).startswith("actions/checkout@")
        and (step.get("with") or {}).get("persist-credentials") is not False
    ]


def concurrency_problems(workflow: Workflow) -> list[str]:
    def has_group(block: object) -> bool:
        return isinstance(block, str) or (isinstance(block, dict) and "group" in block)

    if has_group(workflow.get("concurrency")):
        return []
    return [
        f"job {job_id} has no concurrency group (and the workflow has none)"
        for job_id, job in jobs(workflow).items()
        if not has_group(job.get("concurrency"))
    ] or ["no concurrency group"]


def injection_problems(document: Workflow) -> list[str]:
    """No `${{ }}` expansion inside run scripts: values reach scripts through env only, so no
    input, branch name or PR title can become shell code."""
    return [
        f"job {job_id or '(action)'}: ${{{{ }}}} inside run: {step['run'].strip()[:60]!r}"
        for job_id, step in steps_of(document)
        if "${{" in str(step.get("run", ""))
    ]


# --- references into the rendered tree ---------------------------------------------------------


def make_targets(makefile: Path) -> set[str]:
    targets = set()
    for match in MAKE_RULE.finditer(makefile.read_text()):
        targets.update(match["targets"].split())
    return targets


def make_target_problems(document: Workflow, targets: set[str]) -> list[str]:
    problems = []
    for script in run_scripts(document):
        for call in MAKE_CALL.finditer(script):
            for word in call["args"].split():
                if word.startswith("-") or "=" in word:
                    continue
                if word not in targets:
                    problems.append(f"`make {word}`: no such target in the Makefile")
    return problems


def _exists(project: Path, relative: str) -> bool:
    relative = relative.strip().strip("'\"").removeprefix("./")
    return relative in CREATED_AFTER_GENERATION or (project / relative).exists()


def referenced_paths(document: Workflow) -> Iterator[tuple[str, str]]:
    """(where, path) for every path a workflow or action names in the repository."""
    for job_id, job in jobs(document).items():
        directory = ((job.get("defaults") or {}).get("run") or {}).get("working-directory")
        if directory:
            yield f"job {job_id} defaults", directory
        if str(job.get("uses", "")).startswith("./"):
            yield f"job {job_id} uses", job["uses"]
    for job_id, step in steps_of(document):
        where = f"job {job_id or '(action)'} step {step.get('name') or step.get('uses') or ''}"
        if step.get("working-directory"):
            yield where, step["working-directory"]
        uses = str(step.get("uses", ""))
        if uses.startswith("./"):
            yield where, uses
        inputs = step.get("with") or {}
        for key in ("context", "file", "work-dir", "working-directory", "dockerfile"):
            if isinstance(inputs.get(key), str) and "${{" not in inputs[key]:
                yield f"{where} with.{key}", inputs[key]
        run = str(step.get("run", ""))
        for pattern in (LOCAL_SCRIPT, COMPOSE_FILE_FLAG):
            for match in pattern.finditer(run):
                yield f"{where} run", match.group(1)
        for value in [run, *map(str, inputs.values())]:
            for call in HASH_FILES.finditer(value):
                for argument in call.group(1).split(","):
                    literal = argument.strip().strip("'\"")
                    if literal and not any(c in literal for c in "*?["):
                        yield f"{where} hashFiles", literal


def path_problems(document: Workflow, project: Path) -> list[str]:
    problems = []
    for where, relative in referenced_paths(document):
        if not _exists(project, relative):
            problems.append(f"{where}: {relative} does not exist")
    return problems


def dependabot_problems(config: dict[str, Any], project: Path) -> list[str]:
    problems = []
    for update in config.get("updates") or []:
        directories = update.get("directories") or [update.get("directory", "/")]
        for directory in directories:
            if not _exists(project, directory.lstrip("/") or "."):
                problems.append(f"{update['package-ecosystem']}: {directory} does not exist")
    return problems


def all_problems(project: Path) -> list[str]:
    """Everything above, for every workflow and local action of a rendered project."""
    targets = make_targets(project / "Makefile")
    problems = []
    for path in workflow_files(project):
        workflow, text = load(path), path.read_text()
        found = [
            *pin_problems(text),
            *permission_problems(workflow),
            *timeout_problems(workflow),
            *id_token_problems(workflow, project),
            *checkout_problems(workflow),
            *concurrency_problems(workflow),
            *injection_problems(workflow),
            *make_target_problems(workflow, targets),
            *path_problems(workflow, project),
        ]
        problems += [f"{path.name}: {problem}" for problem in found]
    for path in action_files(project):
        action, text = load(path), path.read_text()
        found = [
            *pin_problems(text),
            *checkout_problems(action),
            *injection_problems(action),
            *make_target_problems(action, targets),
            *path_problems(action, project),
        ]
        problems += [f"{path.parent.name}/{path.name}: {problem}" for problem in found]
    dependabot = project / ".github" / "dependabot.yml"
    problems += dependabot_problems(yaml.safe_load(dependabot.read_text()), project)
    return problems
