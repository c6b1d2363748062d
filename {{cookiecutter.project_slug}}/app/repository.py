"""Data access for items: one SQL statement per call on SQLAlchemy Core."""

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import cast

from sqlalchemy import Row, Table, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from app.models import Item
from app.schemas import ItemCreate

items = cast(Table, Item.__table__)
COLUMNS = (items.c.id, items.c.name, items.c.description, items.c.price, items.c.created_at)
ItemRow = Row[int, str, str | None, Decimal, datetime]


async def create_item(*, conn: AsyncConnection, data: ItemCreate) -> ItemRow:
    statement = insert(items).values(**data.model_dump()).returning(*COLUMNS)
    return (await conn.execute(statement)).one()


async def get_item(*, conn: AsyncConnection, item_id: int) -> ItemRow | None:
    statement = select(*COLUMNS).where(items.c.id == item_id)
    return (await conn.execute(statement)).one_or_none()


async def list_items(*, conn: AsyncConnection, limit: int, offset: int) -> Sequence[ItemRow]:
    statement = select(*COLUMNS).order_by(items.c.id).limit(limit).offset(offset)
    return (await conn.execute(statement)).all()
