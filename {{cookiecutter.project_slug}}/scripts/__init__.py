"""Developer tooling that is not part of the service image."""
