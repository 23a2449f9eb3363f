"""Browser storefronts on other origins: which origins may call the API (`CORS_ALLOWED_ORIGINS`).

Off unless origins are configured. Deployed, API Gateway answers the preflight (OPTIONS) and the
functions add the headers to their answers; the local run does both in its API Gateway stand-in.
"""

from __future__ import annotations

from aws_lambda_powertools.event_handler import CORSConfig

ALLOW_HEADERS = ["Authorization", "Content-Type", "Idempotency-Key"]
EXPOSE_HEADERS = ["Location", "Idempotent-Replayed", "Retry-After"]
ALLOW_METHODS = ["GET", "POST", "PUT", "DELETE", "OPTIONS"]
MAX_AGE_SECONDS = 600


def allowed_origins() -> list[str]:
    from shop.settings import get_settings  # pydantic loads with the resolver, not at a handler's import

    return get_settings().allowed_origins()


def cors_config() -> CORSConfig | None:
    origins = allowed_origins()
    if not origins:
        return None
    return CORSConfig(allow_origin=origins[0], extra_origins=origins[1:], allow_headers=ALLOW_HEADERS,
                      expose_headers=EXPOSE_HEADERS, max_age=MAX_AGE_SECONDS)


def preflight_headers(origin: str | None) -> list[tuple[str, str]] | None:
    """What API Gateway's preflight (CDK's mock integration) answers; None when CORS is off.

    It names the caller's origin when allowed, else the first allowed one (so the browser refuses)."""
    origins = allowed_origins()
    if not origins:
        return None
    named = origin.rstrip("/") if origin and origin.rstrip("/") in origins else origins[0]
    return [("Access-Control-Allow-Origin", named), ("Vary", "Origin"),
            ("Access-Control-Allow-Methods", ",".join(ALLOW_METHODS)),
            ("Access-Control-Allow-Headers", ",".join(ALLOW_HEADERS)),
            ("Access-Control-Max-Age", str(MAX_AGE_SECONDS))]
