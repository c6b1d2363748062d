"""Items: create, fetch, list, partial update, delete, and each item's write history.

Every item carries a version, sent as a strong ETag (`"3"`); PATCH and DELETE honour If-Match
(RFC 9110, section 13.1.1): `*` or a list of entity tags, compared strongly, so a weak tag
never matches. Without If-Match the write applies. When the condition is false the answer is
412 and nothing is written; a malformed If-Match is a false condition too (it names no
current tag), answered 412 with a message saying it is malformed, never ignored: ignoring it
would apply the write its sender meant to guard.
"""

import re
from typing import Annotated

from fastapi import APIRouter,{% if cookiecutter.auth == "jwt" %} Depends,{% endif %} HTTPException, Path, Query, Request, Response, status
from pydantic import TypeAdapter

from app import repository
{%- if cookiecutter.auth == "jwt" %}
from app.auth import ITEMS
{%- endif %}
{%- if cookiecutter.cache == "redis" %}
from app.cache import ItemCacheDep, Lookup
{%- endif %}
from app.database import DatabaseDep, Record
{%- if cookiecutter.feature_flags == "unleash" %}
from app.flags import ITEM_MAX_AGE_SECONDS, Flags, FlagsDep
{%- endif %}
from app.log import request_id_var
from app.metrics import ITEMS_CREATED
from app.routing import LeanRoute
from app.schemas import (
    DEFAULT_PAGE_SIZE,
    MAX_OFFSET,
    MAX_PAGE_SIZE,
    ErrorResponse,
    ItemCreate,
    ItemEventPage,
    ItemPage,
    ItemRead,
    ItemUpdate,
)

router = APIRouter(
    prefix="/items",
    tags=["items"],
    route_class=LeanRoute,
{%- if cookiecutter.auth == "jwt" %}
    # Every route here needs a bearer token: items:read for GETs, items:write for writes.
    dependencies=[Depends(ITEMS)],
{%- endif %}
    responses={
        422: {"model": ErrorResponse, "description": "Invalid input."},
        503: {"model": ErrorResponse, "description": "The database is unavailable."},
    },
)

ItemId = Annotated[int, Path(ge=1, le=2**63 - 1)]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)]
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET)]

# RFC 9110: If-Match = "*" / #entity-tag; entity-tag = [ "W/" ] DQUOTE *etagc DQUOTE, where
# etagc is any visible ASCII but DQUOTE (obs-text, bytes over 0x7F, is not accepted: no tag
# this service sends has it). Lists are separated by commas with optional blanks around them.
ENTITY_TAG = r'(?:W/)?"[\x21\x23-\x7e]*"'
IF_MATCH_PATTERN = rf"^[ \t]*(?:\*|{ENTITY_TAG}(?:[ \t]*,[ \t]*{ENTITY_TAG})*)[ \t]*$"
IF_MATCH_RE = re.compile(IF_MATCH_PATTERN)
ENTITY_TAG_RE = re.compile(ENTITY_TAG)
STRONG_VERSION_RE = re.compile(r'"([1-9][0-9]{0,9})"')  # how etag() writes one
MAX_VERSION = 2**31 - 1  # items.version is an INTEGER

# Declared for the OpenAPI document here and read from the request in the endpoint: as a
# `Header` parameter, FastAPI's general parameter path cost ~13% of a PATCH (bench/README.md).
IF_MATCH_PARAMETER = {
    "name": "If-Match",
    "in": "header",
    "required": False,
    "description": '`*`, or entity tags as sent in ETag (`"3"`, or `"3", "4"`): the write '
    "applies only to an item at one of those versions, else 412 (so does a malformed value).",
    # The example is also what fuzzers send here while they vary other parameters.
    "schema": {"type": "string", "pattern": IF_MATCH_PATTERN, "examples": ['"1"', "*"]},
}
CONDITIONAL = {"parameters": [IF_MATCH_PARAMETER]}

