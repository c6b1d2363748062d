"""Jinja filters of this template (cookiecutter loads them through `_extensions`).

`python_string` turns a free-text answer into a Python string literal exactly as `ruff format`
would write it, so rendered code is valid and already formatted whatever the user typed.
"""

from jinja2.ext import Extension


def python_string(value: str) -> str:
    # ruff format keeps double quotes unless single quotes need fewer escapes.
    quote = "'" if value.count('"') > value.count("'") else '"'
    body = value.replace("\\", "\\\\").replace(quote, "\\" + quote)
    return f"{quote}{body}{quote}"


class PythonStringExtension(Extension):
    def __init__(self, environment):  # type: ignore[no-untyped-def]
        super().__init__(environment)
        environment.filters["python_string"] = python_string
