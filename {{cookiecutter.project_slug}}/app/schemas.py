"""Request and response models (pydantic v2). Input is strict: unknown fields are rejected."""

from datetime import datetime
from decimal import Decimal
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 20
MAX_OFFSET = 1_000_000


def _no_nul(value: str) -> str:
    # PostgreSQL text cannot store NUL; refuse it here rather than fail in the database.
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


Name = Annotated[str, Field(min_length=1, max_length=100, pattern=r"\S"), AfterValidator(_no_nul)]
Description = Annotated[str, Field(max_length=1000), AfterValidator(_no_nul)]
Price = Annotated[Decimal, Field(ge=0, max_digits=12, decimal_places=2)]


class ItemCreate(BaseModel):
    # No model-wide strict mode: FastAPI validates parsed JSON, where a Decimal can only arrive
    # as a number or a string. pydantic never coerces numbers to text, so `name` stays a string.
    model_config = ConfigDict(extra="forbid")

    name: Name
    description: Description | None = None
    price: Price


class ItemRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    description: str | None
    price: Decimal
    created_at: datetime


class ItemPage(BaseModel):
    items: list[ItemRead]
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