CONDITIONAL_RESPONSES: dict[int | str, dict[str, object]] = {
    404: {"model": ErrorResponse, "description": "No such item."},
    412: {
        "model": ErrorResponse,
        "description": "If-Match is malformed or names another version: nothing was written.",
    },
}
BODY_RESPONSES: dict[int | str, dict[str, object]] = {
    400: {"model": ErrorResponse, "description": "Malformed JSON."},
    413: {"model": ErrorResponse, "description": "Request body too large."},
}
ETAG_HEADER = {
    "ETag": {"description": 'The item\'s version, e.g. `"3"`.', "schema": {"type": "string"}}
}

ITEM = TypeAdapter(ItemRead)


def etag(version: int) -> str:
    return f'"{version}"'


def matching_versions(request: Request) -> list[int] | None:
    """The versions If-Match allows: None for any (absent or `*`), else those its strong tags
    name (possibly none). Raises 412 when the header does not parse."""
    fields = request.headers.getlist("if-match")
    if not fields:
        return None
    if_match = ", ".join(fields)  # several If-Match lines are one list (RFC 9110, 5.3)
    if not IF_MATCH_RE.fullmatch(if_match):
        raise HTTPException(
            status.HTTP_412_PRECONDITION_FAILED,
            'Malformed If-Match: give "*" or a comma-separated list of entity tags like "3".',
        )
    if if_match.strip() == "*":
        return None
    versions = []
    for tag in ENTITY_TAG_RE.findall(if_match):
        # A weak tag, or one this service never sends, matches no version.
        if (strong := STRONG_VERSION_RE.fullmatch(tag)) and int(strong[1]) <= MAX_VERSION:
            versions.append(int(strong[1]))
    return versions


def item_response(row: Record, status_code: int = status.HTTP_200_OK) -> Response:
    """The item as ItemRead JSON with its ETag (LeanRoute sends a returned Response as it is)."""
    return Response(
        ITEM.dump_json(ITEM.validate_python(row)),
        status_code,
        headers={"ETag": etag(row["version"])},
        media_type="application/json",
    )

{%- if cookiecutter.cache == "redis" %}


def cached_response(hit: Lookup) -> Response:
    """The cached ItemRead JSON, sent as item_response sends it."""
    return Response(hit.body, headers={"ETag": etag(hit.version)}, media_type="application/json")
{%- endif %}

{%- if cookiecutter.feature_flags == "unleash" %}


def with_client_caching(response: Response, flags: Flags) -> Response:
    """The flag items-client-caching (app/flags.py): when on, clients may reuse the item for a
    few seconds; off (its default), no Cache-Control, as without the flag."""
    if flags.enabled("items-client-caching"):
        response.headers["Cache-Control"] = f"private, max-age={ITEM_MAX_AGE_SECONDS}"
    return response
{%- endif %}


def not_found(item_id: int) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, f"Item {item_id} not found.")


def stale(item_id: int, error: repository.StaleVersion) -> HTTPException:
    return HTTPException(
        status.HTTP_412_PRECONDITION_FAILED,
        f"Item {item_id} is at ETag {etag(error.version)}, which If-Match does not name.",
    )


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=ItemRead,
    responses={
        201: {"headers": ETAG_HEADER},
        **BODY_RESPONSES,
    },
)
async def create_item(data: ItemCreate, db: DatabaseDep) -> Response:
    """Create an item."""
    row = await repository.create_item(db, data, request_id=request_id_var.get())
    ITEMS_CREATED.inc()
    return item_response(row, status.HTTP_201_CREATED)


@router.get("", response_model=ItemPage)
async def list_items(
    db: DatabaseDep, limit: Limit = DEFAULT_PAGE_SIZE, offset: Offset = 0
) -> dict[str, object]:
    """List items in creation order, a page at a time."""
    rows = await repository.list_items(db, limit=limit, offset=offset)
    return {"items": rows, "limit": limit, "offset": offset}


