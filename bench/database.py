"""Database chores of the benchmark, run by bench/run.py with the rendered project's Python (in
its directory, so its `scripts.local_postgres` helpers are reused).

    python database.py embedded DATA_DIR      start a throwaway server, print its URL, wait
    python database.py create SERVER_URL NAME create database NAME, print its URL
    python database.py seed DATABASE_URL N    insert N items with one COPY
    python database.py drop SERVER_URL NAME   drop database NAME
"""

import asyncio
import sys
from decimal import Decimal
from pathlib import Path

from scripts.local_postgres import connect, create_database, drop_database, local_server


def embedded(data_dir: str) -> None:
    with local_server(Path(data_dir), keep_data=False) as url:
        print(url.render_as_string(hide_password=False), flush=True)
        sys.stdin.read()  # bench/run.py closes our stdin (or kills us) when it is done


async def seed(database_url: str, count: int) -> None:
    records = [
        (f"Item {n}", f"Seeded item number {n}" if n % 4 else None, Decimal(n % 10_000) / 100)
        for n in range(1, count + 1)
    ]
    conn = await connect(database_url)
    try:
        await conn.copy_records_to_table(
            "items", records=records, columns=["name", "description", "price"]
        )
        await conn.execute("ANALYZE items")
    finally:
        await conn.close()


def main(command: str, *args: str) -> None:
    if command == "embedded":
        embedded(*args)
    elif command == "create":
        print(create_database(args[0], args[1]).render_as_string(hide_password=False))
    elif command == "seed":
        asyncio.run(seed(args[0], int(args[1])))
    elif command == "drop":
        drop_database(args[0], args[1])
    else:
        sys.exit(f"unknown command {command!r}")


if __name__ == "__main__":
    main(*sys.argv[1:])
