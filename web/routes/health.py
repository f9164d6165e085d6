"""Health, readiness and Prometheus metrics (figures kept in Redis, so right across workers)."""

from __future__ import annotations

from quart import Blueprint, Response
from quart_schema import tag, validate_response
from redis import exceptions as redis_errors

from appliance.errors import ServiceUnavailable
from appliance.metrics import collect_snapshot, render_metrics
from appliance.storage.database import check_database
from web.routes import runtime
from web.schemas import HealthResponse

health = Blueprint("health", __name__)


@health.get("/healthz")
@tag(["operations"])
@validate_response(HealthResponse, 200)
async def healthz() -> HealthResponse:
    """The process is alive (no dependency checked)."""
    return HealthResponse(status="ok")


@health.get("/readyz")
@tag(["operations"])
@validate_response(HealthResponse, 200)
@validate_response(HealthResponse, 503)
async def readyz():
    """Redis and the database both answer."""
    rt = runtime()
    checks = {}
    try:
        await rt.redis.ping()
        checks["redis"] = "ok"
    except Exception as exc:
        checks["redis"] = f"unavailable: {exc}"
    try:
        await rt.sql.run(check_database, rt.database)
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"unavailable: {getattr(exc, 'message', exc)}"
    ok = all(value == "ok" for value in checks.values())
    return HealthResponse(status="ok" if ok else "unavailable", checks=checks), (200 if ok else 503)


@health.get("/metrics")
@tag(["operations"])
async def metrics() -> Response:
    """Prometheus text format: interactions by type, flush figures, pending counters, sockets."""
    rt = runtime()
    try:
        snapshot = await collect_snapshot(rt.redis)
    except (redis_errors.RedisError, OSError) as exc:  # a failed scrape, not a 500
        raise ServiceUnavailable(f"Redis is not reachable: {exc}") from exc
    body, content_type = render_metrics(snapshot)
    return Response(body, content_type=content_type)
