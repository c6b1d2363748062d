"""What a unit of work costs on each path of the rendered data layer, in process.

Run from a rendered project, with its venv, against a migrated database:

    cd build/orders-service && DATABASE_URL=postgresql://postgres@127.0.0.1/db \\
        .venv/bin/python ../../bench/unit_of_work.py

It times, one after another (no concurrency: the cost of each path, not the server's), the same
write three ways: one Core statement (`Database.fetch`), a unit of work of two Core statements
(`Database.transaction`), and the ORM (`Database.session`, `session.begin()`, add + flush +
select), each on the fast path and with FAST_PATHS=false, and prints microseconds per call.
"""

import asyncio
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path.cwd()))

from app import repository
from app.config import Settings
from app.database import Database
from app.models import Item
from app.schemas import ItemCreate
from sqlalchemy import func, select

ROUNDS = 5
CALLS = 400
ITEM = ItemCreate(name="bench", description=None, price="1.00")


async def core_statement(database: Database) -> None:
    await repository.create_item(database, ITEM)


async def core_unit_of_work(database: Database) -> None:
    async with database.transaction() as tx:
        row = await repository.create_item(tx, ITEM)
        await repository.get_item(tx, row["id"])


async def orm_unit_of_work(database: Database) -> None:
    async with database.session() as session, session.begin():
        item = Item(name="bench", description=None, price=1)
        session.add(item)
        await session.flush()
        await session.scalar(select(func.count()).where(Item.id == item.id))


async def time_per_call(database: Database, work: Callable[[Database], Awaitable[None]]) -> float:
    for _ in range(50):  # warm: connections, prepared statements, compiled caches
        await work(database)
    rounds = []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        for _ in range(CALLS):
            await work(database)
        rounds.append((time.perf_counter() - started) / CALLS * 1e6)
    return statistics.median(rounds)


async def main() -> None:
    print(f"{'path':<22} {'Core statement':>15} {'Core unit of work':>18} {'ORM unit of work':>17}")
    for fast in (True, False):
        settings = Settings(fast_paths=fast)
        database = Database.from_settings(settings)
        figures = [
            await time_per_call(database, work)
            for work in (core_statement, core_unit_of_work, orm_unit_of_work)
        ]
        await database.close()
        label = "fast path" if fast else "FAST_PATHS=false"
        print(f"{label:<22} " + " ".join(f"{us:>15.0f} us" for us in figures))


if __name__ == "__main__":
    asyncio.run(main())
