"""The login role the app connects as, created and granted by each migration run (env.py).

The app never connects as the master user: on RDS it logs in as this role with IAM tokens, and
only the migration task reads the master password. It may read and write rows, never change the
schema. Idempotent, so each run also covers the tables its migrations just created.
"""

from sqlalchemy import Connection, text

# Rows only: the schema belongs to the migrations. Alembic's bookkeeping stays read-only.
TABLE_PRIVILEGES = "SELECT, INSERT, UPDATE, DELETE"
SEQUENCE_PRIVILEGES = "USAGE, SELECT"
READ_ONLY_TABLES = ("alembic_version",)


def grant_app_role(connection: Connection, role: str, password: str | None = None) -> None:
    """Create login role `role` unless it exists and grant it the rows of the current schema,
    now and for every table the migration user creates later. With `password`, set it (each
    run: a changed secret reaches the database at the next migration run)."""
    if role == connection.scalar(text("SELECT current_user")):
        raise ValueError(f"DB_APP_USER={role!r} is the migration user; name another role")
    quote = connection.dialect.identifier_preparer.quote_identifier
    name = quote(role)
    schema = quote(str(connection.scalar(text("SELECT current_schema()"))))
    database = quote(str(connection.scalar(text("SELECT current_database()"))))
    exists = connection.scalar(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role})
    statements = [] if exists else [f"CREATE ROLE {name} LOGIN"]
    # RDS's built-in role that makes PostgreSQL accept IAM tokens instead of a password.
    if connection.scalar(text("SELECT 1 FROM pg_roles WHERE rolname = 'rds_iam'")):
        statements.append(f"GRANT rds_iam TO {name}")
    statements += [
        f"GRANT CONNECT ON DATABASE {database} TO {name}",
        f"GRANT USAGE ON SCHEMA {schema} TO {name}",
        f"GRANT {TABLE_PRIVILEGES} ON ALL TABLES IN SCHEMA {schema} TO {name}",
        f"GRANT {SEQUENCE_PRIVILEGES} ON ALL SEQUENCES IN SCHEMA {schema} TO {name}",
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA {schema} GRANT {TABLE_PRIVILEGES} ON TABLES TO {name}",
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA {schema} "
        f"GRANT {SEQUENCE_PRIVILEGES} ON SEQUENCES TO {name}",
    ]
    for table in READ_ONLY_TABLES:
        if connection.scalar(text("SELECT to_regclass(:t)"), {"t": table}) is not None:
            statements.append(f"REVOKE INSERT, UPDATE, DELETE ON {quote(table)} FROM {name}")
    for statement in statements:
        connection.exec_driver_sql(statement)  # identifiers quoted above; no binds to parse
    if password is not None:
        _set_password(connection, role, password)


def _set_password(connection: Connection, role: str, password: str) -> None:
    # Quoted by the server (format's %L), never pasted into SQL here; and kept out of the
    # error, which would print the statement into the migration's log.
    quoted = "SELECT format('ALTER ROLE %I PASSWORD %L', :role ::text, :password ::text)"
    try:
        statement = connection.scalar(text(quoted), {"role": role, "password": password})
        connection.exec_driver_sql(str(statement))  # as is: no bind parameters parsed
    except Exception:
        raise RuntimeError(f"setting the password of role {role!r} failed") from None
