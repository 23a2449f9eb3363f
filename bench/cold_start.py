"""Cold start of the HTTP handlers beside the boto3 floor, measured in the same run. Prints JSON figures.

Each sample is a fresh interpreter (what a new Lambda execution environment starts with) given the
environment a deployed function has: tracing enabled as deployed (LAMBDA_TASK_ROOT set, no
POWERTOOLS_TRACE_DISABLED), a trace header, fake credentials and the stack's settings. No AWS call is made.

- floor: `import boto3; boto3.client("dynamodb")`, the least any function that talks to DynamoDB does.
- import: `importlib.import_module("<function>.handler")`, what Lambda's init phase runs.
- import + first request: the import, then one request through `lambda_handler` that needs no AWS call
  (GET of a path no function serves: 404 from the resolver). Whatever a handler defers past its import
  is paid here, so this figure shows work moved out of the init phase as well as work removed.

Floor and handlers are sampled in turn, round after round, so both see the same machine load; the figures
that matter are the ratios to the floor of the same run. Figures only: the exit status is non-zero only
when a sample fails.

Usage: make bench, or .venv/bin/python bench/cold_start.py  (env: COLD_START_RUNS, default 7)
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FUNCTIONS_DIR = ROOT / "functions"
sys.path[:0] = [str(FUNCTIONS_DIR)]
from shop.manifest import FUNCTIONS, QUEUES, ROUTES  # noqa: E402
from shop.settings import function_environment  # noqa: E402

RUNS = int(os.environ.get("COLD_START_RUNS", "7"))
TARGET_RATIO = 1.3  # issue 11: every HTTP handler imports in <= 1.3x the floor
FLOOR = 'import boto3; boto3.client("dynamodb")'
MARK = "COLD_START_SAMPLE "

# Run in the child. Times with perf_counter around the import only: interpreter start-up is the same for all.
CHILD = r"""
import importlib, json, sys, time
target = sys.argv[1]
t0 = time.perf_counter()
if target == "floor":
    exec(sys.argv[2])
    t1 = t2 = time.perf_counter()
else:
    module = importlib.import_module(target + ".handler")
    t1 = time.perf_counter()

    class Context:
        function_name = target
        function_version = "$LATEST"
        memory_limit_in_mb = 256
        invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:" + target
        aws_request_id = "c0ffee00-0000-4000-8000-000000000001"
        log_group_name = "/aws/lambda/" + target
        log_stream_name = "cold-start"
        def get_remaining_time_in_millis(self):
            return 10_000

    event = {"resource": "/{proxy+}", "path": "/cold-start-probe", "httpMethod": "GET", "headers": {},
             "multiValueHeaders": {}, "queryStringParameters": None, "multiValueQueryStringParameters": None,
             "pathParameters": {"proxy": "cold-start-probe"}, "stageVariables": None, "body": None,
             "isBase64Encoded": False,
             "requestContext": {"requestId": "probe", "stage": "v1", "httpMethod": "GET", "resourcePath": "/{proxy+}",
                                "path": "/v1/cold-start-probe", "identity": {"sourceIp": "192.0.2.1"}}}
    answer = module.lambda_handler(event, Context())
    t2 = time.perf_counter()
    if answer.get("statusCode") != 404:
        raise SystemExit(f"probe answered {answer.get('statusCode')}, expected 404")
