"""Data access for items: SQLAlchemy Core statements, compiled once, one per call."""

from typing import cast

from sqlalchemy import Table, bindparam, insert, select

from app.database import Executor, Query, Record
from app.models import Item
from app.schemas import ItemCreate

items = cast(Table, Item.__table__)
COLUMNS = (items.c.id, items.c.name, items.c.description, items.c.price, items.c.created_at)

INSERT_ITEM = Query.compile(
    insert(items)
    .values(
        name=bindparam("name"),
        description=bindparam("description"),
        price=bindparam("price"),
    )
    .returning(*COLUMNS)
)
SELECT_ITEM = Query.compile(select(*COLUMNS).where(items.c.id == bindparam("item_id")))
SELECT_PAGE = Query.compile(
    select(*COLUMNS).order_by(items.c.id).limit(bindparam("limit")).offset(bindparam("offset"))
)


async def create_item(db: Executor, data: ItemCreate) -> Record:
    rows = await db.fetch(INSERT_ITEM, **data.model_dump())
    return rows[0]


async def get_item(db: Executor, item_id: int) -> Record | None:
    return await db.fetch_one(SELECT_ITEM, item_id=item_id)


async def list_items(db: Executor, *, limit: int, offset: int) -> list[Record]:
    return await db.fetch(SELECT_PAGE, limit=limit, offset=offset)
