"""Request and response models (pydantic v2). Input is strict: unknown fields are rejected."""

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

MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 20
MAX_OFFSET = 1_000_000


# PostgreSQL text cannot store NUL, so it is refused here (and documented in the schema) rather
# than failing in the database.
Name = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[^\x00]*$")]
Description = Annotated[str, Field(max_length=1000, pattern=r"^[^\x00]*$")]

# Money is exact: a JSON number, or a decimal string like "9.99", never below zero and never
# more than 10 digits before or 2 after the point (NUMERIC(12, 2)). Strings must have exactly
# the documented shape (no exponent, sign or spaces), so the schema and the validator agree.
PRICE_PATTERN = r"^[0-9]{1,10}(\.[0-9]{1,2})?$"
PRICE_MAX = 9_999_999_999.99


def _price_string_shape(value: object) -> object:
    if isinstance(value, str) and not re.fullmatch(PRICE_PATTERN, value):
        raise ValueError('must be a decimal string like "9.99"')
    return value


# The constraints come before the string check: pydantic then checks digits in its Rust core
# (after a BeforeValidator it would fall back to Python validators, three times slower).
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


class ItemCreate(BaseModel):
    # No model-wide strict mode: FastAPI validates parsed JSON, where a Decimal can only arrive
    # as a number or a string. pydantic never coerces numbers to text, so `name` stays a string.
    model_config = ConfigDict(extra="forbid")

    name: Name
    description: Description | None = None
    price: Price


class ItemUpdate(BaseModel):
    """A partial update: the fields given are validated as on create, the others kept.

    `description` may be set to null (cleared); `name` and `price` may not, and at least one
    field must be given. `None | SkipJsonSchema` keeps null out of the documented schema (so
    fuzzers send it only as invalid data) while absence stays distinguishable from null.
    """

    model_config = ConfigDict(extra="forbid", json_schema_extra={"minProperties": 1})

    name: Name | SkipJsonSchema[None] = None
    description: Description | None = None
    price: Price | SkipJsonSchema[None] = None

    @field_validator("name", "price")
    @classmethod
    def not_null(cls, value: object) -> object:
        # Runs only on given values (defaults are not validated): an explicit null.
        if value is None:
            raise ValueError("may be left out, but not null")
        return value

    @model_validator(mode="after")
    def some_field(self) -> Self:
        if not self.model_fields_set:
            raise ValueError("give at least one of name, description, price")
        return self

    def changes(self) -> dict[str, object]:
        """The fields given, by name."""
        return self.model_dump(exclude_unset=True)


# What the database returns is already NUMERIC(12, 2): checking digits again on the way out
# would cost more than the rest of a row's validation (pydantic checks them in Python).
StoredPrice = Annotated[
    Decimal, WithJsonSchema({"type": "string", "pattern": PRICE_PATTERN}, mode="serialization")
]


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
    """The one shape of every error this service returns."""

    error: Error
