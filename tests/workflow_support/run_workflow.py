"""Run the `run:` steps of a rendered workflow's job on this machine, in order, the way the
runner would: workflow, job and step env merged, `if: failure()` / `always()` honoured.
`uses:` steps are skipped (the caller provides their tools). Used by the template's CI to run
the rendered e2e workflow against real docker compose:

    python tests/workflow_support/run_workflow.py <project>/.github/workflows/e2e.yml [job]
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml


def plain_env(*blocks: dict | None) -> dict[str, str]:
    env: dict[str, str] = {}
    for block in blocks:
        for key, value in (block or {}).items():
            if "${{" in str(value):
                raise SystemExit(f"{key}: expressions cannot be evaluated here: {value}")
            env[key] = str(value)
    return env


def should_run(condition: object, failed: bool) -> bool:
    text = str(condition or "success()").strip()
    if "always()" in text:
        return True
    if "failure()" in text:
        return failed
    if text == "success()":
        return not failed
    raise SystemExit(f"unsupported condition: {text}")


def main(workflow_path: Path, job_id: str | None = None) -> int:
    workflow = yaml.safe_load(workflow_path.read_text())
    project = workflow_path.parents[2]
    jobs = workflow["jobs"]
    job = jobs[job_id or next(iter(jobs))]
    failed = False
    for step in job["steps"]:
        if "run" not in step or not should_run(step.get("if"), failed):
            continue
        env = {**os.environ, **plain_env(workflow.get("env"), job.get("env"), step.get("env"))}
        name = step.get("name") or step["run"].splitlines()[0]
        print(f"::group::{name}", flush=True)
        result = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
            cwd=project / step.get("working-directory", "."),
            env=env,
            check=False,
        )
        print("::endgroup::", flush=True)
        if result.returncode != 0:
            print(f"::error::step {name!r} failed with exit code {result.returncode}", flush=True)
            failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), *sys.argv[2:3]))
