"""Dashboard queries as plain PromQL: walk the panels and substitute Grafana's variables."""

import re
from collections.abc import Iterator
from typing import Any

# $var, ${var}, ${var:format} and the deprecated [[var]].
VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\[\[(\w+)\]\]|\$(\w+)")
LABEL_VALUES = re.compile(r"^label_values\((?:(?P<selector>.+),\s*)?(?P<label>\w+)\)$")


def grafana_values(*, rate_interval: str = "1m", range_: str = "1h") -> dict[str, str]:
    """Concrete values for every variable the dashboards may use."""
    return {
        "job": "app",
        "instance": ".*",
        "__rate_interval": rate_interval,
        "__interval": "15s",
        "__range": range_,
    }


def substitute(expr: str, values: dict[str, str]) -> str:
    """Replace Grafana variables; an unknown one raises, so it cannot slip through unparsed."""

    def replace(match: re.Match[str]) -> str:
        name = next(group for group in match.groups() if group)
        if name not in values:
            raise KeyError(f"unknown Grafana variable ${name} in {expr!r}")
        return values[name]

    return VARIABLE.sub(replace, expr)


def iter_panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, including those nested in collapsed rows."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def panel_queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(where, expr) for every query target of every panel."""
    return [
        (
            f"{dashboard['uid']} panel {panel['id']} {panel['title']!r} {target['refId']}",
            target["expr"],
        )
        for panel in iter_panels(dashboard)
        for target in panel.get("targets", [])
        if "expr" in target
    ]


def variable_queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(where, selector) of each `label_values(selector, label)` template variable."""
    found = []
    for variable in dashboard["templating"]["list"]:
        if variable["type"] != "query":
            continue
        query = variable["query"]
        query = query["query"] if isinstance(query, dict) else query
        match = LABEL_VALUES.match(query)
        assert match, f"{dashboard['uid']} variable {variable['name']}: unsupported query {query!r}"
        found.append((f"{dashboard['uid']} variable {variable['name']}", match["selector"] or "up"))
    return found
