"""Local stand-in for a pager: prints each alert Alertmanager's webhook sends, one JSON line each.

docker-compose runs it as `alert-logger` (see monitoring/prometheus/alertmanager.yml); the
standard library only, so it runs in a stock Python image:
`python alert_logger.py [PORT [HOST]]`.
"""

from __future__ import annotations

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DEFAULT_PORT = 8080


def alert_lines(payload: dict) -> list[str]:
    """One line per alert of a webhook payload: status, name, severity, instance, summary."""
    return [
        json.dumps(
            {
                "status": alert.get("status"),
                "alertname": alert.get("labels", {}).get("alertname"),
                "severity": alert.get("labels", {}).get("severity"),
                "instance": alert.get("labels", {}).get("instance"),
                "summary": alert.get("annotations", {}).get("summary"),
                "runbook_url": alert.get("annotations", {}).get("runbook_url"),
                "startsAt": alert.get("startsAt"),
            },
            sort_keys=True,
        )
        for alert in payload.get("alerts", [])
    ]


class AlertHandler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        try:
            lines = alert_lines(json.loads(body))
        except (ValueError, AttributeError):
            self.send_error(400, "expected Alertmanager's webhook JSON")
            return
        for line in lines:
            print(line, flush=True)
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        """Only the alerts go to stdout, not one access-log line per request."""


def main() -> None:
    port = int(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_PORT
    # All interfaces by default: it runs in its own container, reached by name on the compose
    # network.
    host = sys.argv[2] if len(sys.argv) > 2 else "0.0.0.0"
    server = ThreadingHTTPServer((host, port), AlertHandler)
    print(f"alert-logger listening on :{port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
