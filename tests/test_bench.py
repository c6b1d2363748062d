"""The benchmark harness works end to end: `bench/run.py --quick` renders, seeds, serves and
measures the app, the reference and the app with every fast path off, and writes a complete
report. No speed is asserted here."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import TEMPLATE_DIR

WORKLOADS = ("W0", "W1", "W2", "W3", "W4")


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk not installed (apt-get install wrk)")
def test_quick_benchmark_writes_a_complete_report(tmp_path: Path) -> None:
    report_path = tmp_path / "report.json"
    command = [sys.executable, str(TEMPLATE_DIR / "bench" / "run.py"), "--quick"]
    result = subprocess.run(
        [*command, "--template", str(TEMPLATE_DIR), "--json", str(report_path)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-8000:]

    report = json.loads(report_path.read_text())
    assert set(report["workloads"]) == set(WORKLOADS)
    for key in WORKLOADS:
        workload = report["workloads"][key]
        for system in ("app", "ref", "fallback"):
            measured = workload[system]
            assert measured["rps"] > 0, f"{key} {system}: no requests served"
            assert measured["non_2xx"] == 0, f"{key} {system}: error responses"
            assert measured["p99_ms"] >= measured["p50_ms"] > 0
        assert workload["rps_ratio"] > 0
        assert workload["fallback_rps_ratio"] > 0
    assert report["app_worker"]["peak_rss_mb"] >= report["app_worker"]["rss_mb"] > 0
    assert report["cold_start_s"] > 0
    assert "app / reference" in result.stdout
    assert "fallback / reference" in result.stdout


def quick_w1(
    tmp_path: Path, option: str, timeout: int, workloads: str = "W1"
) -> tuple[subprocess.CompletedProcess, dict]:
    """`bench/run.py --quick` on W1 (or `workloads`) with an option's extra systems; its output
    and report."""
    report_path = tmp_path / "report.json"
    command = [sys.executable, str(TEMPLATE_DIR / "bench" / "run.py"), "--quick", option]
    command += ["--workloads", workloads, "--no-fallback", "--json", str(report_path)]
    result = subprocess.run(
        [*command, "--template", str(TEMPLATE_DIR)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-8000:]
    return result, json.loads(report_path.read_text())


@pytest.mark.slow
@pytest.mark.skipif(
    shutil.which("wrk") is None or shutil.which("redis-server") is None,
    reason="wrk or redis-server not installed (apt-get install wrk redis-server)",
)
def test_quick_benchmark_measures_w1_with_the_cache_on_and_checks_its_answers(
    tmp_path: Path,
) -> None:
    result, report = quick_w1(tmp_path, "--cache", timeout=600)
    w1 = report["workloads"]["W1"]
    for system in ("app", "ref", "cached"):
        assert w1[system]["rps"] > 0 and w1[system]["non_2xx"] == 0, system
    assert w1["cache_rps_ratio"] > 0
    assert report["cache_stale_items"] == []
    assert "cached / app" in result.stdout
    # Filled before it is measured: every read of the measured run is a hit.
    assert "W1 cached:" in result.stdout and "hits 100.0%" in result.stdout


@pytest.mark.slow
@pytest.mark.skipif(
    shutil.which("wrk") is None or shutil.which("npm") is None,
    reason="wrk or Node.js/npm not installed (apt-get install wrk nodejs npm)",
)
def test_quick_benchmark_measures_w1_with_a_flag_evaluated_against_the_option_off(
    tmp_path: Path,
) -> None:
    result, report = quick_w1(tmp_path, "--flags", timeout=900)
    w1 = report["workloads"]["W1"]
    for system in ("app", "ref", "off", "flagged"):
        assert w1[system]["rps"] > 0 and w1[system]["non_2xx"] == 0, system
    assert w1["flags_rps_ratio"] > 0
    assert "flagged / off" in result.stdout
    # The flag was on in Unleash and every measured request evaluated it.
    assert "W1 flagged:" in result.stdout and "flag on 100.0%" in result.stdout


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk not installed (apt-get install wrk)")
def test_quick_benchmark_measures_w1_and_w3_with_a_token_per_request(tmp_path: Path) -> None:
    result, report = quick_w1(tmp_path, "--auth", timeout=600, workloads="W1,W3")
    for key in ("W1", "W3"):
        workload = report["workloads"][key]
        for system in ("app", "ref", "off", "authed"):
            # non_2xx counts 401s too: every authed request carried a token the app accepted.
            assert workload[system]["rps"] > 0 and workload[system]["non_2xx"] == 0, system
        assert workload["auth_rps_ratio"] > 0
    assert "authed / off" in result.stdout
