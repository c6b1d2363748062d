"""Items: create, fetch one, list a page."""

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, status

from app import repository
from app.database import DatabaseDep, Record
from app.metrics import ITEMS_CREATED
from app.routing import LeanRoute
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
    route_class=LeanRoute,
    responses={
        422: {"model": ErrorResponse, "description": "Invalid input."},
        503: {"model": ErrorResponse, "description": "The database is unavailable."},
    },
)

ItemId = Annotated[int, Path(ge=1, le=2**63 - 1)]


# Routes return database rows as dicts and declare `response_model`: LeanRoute validates them
# once against it and serializes straight to JSON (no model built by hand and checked again).


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=ItemRead,
    responses={
        400: {"model": ErrorResponse, "description": "Malformed JSON."},
        413: {"model": ErrorResponse, "description": "Request body too large."},
    },
)
async def create_item(data: ItemCreate, db: DatabaseDep) -> Record:
    """Create an item."""
    row = await repository.create_item(db, data)
    ITEMS_CREATED.inc()
    return row


@router.get("", response_model=ItemPage)
async def list_items(
    db: DatabaseDep,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = DEFAULT_PAGE_SIZE,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> dict[str, object]:
    """List items in creation order, a page at a time."""
    rows = await repository.list_items(db, limit=limit, offset=offset)
    return {"items": rows, "limit": limit, "offset": offset}


@router.get(
    "/{item_id}",
    response_model=ItemRead,
    responses={404: {"model": ErrorResponse, "description": "No such item."}},
)
async def get_item(item_id: ItemId, db: DatabaseDep) -> Record:
    """Fetch one item by id."""
    row = await repository.get_item(db, item_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"Item {item_id} not found.")
    return row
