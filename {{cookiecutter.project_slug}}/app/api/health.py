"""Service info, liveness and readiness endpoints."""

import asyncio

from fastapi import APIRouter, Request
from pydantic import BaseModel

from app.config import Settings
from app.database import DatabaseDep, DatabaseUnavailable
from app.routing import LeanRoute
from app.schemas import ErrorResponse

router = APIRouter(tags=["health"], route_class=LeanRoute)

READINESS_TIMEOUT_SECONDS = 1.5


class ServiceInfo(BaseModel):
    name: str
    version: str
    docs: str


class Status(BaseModel):
    status: str


@router.get("/")
async def root(request: Request) -> ServiceInfo:
    """Name and version of the service."""
    settings: Settings = request.app.state.settings
    return ServiceInfo(name=settings.app_name, version=settings.version, docs="/docs")


@router.get("/health")
async def liveness() -> Status:
    """Liveness: the process is up. Never touches the database."""
    return Status(status="ok")


@router.get(
    "/health/ready",
    responses={503: {"model": ErrorResponse, "description": "The database is unreachable."}},
)
async def readiness(db: DatabaseDep) -> Status:
    """Readiness: the database answers within a short timeout."""
    try:
        async with asyncio.timeout(READINESS_TIMEOUT_SECONDS):
            reachable = await db.is_reachable()
    except TimeoutError:
        reachable = False
    if not reachable:
        raise DatabaseUnavailable("readiness check: no answer from the database")
    return Status(status="ready")
