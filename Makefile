# Everything a newcomer needs: `make run` serves the API locally, `make test` runs the suite.
# Each target installs what it needs first (Python venv, DynamoDB Local, the CDK CLI).

# The Python the functions run on in Lambda (infra/runtime.py; tests/deploy checks both agree): the tests run on
# it too. Found under pyenv or on PATH; python3 otherwise. When the venv was built with another version, the next
# `make` rebuilds it.
LAMBDA_PYTHON := 3.13
PYTHON ?= $(firstword $(wildcard $(HOME)/.pyenv/versions/$(LAMBDA_PYTHON).*/bin/python$(LAMBDA_PYTHON)) \
                      $(shell command -v python$(LAMBDA_PYTHON) 2>/dev/null) python3)
VENV := .venv
PY := $(VENV)/bin/python
DDB_JAR := .local/dynamodb/DynamoDBLocal.jar
PORT ?= 8000
export PORT
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := 1
export CDK_DISABLE_VERSION_CHECK := 1

.PHONY: install run test bench soak mutate synth deploy layer clean

python_version = $(shell $(1) -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)
VENV_STALE := $(if $(wildcard $(PY)),$(filter-out $(call python_version,$(PYTHON)),$(call python_version,$(PY))),)
.PHONY: venv-rebuild
$(VENV)/.installed: requirements.txt requirements-dev.txt $(if $(VENV_STALE),venv-rebuild,)
	$(PYTHON) -m venv $(if $(VENV_STALE),--clear,) $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

$(DDB_JAR): scripts/install-dynamodb-local.sh
	bash scripts/install-dynamodb-local.sh

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

install: $(VENV)/.installed $(DDB_JAR)

run: install
	$(PY) -m localrun

# The static gates first (configured in pyproject.toml): a lint or type finding fails the run before the tests.
test: install
	$(PY) -m ruff check functions localrun infra tests/fakes tests/services_contract.py
	$(PY) -m mypy
	$(PY) -m pytest

bench: install
	$(PY) bench/flash_sale.py
	BENCH_THREADS=1 BENCH_ATTEMPTS=100 BENCH_STOCK=1000 $(PY) bench/flash_sale.py  # uncontended: calls per order
	$(PY) bench/load_without_loss.py
	$(PY) bench/cold_start.py  # handler import time beside the boto3 floor (fresh interpreters)
	$(PY) bench/hot_sku.py  # one hot SKU: place_order beside the engine's floor, shards, sell-out

soak: install
	SOAK=1 FUZZ_EXAMPLES=100 $(PY) -m pytest -s --timeout 3600 tests/ddblocal/test_invariants_stateful.py tests/e2e/test_fuzz_api.py

# Mutation testing of domain/ and the payment verification and parsing code (scripts/mutate.py, README "Mutation
# testing"): slow, so not part of `make test`. Prints the score per module and every surviving mutant.
# MUTATE_ARGS narrows it while iterating, e.g. MUTATE_ARGS="--only domain/stock.py --tests tests/unit".
MUTATE_ARGS ?=
mutate: install
	nice -n 10 $(PY) scripts/mutate.py $(MUTATE_ARGS)

# Offline: synthesizes without the dependency layer when it is not built (a deploy never does).
synth: $(VENV)/.installed node_modules/.installed
	npx cdk synth --quiet --no-notices -c allow_empty_dependency_layer=true

# The dependency layer from requirements-layer.lock, byte-identical for the same lock (scripts/build_layer.py).
layer: $(VENV)/.installed
	$(PY) scripts/build_layer.py --out build/layer --lock requirements-layer.lock

# `make deploy CI=1` (or CI=true, which CI systems set themselves) deploys without the approval prompt for
# IAM and security-group changes. CDK_DEPLOY_ARGS passes anything else, e.g. CDK_DEPLOY_ARGS="-c alarm_email=x".
# STAGE=prod deploys the stack shop-prod (default: the `stage` in cdk.json, dev).
CDK_APPROVAL := $(if $(filter 1 true yes,$(CI)),--require-approval never,)
CDK_STAGE := $(if $(STAGE),-c stage=$(STAGE),)
CDK_DEPLOY_ARGS ?=
deploy: $(VENV)/.installed node_modules/.installed layer
	npx cdk deploy --no-notices $(CDK_APPROVAL) $(CDK_STAGE) $(CDK_DEPLOY_ARGS)

clean:
	rm -rf $(VENV) .local node_modules cdk.out build .pytest_cache .hypothesis .mypy_cache .ruff_cache
