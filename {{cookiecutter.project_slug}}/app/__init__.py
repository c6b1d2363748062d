"""The {{ cookiecutter.project_slug }} service."""

# The project's one-line texts as they were given (ruff's line limit is lifted for this file).
TITLE = {{ cookiecutter.project_name | python_string }}
DESCRIPTION = {{ cookiecutter.description | python_string }}
