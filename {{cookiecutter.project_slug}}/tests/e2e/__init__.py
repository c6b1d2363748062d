"""End-to-end tests against a running service (BASE_URL, PROMETHEUS_URL)."""
