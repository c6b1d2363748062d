"""Faults and load on the real thing: the rendered service served by uvicorn with its production
command, a PostgreSQL server process of its own that is crashed and restarted, real signals and
real HTTP on loopback. The figures asserted here are the ones reliability/report.py prints.

Needs PostgreSQL's server binaries (apt `postgresql`), `psql` and `wrk`.
"""

from pathlib import Path

import pytest
from reliability_support import scenarios
from reliability_support.fixtures import database, make_app, postgres, project, python  # noqa: F401

pytestmark = pytest.mark.slow

# Issue 7's bounds.
READY_503_WITHIN_S = 2.0
READY_200_WITHIN_S = 5.0
RSS_GROWTH_LIMIT = 0.10


def test_database_outage_is_answered_fast_and_loses_no_write(postgres, database, make_app):  # noqa: F811
    """PostgreSQL crashes under steady writes and reads for ~5 s and comes back."""
    name = database.rsplit("/", 1)[1]
    with make_app(database) as app:
        result = scenarios.database_outage(postgres, app, name)
        settings_bound = 3.0 + 1.0  # DB_CONNECT_TIMEOUT (default 3 s) + 1 s of slack

    assert result.app_alive
    assert result.no_answer == 0, "requests got no HTTP answer (the process hung or died)"
    assert result.server_errors_not_503 == 0, "a 5xx other than 503: see the app log"
    assert result.outage_requests > 100, result
    assert result.outage_not_503_json == 0, "during the outage every answer is 503 JSON"
    assert result.outage_without_retry_after == 0
    assert result.outage_max_latency_s < settings_bound, result
    assert result.ready_503_after_s is not None and result.ready_503_after_s < READY_503_WITHIN_S
    assert result.ready_200_after_s is not None and result.ready_200_after_s < READY_200_WITHIN_S
    assert result.settled_not_2xx == 0, "the service did not recover within 5 s"
    assert result.acknowledged_writes > 100, result
    assert result.lost_writes == 0, f"{result.lost_writes} acknowledged writes are missing"


def test_sigterm_lets_in_flight_requests_finish(database, make_app, project):  # noqa: F811
    """SIGTERM with 8 requests waiting on the database: they finish, new connections are
    refused at once, the process exits well inside ECS's stopTimeout."""
    infra = scenarios.infra_timeouts(project)
    with make_app(database) as app:
        result = scenarios.graceful_shutdown(app, database, project)

    assert result.completed_200 == result.in_flight, result
    assert result.refused_after_s is not None and result.refused_after_s < 1.0, result
    assert result.exit_code in (0, -15), result  # uvicorn re-raises SIGTERM once drained
    assert result.graceful_timeout_s is not None, "the Dockerfile CMD sets no graceful timeout"
    assert result.exit_after_s < result.graceful_timeout_s < infra.stop_timeout_s
    # The ALB stops routing to a deregistering task before ECS kills it.
    assert infra.deregistration_delay_s < infra.stop_timeout_s


def test_pool_exhaustion_queues_then_answers_503(database, make_app):  # noqa: F811
    """Six concurrent reads, two connections, all of them blocked: four wait for the pool
    timeout and get 503 JSON; the two holding connections finish with 200 once unblocked."""
    with make_app(database, db_pool_size=2, db_max_overflow=0, db_pool_timeout=1) as app:
        result = scenarios.pool_exhaustion(app, database, pool_size=2, pool_timeout=1.0)
        assert app.alive()

    assert result.answered_503 == result.concurrent - result.pool_size, result
    assert result.answered_200 == result.pool_size, result
    assert result.other == 0, result
    # Queued first (not refused at once), then answered on the pool timeout (not hung).
    assert result.pool_timeout_s <= result.max_503_latency_s < result.pool_timeout_s + 1.5
    assert result.liveness_during == 200


def test_soak_at_half_capacity(database, make_app):  # noqa: F811
    """30 s at about half the measured capacity after 10 s of warm-up: no error, flat memory."""
    with make_app(database) as app:
        result = scenarios.soak(app)
        assert app.alive()

    for run in (result.warmup, result.soak):
        assert run.non_2xx == 0 and run.socket_errors == 0, run
    assert result.soak.rps > 0.3 * result.capacity_rps, result
    assert result.rss_growth < RSS_GROWTH_LIMIT, result


def test_rendered_infra_is_read(project: Path):  # noqa: F811
    """The timeouts the shutdown test relies on come from the rendered program, not constants."""
    infra = scenarios.infra_timeouts(project)
    assert infra.stop_timeout_s > 0 and infra.deregistration_delay_s > 0
