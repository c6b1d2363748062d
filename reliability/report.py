"""Print the README's "Reliability" table: the scenarios of tests/test_reliability.py and
tests/test_fuzz.py, run once on this machine, with the figures those tests assert on.

    .venv/bin/python reliability/report.py          # about 2 minutes

Renders the default project, installs its venv, starts a throwaway PostgreSQL (never the one on
5432) and serves the app with its production command on loopback.
"""

import sys
import tempfile
import time
from pathlib import Path

TEMPLATE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(TEMPLATE_DIR / "tests"))

from cookiecutter.main import cookiecutter  # noqa: E402
from monitoring_support import project as service  # noqa: E402
from reliability_support import scenarios  # noqa: E402
from reliability_support.app import prepare_database, serve  # noqa: E402
from reliability_support.fuzz import run_schemathesis  # noqa: E402
from reliability_support.postgres import ThrowawayPostgres  # noqa: E402


def rows(work: Path) -> list[tuple[str, str, str]]:
    project = Path(cookiecutter(str(TEMPLATE_DIR), no_input=True, output_dir=str(work)))
    python = service.install(project, work / "venv")
    server = ThrowawayPostgres()
    table: list[tuple[str, str, str]] = []
    try:

        def app(name: str, **settings: str):  # type: ignore[no-untyped-def]
            url = prepare_database(python, project, server, name)
            return url, serve(python, project, url, work / f"{name}.log", settings)

        url, served = app("fuzz")
        with served as running:
            started = time.monotonic()
            fuzz = run_schemathesis(running.url, work / "schemathesis")
            table.append(
                (
                    "schemathesis, positive + negative, every phase and check",
                    f"{fuzz.requests} requests in {time.monotonic() - started:.0f} s",
                    f"{fuzz.server_errors} 5xx; exit code {fuzz.exit_code}"
                    + ("" if fuzz.exit_code == 0 else " (schema/status findings)"),
                )
            )

        url, served = app("outage")
        with served as running:
            o = scenarios.database_outage(server, running, "outage")
        table.append(
            (
                "PostgreSQL crash (stop -m immediate) and restart under writes + reads",
                f"{o.requests} requests, outage {o.outage_seconds:.1f} s, "
                f"{o.acknowledged_writes} writes acknowledged",
                f"readiness 503 after {o.ready_503_after_s:.2f} s, 200 after "
                f"{o.ready_200_after_s:.2f} s; outage answers 503 JSON in <= "
                f"{o.outage_max_latency_s * 1000:.0f} ms ({o.outage_requests}); "
                f"{o.server_errors_not_503} other 5xx; {o.lost_writes} lost writes; process alive",
            )
        )

        infra = scenarios.infra_timeouts(project)
        url, served = app("shutdown")
        with served as running:
            s = scenarios.graceful_shutdown(running, url, project)
        table.append(
            (
                "SIGTERM with requests in flight",
                f"{s.in_flight} requests held 3 s on a table lock",
                f"{s.completed_200}/{s.in_flight} answered 200; new connections refused after "
                f"{s.refused_after_s:.2f} s; exit after {s.exit_after_s:.1f} s (graceful "
                f"{s.graceful_timeout_s:.0f} s < ECS stopTimeout {infra.stop_timeout_s} s; "
                f"ALB deregistration {infra.deregistration_delay_s} s)",
            )
        )

        url, served = app("pool", DB_POOL_SIZE="2", DB_MAX_OVERFLOW="0", DB_POOL_TIMEOUT="1")
        with served as running:
            p = scenarios.pool_exhaustion(running, url, pool_size=2, pool_timeout=1.0)
        table.append(
            (
                "pool exhaustion (pool 2, timeout 1 s, connections blocked)",
                f"{p.concurrent} concurrent reads",
                f"{p.answered_503} x 503 JSON after <= {p.max_503_latency_s:.2f} s, "
                f"{p.answered_200} x 200, {p.other} other; /health {p.liveness_during}",
            )
        )

        url, served = app("soak")
        with served as running:
            k = scenarios.soak(running)
        table.append(
            (
                "soak at half capacity (POST + GET, wrk)",
                f"{k.soak.requests} requests in {k.soak.seconds:.0f} s at {k.soak.rps:.0f} rps "
                f"(capacity {k.capacity_rps:.0f} rps), after {k.warmup.seconds:.0f} s warm-up",
                f"{k.soak.non_2xx + k.warmup.non_2xx} non-2xx; p99 {k.soak.p99_ms:.1f} ms; RSS "
                f"{k.rss_after_warmup_mib:.1f} -> {k.rss_after_soak_mib:.1f} MiB "
                f"({k.rss_growth:+.1%})",
            )
        )
    finally:
        server.destroy()
    return table


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="reliability-report-") as work:
        table = rows(Path(work))
    print("| What was tried | How much | What held |")
    print("| --- | --- | --- |")
    for row in table:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
