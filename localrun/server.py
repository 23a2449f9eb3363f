"""`make run`: the whole API on http://127.0.0.1:$PORT against local stand-ins for AWS.

Binds to 127.0.0.1 only; never deployed.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import re
import signal
import socket
import sys
import threading
from html import escape as html_escape
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "functions"))

from localrun import fake_statements, gateway  # noqa: E402
from localrun.cloud import TABLE_NAME, LocalCloud  # noqa: E402
from localrun.fake_carriers import LOCAL_STATUSES, FakeCarriers  # noqa: E402
from localrun.fake_providers import LOCAL_KEY_VARIABLES, FakeProviders, ProviderKeys, signed_webhook  # noqa: E402
from localrun.lambdas import LambdaRuntime  # noqa: E402
from localrun.workers import QueuePoller, Schedule, make_sqs_client  # noqa: E402
from shop.manifest import QUEUES, SWEEP_INTERVAL_SECONDS  # noqa: E402

log = logging.getLogger("localrun")
MAX_REQUEST_BYTES = 1024 * 1024
PAY_PAGE_FORM = b"pay_page=1"  # what the pay page's form posts
_LOCAL_PAY = re.compile(r"^/_local/pay/(?P<order_id>[A-Za-z0-9_-]{1,64})$")
_LOCAL_CARRIER = re.compile(r"^/_local/carrier/(?P<number>[A-Za-z0-9._-]{1,64})$")


# The API base setting of each provider with a fake here: when the environment sets it (a provider's real
# sandbox), that provider is not faked and all its keys come from the environment.
API_BASES = {"stripe": "STRIPE_API_BASE", "alipay": "ALIPAY_GATEWAY", "wechatpay": "WECHATPAY_API_BASE"}
# Keys that belong to the provider itself: the fake holds the private halves, so these are always the fake's.
PROVIDER_OWNED = ("ALIPAY_PUBLIC_KEY", "WECHATPAY_PLATFORM_PUBLIC_KEY", "WECHATPAY_PLATFORM_SERIAL")
_PREFIXES = {"stripe": "STRIPE_", "alipay": "ALIPAY_", "wechatpay": "WECHATPAY_"}


def provider_environment(fakes: FakeProviders, environ: dict[str, str] | os._Environ) -> dict[str, str]:
    """The provider settings the workers get on top of `environ`.

    A provider whose API base the environment sets is real (e.g. STRIPE_API_BASE=https://api.stripe.com with a
    test key): nothing of it is touched. For every faked provider, what the environment sets stays (the fakes
    were built with it: ProviderKeys.from_env), the rest comes from the fakes; the provider's own public key
    is always the fake's, since only the fake can sign with its private half."""
    real = {name for name, var in API_BASES.items() if environ.get(var)}
    updates = {}
    for name, value in fakes.function_env().items():
        owner = next((p for p, prefix in _PREFIXES.items() if name.startswith(prefix)), None)
        if owner in real:
            continue
        if name in PROVIDER_OWNED:
            assert owner is not None  # each provider-owned name has its provider's prefix
            if environ.get(name) and environ[name] != value:
                log.warning("%s is the local %s fake's own key while %s is unset; the value in the environment "
                            "is not used", name, owner, API_BASES[owner])
            updates[name] = value
        elif not environ.get(name):
            updates[name] = value
    for name in sorted(API_BASES.values()):
        state = f"real: {environ[name]}" if name in environ and environ[name] else "local fake"
        log.info("payment provider API %s -> %s", name, state)
    from_env = sorted(v for v in (*LOCAL_KEY_VARIABLES, "ALIPAY_APP_PRIVATE_KEY", "WECHATPAY_MERCHANT_PRIVATE_KEY")
                      if environ.get(v))
    log.info("provider secrets taken from the environment: %s", ", ".join(from_env) or "none (all local defaults)")
    return updates


def _env_int(name: str, default: float) -> float:
    raw = os.environ.get(name)
    return float(raw) if raw else default


