"""The caller's own notifications: the in-app inbox (站内信) and where and how they want to be told."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.event_handler.router import APIGatewayRouter
from pydantic import Field, StrictBool, StringConstraints

from shop.adapters.notifications import notify_ports
from shop.domain.errors import Unprocessable
from shop.domain.notifications import Preferences, e164
from shop.http.auth import caller
from shop.http.routes.common import DEFAULT_PAGE, declared_query_only, json_response, page
from shop.http.schemas import Strict

router = APIGatewayRouter()

Limit = Annotated[int, Query(ge=1, le=100)]
Cursor = Annotated[str | None, Query(max_length=1024)]
# Deliberately simple (one @, a dot in the domain, no spaces): SES refuses what is not deliverable.
Email = Annotated[str, StringConstraints(max_length=254, pattern=r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")]
Phone = Annotated[str, StringConstraints(max_length=32, pattern=r"^\+?[0-9() .-]{6,31}$")]


class PreferencesIn(Strict):
    locale: Annotated[str, StringConstraints(pattern=r"^(zh-CN|en)$")] | None = Field(
        default=None, description="zh-CN or en; without it, Chinese for addresses in CN, HK, MO, TW, else English")
    email: Email | None = Field(default=None, description="Where e-mails go; none: no e-mail")
    phone: Phone | None = Field(default=None, description="SMS number in international form (+8613800138000); "
                                                          "none: the phone of each order's shipping address")
    email_enabled: StrictBool = True
    sms_enabled: StrictBool = True


@router.get("/me/notifications", summary="The caller's in-app messages (站内信), newest first")
def list_notifications(limit: Limit = DEFAULT_PAGE, cursor: Cursor = None):
    who = caller(router)
    declared_query_only(router, {"limit", "cursor"})
    found, next_cursor = notify_ports().store.inbox(who.sub, limit, cursor)
    return json_response(200, page(found, next_cursor))


@router.get("/me/notification-preferences", summary="Where and in which language the caller is told of orders")
def get_preferences():
    who = caller(router)
    return json_response(200, notify_ports().store.preferences(who.sub).to_dict())


@router.put("/me/notification-preferences", summary="Set the caller's language, e-mail address and SMS number")
def put_preferences(body: PreferencesIn):
    who = caller(router)
    if body.phone and not e164(body.phone, None):
        raise Unprocessable("phone must be in international form, e.g. +8613800138000", {"fields": ["phone"]})
    preferences = Preferences(locale=body.locale, email=body.email, phone=e164(body.phone, None) if body.phone
                              else None, email_enabled=body.email_enabled, sms_enabled=body.sms_enabled)
    notify_ports().store.save_preferences(who.sub, preferences)
    return json_response(200, preferences.to_dict())
