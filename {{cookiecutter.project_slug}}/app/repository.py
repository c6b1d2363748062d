"""Data access for items: one SQL statement per call on SQLAlchemy Core.

Statements are built once, here; each call only binds parameters, and SQLAlchemy's compiled
cache and asyncpg's prepared statements do the rest.
"""

from collections.abc import Sequence
from typing import cast

from sqlalchemy import RowMapping, Table, bindparam, insert, select

from app.database import Database
from app.models import Item
from app.schemas import ItemCreate

items = cast(Table, Item.__table__)
COLUMNS = (items.c.id, items.c.name, items.c.description, items.c.price, items.c.created_at)

INSERT_ITEM = insert(items).returning(*COLUMNS)
SELECT_ITEM = select(*COLUMNS).where(items.c.id == bindparam("item_id"))
SELECT_PAGE = (
    select(*COLUMNS).order_by(items.c.id).limit(bindparam("limit")).offset(bindparam("offset"))
)


async def create_item(*, db: Database, data: ItemCreate) -> RowMapping:
    async with db.connection() as conn:
        return (await conn.execute(INSERT_ITEM, data.model_dump())).mappings().one()


async def get_item(*, db: Database, item_id: int) -> RowMapping | None:
    async with db.connection() as conn:
        result = await conn.execute(SELECT_ITEM, {"item_id": item_id})
        return result.mappings().one_or_none()


async def list_items(*, db: Database, limit: int, offset: int) -> Sequence[RowMapping]:
    async with db.connection() as conn:
        result = await conn.execute(SELECT_PAGE, {"limit": limit, "offset": offset})
        return result.mappings().all()
