"""The API's models, as the service declares them in app/schemas.py.

A client cannot import the service, so these are the service's schemas restated, and the
service's tests/test_client.py holds them to it: each model's JSON schema must equal the
component of the same name in the served OpenAPI document (titles and descriptions aside).
A change to app/schemas.py fails that test until it is made here too (and the version bumped).
Requests are checked here before they are sent, as the service would check them; responses
ignore fields they do not know, so a service that adds one does not break older clients.
"""

import re
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal, Self

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema

Name = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[^\x00]*$")]
Description = Annotated[str, Field(max_length=1000, pattern=r"^[^\x00]*$")]

PRICE_PATTERN = r"^[0-9]{1,10}(\.[0-9]{1,2})?$"
PRICE_MAX = 9_999_999_999.99


def _price_string_shape(value: object) -> object:
    if isinstance(value, str) and not re.fullmatch(PRICE_PATTERN, value):
        raise ValueError('must be a decimal string like "9.99"')
    return value


# Exact money: a number or a decimal string in; always a decimal string on the wire.
Price = Annotated[
    Decimal,
    Field(ge=0, max_digits=12, decimal_places=2),
    BeforeValidator(_price_string_shape),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "minimum": 0, "maximum": PRICE_MAX, "multipleOf": 0.01},
                {"type": "string", "pattern": PRICE_PATTERN},
            ]
        },
        mode="validation",
    ),
    WithJsonSchema({"type": "string", "pattern": PRICE_PATTERN}, mode="serialization"),
]
StoredPrice = Annotated[
    Decimal, WithJsonSchema({"type": "string", "pattern": PRICE_PATTERN}, mode="serialization")
]


class ItemCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    description: Description | None = None
    price: Price


class ItemUpdate(BaseModel):
    """The fields to change; `description=None` clears it, `name` and `price` may not be None."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"minProperties": 1})

    name: Name | SkipJsonSchema[None] = None
    description: Description | None = None
    price: Price | SkipJsonSchema[None] = None

    @field_validator("name", "price")
    @classmethod
    def not_null(cls, value: object) -> object:
        if value is None:
            raise ValueError("may be left out, but not null")
        return value

    @model_validator(mode="after")
    def some_field(self) -> Self:
        if not self.model_fields_set:
            raise ValueError("give at least one of name, description, price")
        return self


class ItemRead(BaseModel):
    id: int
    name: str
    description: str | None
    price: StoredPrice
    created_at: datetime
    version: int


class ItemPage(BaseModel):
    items: list[ItemRead]
    limit: int
    offset: int


class ItemEventRead(BaseModel):
    id: int
    item_id: int
    kind: Literal["created", "updated", "deleted"]
    request_id: str | None
    occurred_at: datetime


class ItemEventPage(BaseModel):
    events: list[ItemEventRead]
    limit: int
    offset: int


class ErrorDetail(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class Error(BaseModel):
    code: str
    message: str
    request_id: str | None = None
    details: list[ErrorDetail] | None = None


class ErrorResponse(BaseModel):
    """The one shape of every error the service returns."""

    error: Error


# Which models are requests (compared in validation mode) and which are responses.
REQUEST_MODELS: tuple[type[BaseModel], ...] = (ItemCreate, ItemUpdate)
RESPONSE_MODELS: tuple[type[BaseModel], ...] = (
    ItemRead,
    ItemPage,
    ItemEventRead,
    ItemEventPage,
    ErrorResponse,
    Error,
    ErrorDetail,
)