class LocalServer:
    def __init__(self, port: int, workers: int, window_seconds: int, sweep_interval_s: float, retry_delay_s: int):
        self.port = port
        self.threads: list[Any] = []
        self.runtime: LambdaRuntime | None = None
        self.httpd: _Server | None = None
        self.cloud = LocalCloud(payment_window_seconds=window_seconds)
        try:
            self._start(workers, sweep_interval_s, retry_delay_s)
        except BaseException:  # a failed start or a signal while starting: end what was started
            self.stop()
            raise

    def _start(self, workers: int, sweep_interval_s: float, retry_delay_s: int) -> None:
        port = self.port
        self.env = self.cloud.start()
        # Provider fakes answer on this same server; the workers must know their URLs and keys before they start.
        # Secrets and keys the environment sets win; only what is missing is defaulted or generated.
        fakes = FakeProviders(f"http://127.0.0.1:{port}", ProviderKeys.from_env(os.environ))
        self.fakes = fake_statements.with_statements(fakes)  # daily reconciliation: statement fakes in front
        os.environ.update(provider_environment(fakes, os.environ))
        # Carrier fakes answer here too; secrets the environment sets win, the rest are local defaults.
        self.carriers = FakeCarriers.from_env(os.environ)
        os.environ.update({k: v for k, v in self.carriers.function_env(f"http://127.0.0.1:{port}").items()
                           if not os.environ.get(k)})
        self.runtime = runtime = LambdaRuntime(workers)
        runtime.warm_up()
        sqs = make_sqs_client(self.cloud.moto_url)
        self.threads = [
            QueuePoller(spec, self.cloud.queue_urls[spec.name], runtime.invoke, sqs, retry_delay_s)
            for spec in QUEUES
        ]
        self.threads.append(Schedule("expiry_sweeper", sweep_interval_s, runtime.invoke))
        for thread in self.threads:
            thread.start()
        self.sqs = sqs
        self.httpd = _Server(("127.0.0.1", port), self._handler_class())

    def _handler_class(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, fmt: str, *args: Any) -> None:  # access log on stderr, one line
                sys.stderr.write(f"{self.address_string()} {fmt % args}\n")

            def _respond(self, response: gateway.HttpResponse) -> None:
                self.send_response(response.status)
                for name, value in response.headers:
                    if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(response.body)))
                self.end_headers()
                self.wfile.write(response.body)

            def _dispatch(self) -> None:
                length = self.headers.get("Content-Length")
                if self.headers.get("Transfer-Encoding"):
                    self.close_connection = True
                    return self._respond(gateway.problem(411, "Length Required", "send a Content-Length"))
                try:
                    size = int(length or 0)
                except ValueError:
                    size = -1
                if size < 0 or size > MAX_REQUEST_BYTES:
                    self.close_connection = True
                    return self._respond(gateway.problem(413, "Payload Too Large", "request body too large"))
                body = self.rfile.read(size) if size else b""
                try:
                    response = server.route(self.command, self.path, list(self.headers.items()), body,
                                            self.client_address[0])
                except Exception:  # noqa: BLE001
                    log.exception("local server error")
                    response = gateway.problem(502, "Bad Gateway", "the local server failed; see its log")
                self._respond(response)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _dispatch

        return Handler

    def route(self, method: str, raw_path: str, headers: list[tuple[str, str]], body: bytes,
              source_ip: str) -> gateway.HttpResponse:
        path = raw_path.split("?", 1)[0]
        if path.startswith("/_fake/carriers/"):
            status, sent, payload = self.carriers.respond(method, raw_path, dict(headers), body)
            return gateway.HttpResponse(status, sent, payload)
        if path.startswith("/_fake/"):
            status, sent, payload = self.fakes.respond(method, raw_path, dict(headers), body)
            return gateway.HttpResponse(status, sent, payload)
        if path.startswith("/_local/"):
            # The pay page's button (curl -d sends the same content type, with JSON: that stays an API call).
            form = body == PAY_PAGE_FORM and any(
                k.lower() == "content-type" and v.startswith("application/x-www-form-urlencoded") for k, v in headers)
            return self.local_route(method, path, b"" if form else body, html=form)
        assert self.runtime is not None  # set before the server listens
        return gateway.handle(self.runtime.invoke, method, raw_path, headers, body, source_ip)

    def local_route(self, method: str, path: str, body: bytes = b"", html: bool = False) -> gateway.HttpResponse:
        """Developer helpers that exist only in the local run."""
        if method == "GET" and path == "/_local/health":
            return self.health()
        if method == "GET" and path == "/_local/resources":
            dynamodb_endpoint = self.cloud.dynamodb.endpoint_url if self.cloud.dynamodb else None
            return _json(200, {"aws_endpoint": self.cloud.moto_url, "dynamodb_endpoint": dynamodb_endpoint,
                               "queues": self.cloud.queue_urls, "dead_letter_queues": self.cloud.dlq_urls,
                               "state_machine_arn": self.cloud.state_machine_arn,
                               "courier_poll_state_machine_arn": self.cloud.courier_poll_state_machine_arn,
                               "label_bucket": "shop-labels-local"})
        if method == "GET" and path == "/_local/stats":
            counts = self.cloud.counter.snapshot() if self.cloud.counter else None
            return _json(200, {"dynamodb_calls": counts})
        if method == "GET" and path == "/_local/events":
            return _json(200, {"events": self.drain_events()})
        if method == "GET" and path == "/_local/outbox":
            return _json(200, {"messages": self.outbox()})
        if path.startswith("/_local/reconcile/"):  # daily reconciliation on demand
            return fake_statements.local_reconcile(self, method, path, body)
        carrier = _LOCAL_CARRIER.match(path)
        if method == "POST" and carrier:
            return self.local_carrier(carrier.group("number"), body)
        pay = _LOCAL_PAY.match(path)
        if method == "GET" and pay:  # the sandbox's pay_url, opened in a browser
            return _pay_page(pay.group("order_id"))
        if method == "POST" and pay:
            paid = self.local_pay(pay.group("order_id"), body)
            return _pay_page(pay.group("order_id"), paid) if html else paid
        return gateway.problem(404, "Not Found", f"no local route {method} {path}")

    def health(self) -> gateway.HttpResponse:
        """Each stand-in and whether it can serve: 503 when one cannot, "degraded" while a worker is replaced."""
        assert self.runtime is not None
        dynamodb = self.cloud.dynamodb
        components: dict[str, Any] = {
            "lambda_workers": self.runtime.status(),
            "dynamodb_local": {"status": "ok" if dynamodb and dynamodb.process and dynamodb.process.poll() is None
                               and _listening(dynamodb.port) else "down"},
            "moto": {"status": "ok" if _listening(int(self.cloud.moto_url.rsplit(":", 1)[1])) else "down"},
        }
        for thread in self.threads:
            name = f"poller:{thread.spec.name}" if isinstance(thread, QueuePoller) else f"schedule:{thread.function}"
            components[name] = thread.status()
        states = {c["status"] for c in components.values()}
        overall = "down" if "down" in states else "degraded" if "degraded" in states else "ok"
        return _json(503 if overall == "down" else 200, {"status": overall, "components": components})

    def local_pay(self, order_id: str, body: bytes) -> gateway.HttpResponse:
        """The order's provider 'pays' it: its own signed webhook goes to /webhooks/{provider}.

        Optional JSON body: {"amount": {"amount": 1, "currency": "EUR"}} to pay a wrong amount,
        {"event_id": "..."} to send the same event twice."""
        from shop.adapters.wiring import default_ports
        from shop.domain.money import Money

        order = default_ports().store.get_order(order_id)
        if order is None:
            return gateway.problem(404, "Not found", f"no order {order_id}", slug="not-found")
        try:
            options = json.loads(body) if body else {}
            if not isinstance(options, dict):
                raise TypeError("not an object")
            amount = Money(**options["amount"]) if "amount" in options else order.total
        except (ValueError, TypeError, KeyError):
            return gateway.problem(422, "Invalid request", 'body must be JSON like {"amount": {"amount": 1999, '
                                   '"currency": "EUR"}}', slug="invalid-request")
        self.fakes.mark_paid(order_id, amount)
        headers, payload = signed_webhook(self.fakes.keys, order.payment_provider, order_id, amount,
                                          event_id=options.get("event_id"),
                                          payment_id=self.fakes.payment_id(order.payment_provider, order_id))
        answer = self.route("POST", f"/webhooks/{order.payment_provider}", headers, payload, "127.0.0.1")
        return _json(200 if answer.status < 300 else answer.status, {
            "order_id": order_id, "provider": order.payment_provider,
            "webhook": {"status": answer.status, "body": answer.body.decode(errors="replace")}})

    def outbox(self) -> list[dict[str, Any]]:
        """Every notification sent: e-mail and SMS as moto's SES and SNS received them, the operators' topic, and
        the in-app messages (a scan of DynamoDB Local: fine for a developer's look, never done deployed)."""
        from shop.adapters import items

        sent: list[dict[str, Any]] = list(self.cloud.outbox())
        db = self.cloud.client("dynamodb")
        request: dict[str, Any] = {"TableName": TABLE_NAME, "FilterExpression": "entity = :inbox",
                                   "ExpressionAttributeValues": {":inbox": {"S": "INBOX"}}}
        while True:
            got = db.scan(**request)
            for raw in got.get("Items", []):
                item = items.decode(raw)
                sent.append({"channel": "in_app", "message_id": item.get("notification_id"),
                             "to": item["pk"].removeprefix("INBOX#"), "subject": item.get("subject"),
                             "body": item.get("body"), "type": item.get("type"), "created_at": item.get("created_at")})
            if "LastEvaluatedKey" not in got:
                return sent
            request["ExclusiveStartKey"] = got["LastEvaluatedKey"]

    def local_carrier(self, number: str, body: bytes) -> gateway.HttpResponse:
        """The parcel's carrier records a scan with `status` and pushes it, signed, to /webhooks/carriers/{carrier}
        (as a subscription callback would): the order sees it within seconds. Body {"status": "delivered"}
        (any parcel status but stale, or "refused"), optional "description"."""
        try:
            options = json.loads(body) if body else {}
            status = options["status"]
            description = str(options.get("description") or "")[:200]
            if status not in LOCAL_STATUSES:
                raise ValueError(status)
        except (ValueError, TypeError, KeyError):
            return gateway.problem(422, "Invalid request", 'body must be JSON like {"status": "delivered"}; statuses: '
                                   + ", ".join(sorted(LOCAL_STATUSES)), slug="invalid-request")
        push = self.carriers.advance(number, status, description)
        if push is None:
            return gateway.problem(404, "Not found", f"no parcel {number} at the local carriers", slug="not-found")
        carrier, callback_path, headers, payload = push
        answer = self.route("POST", callback_path, headers, payload, "127.0.0.1")
        return _json(200 if answer.status < 300 else answer.status, {
            "tracking_number": number, "carrier": carrier, "status": status,
            "callback": {"status": answer.status, "body": answer.body.decode(errors="replace")}})

    def drain_events(self) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        while True:
            got = self.sqs.receive_message(QueueUrl=self.cloud.events_tap_url, MaxNumberOfMessages=10,
                                           WaitTimeSeconds=0)
            messages = got.get("Messages", [])
            if not messages:
                return events
            for m in messages:
                events.append(json.loads(m["Body"]))
                self.sqs.delete_message(QueueUrl=self.cloud.events_tap_url, ReceiptHandle=m["ReceiptHandle"])

    def serve(self) -> None:
        print(f"Shop API listening on http://127.0.0.1:{self.port} (Ctrl-C stops it)", flush=True)
        assert self.httpd is not None
        self.httpd.serve_forever()

    def stop(self) -> None:
        """End every thread and child process; safe to call twice and on a half-started server."""
        for thread in self.threads:
            thread.stopping.set()
        steps = [self.httpd.server_close if self.httpd else None, self.runtime.close if self.runtime else None,
                 self.cloud.stop]
        for step in steps:
            try:
                if step:
                    step()
            except Exception:  # noqa: BLE001 - the next stand-in must still be stopped
                log.exception("stopping the local server")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # a flash sale opens many connections at once


