"""The caller, from the API Gateway authorizer's claims only (never from headers or body)."""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver
from aws_lambda_powertools.event_handler.api_gateway import BaseRouter, Router
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from shop.domain.errors import DomainError, Forbidden, Unauthorized

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
    """Cognito's list of groups, exactly. It arrives as a list, or flattened by API Gateway's Cognito
    authorizer into a string: "admin" for one group, "[admin, staff]" for several (items joined by
    ", "). Names are compared whole: a group named "support,admin" is not "admin"."""
    if isinstance(raw, (list, tuple)):
        return frozenset(str(g) for g in raw)
    if not isinstance(raw, str) or not raw:
        return frozenset()
    if raw.startswith("[") and raw.endswith("]"):
        return frozenset(g for g in raw[1:-1].split(", ") if g)
    return frozenset({raw})


def caller(app: BaseRouter) -> Caller:
    return caller_from_event(app.current_event.raw_event)


def caller_from_event(event: dict) -> Caller:
    context = event.get("requestContext") or {}
    claims = (context.get("authorizer") or {}).get("claims") or {}
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub or len(sub) > 128:
        raise Unauthorized("sign in to use this endpoint")
    return Caller(sub=sub, groups=_groups(claims.get("cognito:groups")))


def admin(app: BaseRouter) -> Caller:
    who = caller(app)
    if not who.is_admin:
        raise Forbidden("this endpoint needs the admin group")
    return who


def _require_admin(app: APIGatewayRestResolver, next_middleware: Any) -> Any:
    admin(app)
    return next_middleware(app)


_MIDDLEWARES = list(inspect.signature(Router.route).parameters).index("middlewares") - 1  # without self


class AdminRouter(APIGatewayRouter):
    """A router whose every route needs the admin group: declared once, so no route can forget it."""

    def route(self, *args: Any, **kwargs: Any) -> Any:
        given = kwargs.pop("middlewares", None)
        if len(args) > _MIDDLEWARES:
            given, args = args[_MIDDLEWARES], args[:_MIDDLEWARES]
        kwargs["middlewares"] = [_require_admin, *(given or [])]
        return super().route(*args, **kwargs)


def access_denied(event: dict, required: str) -> DomainError | None:
    """Why the request may not reach its route (`required` is the manifest's auth), checked before
    anything else reads the request: 401 without identity, 403 without the admin group."""
    if required not in ("customer", "admin"):
        return None
    try:
        who = caller_from_event(event)
    except Unauthorized as error:
        return error
    if required == "admin" and not who.is_admin:
        return Forbidden("this endpoint needs the admin group")
    return None
