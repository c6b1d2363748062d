"""Items: create, fetch one, list a page."""

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, status

from app import repository
from app.database import ConnectionDep
from app.metrics import ITEMS_CREATED
from app.schemas import (
    DEFAULT_PAGE_SIZE,
    MAX_OFFSET,
    MAX_PAGE_SIZE,
    ErrorResponse,
    ItemCreate,
    ItemPage,
    ItemRead,
)

router = APIRouter(
    prefix="/items",
    tags=["items"],
    responses={
        422: {"model": ErrorResponse, "description": "Invalid input."},
        503: {"model": ErrorResponse, "description": "The database is unavailable."},
    },
)

ItemId = Annotated[int, Path(ge=1, le=2**63 - 1)]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses={400: {"model": ErrorResponse, "description": "Malformed JSON."}},
)
async def create_item(data: ItemCreate, conn: ConnectionDep) -> ItemRead:
    """Create an item."""
    row = await repository.create_item(conn=conn, data=data)
    ITEMS_CREATED.inc()
    return ItemRead.model_validate(row)


@router.get("")
async def list_items(
    conn: ConnectionDep,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = DEFAULT_PAGE_SIZE,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> ItemPage:
    """List items in creation order, a page at a time."""
    rows = await repository.list_items(conn=conn, limit=limit, offset=offset)
    return ItemPage(
        items=[ItemRead.model_validate(row) for row in rows], limit=limit, offset=offset
    )


@router.get("/{item_id}", responses={404: {"model": ErrorResponse, "description": "No such item."}})
async def get_item(item_id: ItemId, conn: ConnectionDep) -> ItemRead:
    """Fetch one item by id."""
    row = await repository.get_item(conn=conn, item_id=item_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"Item {item_id} not found.")
    return ItemRead.model_validate(row)
