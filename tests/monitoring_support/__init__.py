"""Helpers for tests/test_monitoring.py: PromQL from dashboards, a real Prometheus, the app."""