def _pay_page(order_id: str, paid: gateway.HttpResponse | None = None) -> gateway.HttpResponse:
    """The sandbox provider's pay page: one button that pays the order (a form POST to the same URL)."""
    safe = html_escape(order_id)
    if paid is None:
        main = (f'<p>Order <code>{safe}</code></p><form method="post"><input type="hidden" name="pay_page" '
                'value="1"><button type="submit">Pay</button></form>'
                "<p>The order's payment provider sends its signed webhook, as a real payment would.</p>")
    else:
        outcome = "Paid" if paid.status == 200 else f"Not paid ({paid.status})"
        main = f"<p>{outcome}: order <code>{safe}</code></p><pre>{html_escape(paid.body.decode())}</pre>"
    page = (f"<!doctype html><html><head><meta charset=\"utf-8\"><title>Sandbox payment</title></head>"
            f"<body><h1>Sandbox payment</h1>{main}</body></html>")
    return gateway.HttpResponse(200 if paid is None else paid.status,
                                [("Content-Type", "text/html; charset=utf-8")], page.encode())


def _listening(port: int | None) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port or 0), timeout=1):
            return True
    except OSError:
        return False


def _json(status: int, body: Any, content_type: str = "application/json") -> gateway.HttpResponse:
    return gateway.HttpResponse(status, [("Content-Type", content_type)], json.dumps(body).encode())


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # the moto server's access log
    serving = threading.Event()
    holder: list[LocalServer] = []

    def shutdown(signum: int, _frame: Any) -> None:
        # Ctrl-C, kill (SIGTERM) and a closed terminal (SIGHUP) all stop everything the server started.
        log.info("signal %s: stopping", signal.Signals(signum).name)
        if not serving.is_set():
            raise KeyboardInterrupt  # still starting: LocalServer ends what it has started
        httpd = holder[0].httpd
        if httpd is not None:
            threading.Thread(target=httpd.shutdown, daemon=True).start()

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, shutdown)
    try:
        server = LocalServer(
        port=int(os.environ.get("PORT", "8000")),
        workers=int(os.environ.get("LOCAL_LAMBDA_WORKERS", "4")),
        window_seconds=int(os.environ.get("PAYMENT_WINDOW_SECONDS", "900")),
        sweep_interval_s=_env_int("SWEEP_INTERVAL_SECONDS", SWEEP_INTERVAL_SECONDS),
        retry_delay_s=int(os.environ.get("LOCAL_SQS_RETRY_DELAY_SECONDS", "2")),
        )
    except KeyboardInterrupt:
        print("stopped while starting", flush=True)
        return
    holder.append(server)
    atexit.register(server.stop)  # an unexpected exit still ends the children
    serving.set()
    try:
        server.serve()
    finally:
        server.stop()
        print("stopped", flush=True)


if __name__ == "__main__":
    main()
