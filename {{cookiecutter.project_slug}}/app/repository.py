"""Data access for items: one SQL statement per call on SQLAlchemy Core.

Statements are built once, here; each call only binds parameters, and SQLAlchemy's compiled
cache and asyncpg's prepared statements do the rest. The functions are units of work for
`Database.run`, which runs them on a pooled connection.
"""

from typing import Any, cast

from sqlalchemy import Connection, CursorResult, Table, bindparam, insert, select

from app.models import Item
from app.schemas import ItemCreate

items = cast(Table, Item.__table__)
COLUMNS = (items.c.id, items.c.name, items.c.description, items.c.price, items.c.created_at)

INSERT_ITEM = insert(items).returning(*COLUMNS)
SELECT_ITEM = select(*COLUMNS).where(items.c.id == bindparam("item_id"))
SELECT_PAGE = (
    select(*COLUMNS).order_by(items.c.id).limit(bindparam("limit")).offset(bindparam("offset"))
)


Record = dict[str, Any]


def records(result: CursorResult[Any]) -> list[Record]:
    # Plain dicts: pydantic validates them about twice as fast as SQLAlchemy's RowMapping.
    keys = tuple(result.keys())
    return [dict(zip(keys, row, strict=True)) for row in result]


def create_item(*, conn: Connection, data: ItemCreate) -> Record:
    return records(conn.execute(INSERT_ITEM, data.model_dump()))[0]


def get_item(*, conn: Connection, item_id: int) -> Record | None:
    found = records(conn.execute(SELECT_ITEM, {"item_id": item_id}))
    return found[0] if found else None


def list_items(*, conn: Connection, limit: int, offset: int) -> list[Record]:
    return records(conn.execute(SELECT_PAGE, {"limit": limit, "offset": offset}))
