"""The caller, from the API Gateway authorizer's claims only (never from headers or body)."""

from __future__ import annotations

from dataclasses import dataclass

from aws_lambda_powertools.event_handler import APIGatewayRestResolver

from shop.domain.errors import Forbidden, Unauthorized

ADMIN_GROUP = "admin"


@dataclass(frozen=True)
class Caller:
    sub: str
    groups: frozenset[str]

    @property
    def is_admin(self) -> bool:
        return ADMIN_GROUP in self.groups

    @property
    def actor(self) -> str:
        return f"{'admin' if self.is_admin else 'customer'}:{self.sub}"


def _groups(raw: object) -> frozenset[str]:
    """cognito:groups arrives as a list, or as a string such as "admin" or "[admin, staff]"."""
    if isinstance(raw, (list, tuple)):
        return frozenset(str(g) for g in raw)
    if isinstance(raw, str):
        return frozenset(g for g in raw.strip("[]").replace(",", " ").split() if g)
    return frozenset()


def caller(app: APIGatewayRestResolver) -> Caller:
    context = app.current_event.raw_event.get("requestContext") or {}
    claims = (context.get("authorizer") or {}).get("claims") or {}
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub or len(sub) > 128:
        raise Unauthorized("sign in to use this endpoint")
    return Caller(sub=sub, groups=_groups(claims.get("cognito:groups")))


def admin(app: APIGatewayRestResolver) -> Caller:
    who = caller(app)
    if not who.is_admin:
        raise Forbidden("this endpoint needs the admin group")
    return who