@router.get(
    "/{item_id}",
    response_model=ItemRead,
    responses={
        200: {"headers": ETAG_HEADER},
        404: {"model": ErrorResponse, "description": "No such item."},
    },
)
{%- if cookiecutter.cache == "redis" %}
{%- if cookiecutter.feature_flags == "unleash" %}
async def get_item(
    item_id: ItemId, db: DatabaseDep, cache: ItemCacheDep, flags: FlagsDep
) -> Response:
    """Fetch one item by id (from the cache when it holds the item)."""
    lookup = await cache.get(item_id)
    if lookup.body is not None:
        return with_client_caching(cached_response(lookup), flags)
    row = await repository.get_item(db, item_id)
    if row is None:
        raise not_found(item_id)
    response = item_response(row)
    if lookup.fill:
        await cache.fill(item_id, row["version"], response.body)
    return with_client_caching(response, flags)
{%- else %}
async def get_item(item_id: ItemId, db: DatabaseDep, cache: ItemCacheDep) -> Response:
    """Fetch one item by id (from the cache when it holds the item)."""
    lookup = await cache.get(item_id)
    if lookup.body is not None:
        return cached_response(lookup)
    row = await repository.get_item(db, item_id)
    if row is None:
        raise not_found(item_id)
    response = item_response(row)
    if lookup.fill:
        await cache.fill(item_id, row["version"], response.body)
    return response
{%- endif %}
{%- else %}
{%- if cookiecutter.feature_flags == "unleash" %}
async def get_item(item_id: ItemId, db: DatabaseDep, flags: FlagsDep) -> Response:
    """Fetch one item by id."""
    row = await repository.get_item(db, item_id)
    if row is None:
        raise not_found(item_id)
    return with_client_caching(item_response(row), flags)
{%- else %}
async def get_item(item_id: ItemId, db: DatabaseDep) -> Response:
    """Fetch one item by id."""
    row = await repository.get_item(db, item_id)
    if row is None:
        raise not_found(item_id)
    return item_response(row)
{%- endif %}
{%- endif %}


@router.patch(
    "/{item_id}",
    response_model=ItemRead,
    responses={
        200: {"headers": ETAG_HEADER},
        **BODY_RESPONSES,
        **CONDITIONAL_RESPONSES,
    },
    openapi_extra=CONDITIONAL,
)
async def update_item(
{%- if cookiecutter.cache == "redis" %}
    item_id: ItemId, data: ItemUpdate, db: DatabaseDep, request: Request, cache: ItemCacheDep
{%- else %}
    item_id: ItemId, data: ItemUpdate, db: DatabaseDep, request: Request
{%- endif %}
) -> Response:
    """Change the fields given; the rest stay as they are."""
    versions = matching_versions(request)
    try:
        row = await repository.update_item(
            db,
            item_id=item_id,
            changes=data.changes(),
            versions=versions,
            request_id=request_id_var.get(),
        )
    except repository.StaleVersion as error:
        raise stale(item_id, error) from None
    if row is None:
        raise not_found(item_id)
{%- if cookiecutter.cache == "redis" %}
    response = item_response(row)
    await cache.update(item_id, row["version"], response.body)  # committed: now the cache
    return response
{%- else %}
    return item_response(row)
{%- endif %}


@router.delete(
    "/{item_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=CONDITIONAL_RESPONSES,
    openapi_extra=CONDITIONAL,
)
{%- if cookiecutter.cache == "redis" %}
async def delete_item(
    item_id: ItemId, db: DatabaseDep, request: Request, cache: ItemCacheDep
) -> Response:
{%- else %}
async def delete_item(item_id: ItemId, db: DatabaseDep, request: Request) -> Response:
{%- endif %}
    """Delete an item (its history stays in item_events; the API answers 404 for it)."""
    versions = matching_versions(request)
    try:
        deleted = await repository.delete_item(
            db, item_id=item_id, versions=versions, request_id=request_id_var.get()
        )
    except repository.StaleVersion as error:
        raise stale(item_id, error) from None
    if not deleted:
        raise not_found(item_id)
{%- if cookiecutter.cache == "redis" %}
    await cache.delete(item_id)  # committed: now the cache
{%- endif %}
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/{item_id}/events",
    response_model=ItemEventPage,
    responses={404: {"model": ErrorResponse, "description": "No such item."}},
)
async def list_item_events(
    item_id: ItemId, db: DatabaseDep, limit: Limit = DEFAULT_PAGE_SIZE, offset: Offset = 0
) -> dict[str, object]:
    """The item's writes (created, updated, deleted), newest first, a page at a time."""
    rows = await repository.list_events(db, item_id=item_id, limit=limit, offset=offset)
    if rows is None:
        raise not_found(item_id)
    return {"events": rows, "limit": limit, "offset": offset}
