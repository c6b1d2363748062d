"""Where the app worker spends its time, from the raw stacks `bench/run.py --profile DIR` records
with py-spy: `python bench/profile_summary.py DIR/W1.txt [DIR/W0.txt ...]`.

Two views, in percent of the samples in which the worker was running Python:
* layers: each sample goes to the innermost frame of a known library or app module (stdlib
  frames count for their caller, except logging and uuid), i.e. self time per layer;
* hot spots: samples with a given function on the stack (inclusive time); for a middleware,
  only samples where its own frames sit below the next layer's (its cost, not its callee's).
"""

import re
import sys
from collections import Counter
from pathlib import Path

# (label, regex on "function (path:line)"), first match wins; checked from the leaf upwards.
LAYERS = (
    ("access log: logging + JsonFormatter", r"\((logging/|app/log\.py)"),
    ("request id: uuid4", r"\(uuid\.py"),
    ("app: RequestContextMiddleware", r"\(app/middleware\.py"),
    ("app: routes, repository, deps", r"\(app/"),
    ("starlette-exporter", r"\(starlette_exporter/"),
    ("prometheus_client metric updates", r"\(prometheus_client/"),
    ("FastAPI dependency resolution", r"\(fastapi/dependencies/"),
    ("FastAPI routing + request handling", r"\(fastapi/"),
    ("pydantic validation/serialization", r"\(pydantic(_core)?/"),
    ("starlette (routing, responses, ...)", r"\(starlette/"),
    ("asyncpg: opening connections", r"\(asyncpg/connect_utils|^connect \(asyncpg/connection"),
    ("asyncpg: queries", r"\(asyncpg/"),
    ("SQLAlchemy pool", r"\(sqlalchemy/pool/"),
    ("SQLAlchemy statement build/compile", r"\(sqlalchemy/sql/"),
    ("SQLAlchemy engine (execute, result)", r"\(sqlalchemy/engine/"),
    ("SQLAlchemy asyncio/greenlet adaptation", r"\(sqlalchemy/"),
    ("anyio", r"\(anyio/"),
    ("uvicorn + httptools (HTTP protocol)", r"\(uvicorn/"),
)
# The response goes out through every middleware's send wrapper to uvicorn's.
SEND = r"^RequestResponseCycle\.send |\.send_with_headers \(app/"
# (label, pattern, pattern of the next layer down or None)
HOT_SPOTS = (
    ("RequestContextMiddleware (own + access log)", r"\(app/middleware\.py", rf"^Prom|{SEND}"),
    ("starlette-exporter (own + matching + metrics)", r"\(starlette_exporter/", rf"^Exc|{SEND}"),
    ("new DB connections (pool overflow)", r"AsyncAdapt_dbapi_connection\.create ", None),
    ("pool checkout + return", r"\(sqlalchemy/pool/", None),
    ("AsyncConnection.execute", r"^AsyncConnection\.execute ", None),
    ("SQL compilation", r"_compile_w_cache|\(sqlalchemy/sql/compiler\.py", None),
    ("access log line (Logger.info)", r"^Logger\.info ", None),
    ("FastAPI solve_dependencies", r"^solve_dependencies ", None),
    ("FastAPI serialize_response", r"^serialize_response ", None),
    ("request body validation", r"^request_body_to_args ", None),
    ("starlette-exporter route matching", r"^get_matching_route_path ", None),
)


def read_stacks(path: Path) -> Counter[tuple[str, ...]]:
    stacks: Counter[tuple[str, ...]] = Counter()
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        stacks[tuple(stack.split(";"))] += int(count)
    return stacks


def layer_of(stack: tuple[str, ...]) -> str:
    for frame in reversed(stack):
        for label, pattern in LAYERS:
            if re.search(pattern, frame):
                return label
    return "other (event loop, stdlib)"


def owns(stack: tuple[str, ...], pattern: str, below: str | None) -> bool:
    """`pattern` is on the stack, and (given `below`) deeper than any frame matching `below`."""
    for frame in reversed(stack):
        if re.search(pattern, frame):
            return True
        if below and re.search(below, frame):
            return False
    return False


def summarize(path: Path) -> str:
    stacks = read_stacks(path)
    total = sum(stacks.values())
    layers: Counter[str] = Counter()
    for stack, count in stacks.items():
        layers[layer_of(stack)] += count
    lines = [f"{path.name}: {total} samples", "  layers (self time):"]
    lines += [f"    {100 * n / total:5.1f}%  {label}" for label, n in layers.most_common()]
    lines.append("  hot spots (inclusive):")
    for label, pattern, below in HOT_SPOTS:
        n = sum(c for s, c in stacks.items() if owns(s, pattern, below))
        lines.append(f"    {100 * n / total:5.1f}%  {label}")
    return "\n".join(lines)


if __name__ == "__main__":
    print("\n\n".join(summarize(Path(arg)) for arg in sys.argv[1:]))