print("COLD_START_SAMPLE " + json.dumps({"import_s": t1 - t0, "first_request_s": t2 - t1}))
"""


def http_functions() -> list[str]:
    """The functions API Gateway invokes, in manifest order."""
    return list(dict.fromkeys(route.function for route in ROUTES))


def lambda_env(function: str) -> dict[str, str]:
    """What the Lambda service and the stack (infra/stack.py) put in a function's environment; fake values."""
    region, account = "us-east-1", "123456789012"
    env = {
        # The Lambda service. LAMBDA_TASK_ROOT is what makes Powertools Tracer trace (outside Lambda it switches off).
        "LAMBDA_TASK_ROOT": str(FUNCTIONS_DIR), "AWS_LAMBDA_FUNCTION_NAME": function,
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(FUNCTIONS[function].memory_mb),
        "AWS_EXECUTION_ENV": "AWS_Lambda_python3.14", "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "AWS_REGION": region, "AWS_DEFAULT_REGION": region,
        "AWS_ACCESS_KEY_ID": "ASIAFAKECOLDSTART000", "AWS_SECRET_ACCESS_KEY": "fake-secret-for-cold-start-bench",
        "AWS_SESSION_TOKEN": "fake-session-token",
        "AWS_XRAY_DAEMON_ADDRESS": "127.0.0.1:2000", "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
        "_X_AMZN_TRACE_ID": "Root=1-67a0c0de-0123456789abcdef01234567;Parent=0123456789abcdef;Sampled=1",
        # Powertools' own (infra/stack.py POWERTOOLS_ENVIRONMENT) and the function's settings, as the stack sets
        # them from the manifest (shop.settings.function_environment), with fake resource names.
        "POWERTOOLS_SERVICE_NAME": function, "POWERTOOLS_METRICS_NAMESPACE": "shop", "LOG_LEVEL": "INFO",
        "POWERTOOLS_TRACER_CAPTURE_RESPONSE": "false",
        **function_environment(function, {
            "table_name": "ShopStack-Table-COLDSTART", "event_bus_name": "ShopStack-Bus",
            "state_machine_arn": f"arn:aws:states:{region}:{account}:stateMachine:PaymentWindow",
            **{spec.setting: f"https://sqs.{region}.amazonaws.com/{account}/{spec.name}" for spec in QUEUES},
            "payment_providers_enabled": "stripe,alipay,wechatpay", "payment_secret_prefix": "shop/payments/",
            "payment_secrets_source": "secretsmanager", "payment_webhook_base_url": "https://api.shop.example/v1"}),
        # The interpreter: functions/ is /var/task.
        # bench/lambda_runtime hides pyOpenSSL (a dev-only dependency), which Lambda does not have.
        "PYTHONPATH": f"{Path(__file__).resolve().parent / 'lambda_runtime'}:{FUNCTIONS_DIR}",
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8", "TZ": "UTC",
    }
    if "HOME" in os.environ:
        env["HOME"] = os.environ["HOME"]
    return env


def sample(target: str) -> dict[str, float]:
    """One fresh interpreter: the floor, or one handler."""
    env = lambda_env("create_order" if target == "floor" else target)
    args = [sys.executable, "-c", CHILD, target] + ([FLOOR] if target == "floor" else [])
    done = subprocess.run(args, cwd=FUNCTIONS_DIR, env=env, capture_output=True, text=True, timeout=120)
    lines = [line for line in done.stdout.splitlines() if line.startswith(MARK)]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"{target}: exit {done.returncode}\n{done.stderr[-2000:]}")
    return json.loads(lines[-1][len(MARK):])


def main() -> int:
    targets = ["floor", *http_functions()]
    for target in targets:  # compiles bytecode and warms the file cache; not counted
        sample(target)
    samples: dict[str, list[dict[str, float]]] = {t: [] for t in targets}
    for _ in range(RUNS):
        for target in targets:
            samples[target].append(sample(target))

    def median(target: str, *keys: str) -> float:
        return statistics.median(sum(s[k] for k in keys) for s in samples[target])

    floor = median("floor", "import_s")
    handlers = {}
    for name in targets[1:]:
        imported, first = median(name, "import_s"), median(name, "import_s", "first_request_s")
        handlers[name] = {
            "import_median_s": round(imported, 4),
            "import_ratio": round(imported / floor, 2),
            "import_plus_first_request_median_s": round(first, 4),
            "import_plus_first_request_ratio": round(first / floor, 2),
        }
    print(json.dumps({
        "benchmark": "cold_start",
        "runs": RUNS,
        "python": platform.python_version(),
        "floor": {"code": FLOOR, "median_s": round(floor, 4)},
        "handlers": handlers,
        "target_import_ratio": TARGET_RATIO,
        "max_import_ratio": max(h["import_ratio"] for h in handlers.values()),
        "handlers_over_target": sorted(n for n, h in handlers.items() if h["import_ratio"] > TARGET_RATIO),
    }, indent=2))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (RuntimeError, subprocess.TimeoutExpired) as error:
        print(f"cold_start: {error}", file=sys.stderr)
        sys.exit(1)
