"""deploy.yml's "Follow the deployment" step, run as the runner runs it (bash -eo pipefail) with
stand-ins for `aws`, `curl` and `sleep` that play an ECS deployment: its lifecycle stages, its
outcome, and what the test route answers. Proves the step passes only on ECS's SUCCESSFUL,
fails on a rollback, rolls back itself when the smoke test fails, and leaves rolling alone."""

import json
import os
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

STEP = "Follow the deployment"
DEPLOYMENT_ARN = "arn:aws:ecs:us-east-1:123456789012:service-deployment/c/orders-service/AbC"

# Plays the deployment: each `describe-service-deployments ... status` moves one step on.
FAKE_AWS = r"""
import json, sys
from pathlib import Path
here = Path(__file__).parent
args = sys.argv[1:]
with (here / "calls.log").open("a") as log:
    log.write(" ".join(args) + "\n")
timeline = json.loads((here / "timeline.json").read_text())
position = here / "position"
step = int(position.read_text()) if position.exists() else 0
if args[:2] == ["ecs", "list-service-deployments"]:
    print("__ARN__")
elif args[:2] == ["ecs", "describe-service-deployments"]:
    query = args[args.index("--query") + 1]
    status, stage = timeline[min(step, len(timeline) - 1)]
    if query.endswith(".status"):
        position.write_text(str(step + 1))
        print(status)
    elif query.endswith(".lifecycleStage"):
        print(stage)
    else:
        print("alarm orders-service-alarms-prod-5xx-rate in ALARM")
elif args[:2] == ["ecs", "stop-service-deployment"]:
    print("{}")
else:
    sys.exit(f"unexpected aws call: {args}")
""".replace("__ARN__", DEPLOYMENT_ARN)

FAKE_CURL = r"""
import sys
from pathlib import Path
here = Path(__file__).parent
with (here / "curl.log").open("a") as log:
    log.write(" ".join(sys.argv[1:]) + "\n")
sys.exit(int((here / "curl_exit").read_text()))
"""


def step_script(project: Path, name: str = STEP) -> str:
    """The shell script of deploy.yml's step `name`."""
    workflow = yaml.safe_load((project / ".github" / "workflows" / "deploy.yml").read_text())
    (step,) = [s for s in workflow["jobs"]["deploy"]["steps"] if s.get("name") == name]
    return step["run"]


def run_step(script: str, bin_dir: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """A step's script as the runner runs it (bash -eo pipefail), the stand-ins in `bin_dir`
    first on PATH."""
    return subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
        env={**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def executable(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


@pytest.fixture
def follow(bake: Callable, tmp_path: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    script = step_script(bake({"deployment_strategy": "blue_green"}))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, source in (("aws", FAKE_AWS), ("curl", FAKE_CURL)):
        (bin_dir / f"{name}.py").write_text(source)
        executable(bin_dir / name, f'#!/bin/sh\nexec {sys.executable} "$0.py" "$@"\n')
    executable(bin_dir / "sleep", "#!/bin/sh\nexit 0\n")

    def run(
        timeline: list[tuple[str, str]], *, strategy: str = "blue_green", curl_exit: int = 0
    ) -> subprocess.CompletedProcess[str]:
        (bin_dir / "timeline.json").write_text(json.dumps(timeline))
        (bin_dir / "curl_exit").write_text(str(curl_exit))
        outputs = {
            "deployment_strategy": strategy,
            "cluster_name": "c",
            "service_name": "orders-service",
            "url": "http://alb.example.com/",
        }
        runner_temp = tmp_path / "runner"
        runner_temp.mkdir(exist_ok=True)
        executable(
            bin_dir / "pulumi",
            f"#!/bin/sh\ncat <<'EOF'\n{json.dumps(outputs)}\nEOF\n",
        )
        return run_step(script, bin_dir, RUNNER_TEMP=str(runner_temp), STACK="prod")

    def lines(name: str) -> list[str]:
        log = bin_dir / name
        return log.read_text().splitlines() if log.exists() else []

    run.calls = lambda: lines("calls.log")  # type: ignore[attr-defined]
    run.curls = lambda: lines("curl.log")  # type: ignore[attr-defined]
    return run


A_GOOD_DEPLOYMENT = [
    ("IN_PROGRESS", "SCALE_UP"),
    ("IN_PROGRESS", "TEST_TRAFFIC_SHIFT"),
    ("IN_PROGRESS", "BAKE_TIME"),
    ("IN_PROGRESS", "BAKE_TIME"),
    ("SUCCESSFUL", "CLEAN_UP"),
]


def test_a_deployment_that_succeeds_is_smoke_tested_through_the_test_route_once(follow) -> None:
    result = follow(A_GOOD_DEPLOYMENT)
    assert result.returncode == 0, result.stdout + result.stderr
    (curl,) = follow.curls()
    assert "X-Deploy-Test: 1" in curl and curl.endswith("http://alb.example.com/health/ready")
    assert not [c for c in follow.calls() if "stop-service-deployment" in c]


def test_an_alarm_rollback_fails_the_deploy_with_ecs_reason(follow) -> None:
    result = follow([*A_GOOD_DEPLOYMENT[:3], ("ROLLBACK_SUCCESSFUL", "CLEAN_UP")])
    assert result.returncode == 1
    assert "ROLLBACK_SUCCESSFUL" in result.stdout and "5xx-rate in ALARM" in result.stdout


def test_a_failed_smoke_test_rolls_the_deployment_back(follow) -> None:
    result = follow(A_GOOD_DEPLOYMENT, curl_exit=22)
    assert result.returncode == 1
    assert "failed its smoke test" in result.stdout
    stops = [c for c in follow.calls() if "stop-service-deployment" in c]
    assert stops == [
        f"ecs stop-service-deployment --service-deployment-arn {DEPLOYMENT_ARN} "
        "--stop-type ROLLBACK"
    ]


def test_no_smoke_test_before_the_test_route_reaches_the_new_revision(follow) -> None:
    result = follow([("IN_PROGRESS", "SCALE_UP"), ("ROLLBACK_SUCCESSFUL", "CLEAN_UP")])
    assert result.returncode == 1
    assert follow.curls() == []


def test_rolling_deployments_are_left_to_the_next_step(follow) -> None:
    result = follow(A_GOOD_DEPLOYMENT, strategy="rolling")
    assert result.returncode == 0, result.stdout + result.stderr
    assert follow.calls() == [] and follow.curls() == []
    assert "rolling" in result.stdout
