"""CORS for browser storefronts: off by default; allowed origins get the headers, others do not."""

from __future__ import annotations

import json

from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from localrun import gateway
from localrun.lambdas import LocalContext
from shop.http.app import create_app
from shop.manifest import ROUTES

ORIGINS = "https://shop.example, https://m.shop.example/"


def _app_answer(monkeypatch, origins: str | None, origin: str | None):
    if origins is None:
        monkeypatch.delenv("CORS_ALLOWED_ORIGINS", raising=False)
    else:
        monkeypatch.setenv("CORS_ALLOWED_ORIGINS", origins)
    router = APIGatewayRouter()

    @router.get("/skus/<sku>")
    def read(sku: str):
        return {"sku": sku}

    app = create_app(router)
    route = next(r for r in ROUTES if r.path == "/skus/{sku}")
    headers = [("Origin", origin)] if origin else []
    event = gateway.proxy_event(route, {"sku": "TEE"}, "GET", "/skus/TEE", headers, b"", "127.0.0.1")
    answer = app.resolve(event, LocalContext("catalog_api"))
    return answer["statusCode"], {k.lower(): v for k, v in (answer.get("multiValueHeaders") or {}).items()}


def test_functions_name_an_allowed_origin_and_no_other(monkeypatch):
    status, headers = _app_answer(monkeypatch, ORIGINS, "https://m.shop.example")
    assert status == 200 and headers["access-control-allow-origin"] == ["https://m.shop.example"]
    assert "Location" in headers["access-control-expose-headers"][0]
    _, headers = _app_answer(monkeypatch, ORIGINS, "https://evil.example")
    assert "access-control-allow-origin" not in headers
    _, headers = _app_answer(monkeypatch, None, "https://shop.example")
    assert "access-control-allow-origin" not in headers


def _preflight(monkeypatch, origins: str | None, origin: str):
    if origins is None:
        monkeypatch.delenv("CORS_ALLOWED_ORIGINS", raising=False)
    else:
        monkeypatch.setenv("CORS_ALLOWED_ORIGINS", origins)

    def never(function, event):
        raise AssertionError("a preflight reaches no function")

    return gateway.handle(never, "OPTIONS", "/orders", [("Origin", origin)], b"", "127.0.0.1")


def test_local_gateway_answers_the_preflight_like_api_gateway(monkeypatch):
    answer = _preflight(monkeypatch, ORIGINS, "https://shop.example")
    headers = dict(answer.headers)
    assert answer.status == 204 and headers["Access-Control-Allow-Origin"] == "https://shop.example"
    assert "Idempotency-Key" in headers["Access-Control-Allow-Headers"]
    other = dict(_preflight(monkeypatch, ORIGINS, "https://evil.example").headers)
    assert other["Access-Control-Allow-Origin"] == "https://shop.example"  # not the caller: the browser refuses
    off = _preflight(monkeypatch, None, "https://shop.example")
    assert off.status == 405 and json.loads(off.body)["status"] == 405
