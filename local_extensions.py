"""Jinja filters of this template (cookiecutter loads them through `_extensions`).

`python_string` turns a free-text answer into a Python string literal exactly as `ruff format`
would write it, so rendered code is valid and already formatted whatever the user typed.
`lock_key` turns a name into a PostgreSQL advisory lock key: the same for every render of the
same project (a template update renders it again and must not change it), distinct per name.
"""

import hashlib

from jinja2.ext import Extension


def python_string(value: str) -> str:
    # ruff format keeps double quotes unless single quotes need fewer escapes.
    quote = "'" if value.count('"') > value.count("'") else '"'
    body = value.replace("\\", "\\\\").replace(quote, "\\" + quote)
    return f"{quote}{body}{quote}"


def lock_key(name: str) -> int:
    """A positive 62-bit key from the name's SHA-256 (pg_advisory_lock takes a bigint)."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big") % (2**62 - 1) + 1


class PythonStringExtension(Extension):
    def __init__(self, environment):  # type: ignore[no-untyped-def]
        super().__init__(environment)
        environment.filters["python_string"] = python_string
        environment.filters["lock_key"] = lock_key
