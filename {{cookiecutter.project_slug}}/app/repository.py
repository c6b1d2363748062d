"""Data access for items and their events: SQLAlchemy Core statements, compiled once.

Every write records an `item_events` row in the same transaction as the write: create in one
statement (a data-modifying CTE, atomic on its own and one round trip), update and delete as
a unit of work in `Database.transaction()`, the worked example of one.
"""

from collections.abc import Collection
from itertools import combinations
from typing import cast

from sqlalchemy import (
    ColumnElement,
    Insert,
    Integer,
    Table,
    any_,
    bindparam,
    delete,
    exists,
    insert,
    literal_column,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY

from app.database import Database, Executor, Query, Record
from app.models import Item, ItemEvent
from app.schemas import ItemCreate

items = cast(Table, Item.__table__)
events = cast(Table, ItemEvent.__table__)
COLUMNS = (
    items.c.id,
    items.c.name,
    items.c.description,
    items.c.price,
    items.c.created_at,
    items.c.version,
)
EVENT_COLUMNS = (
    events.c.id,
    events.c.item_id,
    events.c.kind,
    events.c.request_id,
    events.c.occurred_at,
)
UPDATABLE = ("name", "description", "price")


class StaleVersion(Exception):
    """If-Match named none of the item's current version: nothing was written."""

    def __init__(self, version: int) -> None:
        super().__init__(f"the item is at version {version}")
        self.version = version


def event_insert(kind: str, item_id: ColumnElement[int]) -> Insert:
    """INSERT of one `kind` event for `item_id` (a bind parameter, or a column of a CTE)."""
    request_id = bindparam("request_id", type_=events.c.request_id.type)
    return insert(events).from_select(
        ["item_id", "kind", "request_id"],
        select(item_id, literal_column(f"'{kind}'"), request_id),
    )


def _insert_item_with_event() -> Query:
    new_item = (
        insert(items)
        .values(
            name=bindparam("name"),
            description=bindparam("description"),
            price=bindparam("price"),
        )
        .returning(*COLUMNS)
        .cte("new_item")
    )
    return Query.compile(select(new_item).add_cte(event_insert("created", new_item.c.id).cte()))


# Absent If-Match (None) matches any version; a list matches the versions it names.
VERSIONS = bindparam("versions", type_=ARRAY(Integer))
VERSION_MATCHES = or_(VERSIONS.is_(None), items.c.version == any_(VERSIONS))


def _update_item(fields: Collection[str]) -> Query:
    return Query.compile(
        update(items)
        .where(items.c.id == bindparam("item_id"), VERSION_MATCHES)
        .values(
            {name: bindparam(name) for name in fields}
            | {"version": items.c.version + literal_column("1")}
        )
        .returning(*COLUMNS)
    )


INSERT_ITEM = _insert_item_with_event()
SELECT_ITEM = Query.compile(select(*COLUMNS).where(items.c.id == bindparam("item_id")))
SELECT_VERSION = Query.compile(select(items.c.version).where(items.c.id == bindparam("item_id")))
SELECT_PAGE = Query.compile(
    select(*COLUMNS).order_by(items.c.id).limit(bindparam("limit")).offset(bindparam("offset"))
)
# One statement per set of fields a PATCH may give (7), so none is built per request.
UPDATE_ITEM = {
    frozenset(fields): _update_item(fields)
    for size in range(1, len(UPDATABLE) + 1)
    for fields in combinations(UPDATABLE, size)
}
DELETE_ITEM = Query.compile(
    delete(items).where(items.c.id == bindparam("item_id"), VERSION_MATCHES).returning(items.c.id)
)
ITEM_ID = bindparam("item_id", type_=events.c.item_id.type)
RECORD_UPDATE = Query.compile(event_insert("updated", ITEM_ID))
RECORD_DELETE = Query.compile(event_insert("deleted", ITEM_ID))
# A page of an item's events, newest first, only while the item exists.
SELECT_EVENTS = Query.compile(
    select(*EVENT_COLUMNS)
    .where(
        events.c.item_id == bindparam("item_id"),
        exists().where(items.c.id == bindparam("item_id")),
    )
    .order_by(events.c.id.desc())
    .limit(bindparam("limit"))
    .offset(bindparam("offset"))
)


async def create_item(db: Executor, data: ItemCreate, *, request_id: str | None = None) -> Record:
    rows = await db.fetch(INSERT_ITEM, **data.model_dump(), request_id=request_id)
    return rows[0]


async def get_item(db: Executor, item_id: int) -> Record | None:
    return await db.fetch_one(SELECT_ITEM, item_id=item_id)


async def list_items(db: Executor, *, limit: int, offset: int) -> list[Record]:
    return await db.fetch(SELECT_PAGE, limit=limit, offset=offset)


async def update_item(
    db: Database,
    *,
    item_id: int,
    changes: dict[str, object],
    versions: list[int] | None,
    request_id: str | None,
) -> Record | None:
    """Apply `changes` and record the event, both or neither. None: no such item.

    `versions` None applies the update whatever the item's version; a list applies it only at
    one of those versions, else raises StaleVersion.
    """
    async with db.transaction() as tx:
        row = await tx.fetch_one(
            UPDATE_ITEM[frozenset(changes)], item_id=item_id, versions=versions, **changes
        )
        if row is None:
            await _raise_if_stale(tx, item_id)
            return None
        await tx.fetch(RECORD_UPDATE, item_id=item_id, request_id=request_id)
    return row


async def delete_item(
    db: Database, *, item_id: int, versions: list[int] | None, request_id: str | None
) -> bool:
    """Delete the item and record the event, both or neither. False: no such item."""
    async with db.transaction() as tx:
        if await tx.fetch_one(DELETE_ITEM, item_id=item_id, versions=versions) is None:
            await _raise_if_stale(tx, item_id)
            return False
        await tx.fetch(RECORD_DELETE, item_id=item_id, request_id=request_id)
    return True


async def _raise_if_stale(tx: Executor, item_id: int) -> None:
    """After a write matched no row: StaleVersion if the item exists (If-Match missed)."""
    current = await tx.fetch_one(SELECT_VERSION, item_id=item_id)
    if current is not None:
        raise StaleVersion(current["version"])


async def list_events(
    db: Executor, *, item_id: int, limit: int, offset: int
) -> list[Record] | None:
    """A page of the item's events, newest first; None if there is no such item."""
    rows = await db.fetch(SELECT_EVENTS, item_id=item_id, limit=limit, offset=offset)
    if not rows and await db.fetch_one(SELECT_VERSION, item_id=item_id) is None:
        return None
    return rows
