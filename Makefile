# Digit Reader: `make help` lists the targets. Every target installs what it needs (.venv) first.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

# Deploy settings (override on the command line: make deploy PI=pi@raspberrypi.local)
PI ?=
PI_PORT ?= 22
PI_KEY ?=
PI_DIR ?= /opt/digit-reader
export PI PI_PORT PI_KEY PI_DIR

.PHONY: help setup data train train-full train-seed gpu-bundle convert convert-seed evaluate frames demo selftest test lint typecheck \
        bench bench-quick deploy deploy-model rollback provision test-arm64 clean

help: ## List the targets
	@echo "Digit Reader — make targets:"
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | \
	  awk 'BEGIN {FS = ":.*## "}; {printf "  %-14s %s\n", $$1, $$2}'
	@echo "Fresh machine: 'make demo' runs the reader on the bundled frames; 'make test' runs the tests."

setup: $(STAMP) ## Create .venv with host, device and test dependencies

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
	  { echo "Python 3.11 or newer is needed (found $$($(PYTHON) --version)); set PYTHON=python3.11"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[device,host,test]'
	touch $@

data: $(STAMP) ## Download and verify MNIST into data/mnist/
	$(PY) -m host.mnist

train: data ## Train the default CNN -> models/digits.keras (interrupted: rerun to resume)
	$(PY) -m host.train --backup build/train.backup

train-full: data ## The shipped model's recipe: 4x the camera crops, 40 epochs (GPU: minutes; 2-core CPU: ~2 h; rerun to resume)
	$(PY) -m host.train --camera-frames 20000 --epochs 40 --mnist-repeat 2 --backup build/train-full.backup

train-seed: data ## Train the tutorial's seed CNN -> models/seed.keras
	$(PY) -m host.train --arch seed --out models/seed.keras

gpu-bundle: data $(STAMP) ## Keras wheels + MNIST for training on an offline GPU machine -> build/gpu (host/gpu/train.sh there)
	PYTHON=$(PY) host/gpu/bundle.sh build/gpu

convert: $(STAMP) ## Convert to a full-integer LiteRT model + contract (models/digits.tflite, .json)
	$(PY) -m host.convert --float

convert-seed: $(STAMP) ## Convert the seed network too (models/seed.tflite), for the report and bench
	$(PY) -m host.convert --keras models/seed.keras --out models/seed.tflite --float

evaluate: data ## Evaluate Keras vs int8 LiteRT on MNIST test; write reports/
	$(PY) -m host.evaluate

frames: data ## Render recorded test frames (tests/frames/) from MNIST test digits
	$(PY) -m host.frames --out tests/frames --count 40 --seed 7

demo: $(STAMP) ## Run the daemon over the bundled frames with mock LEDs (ends by itself)
	GPIOZERO_PIN_FACTORY=mock $(PY) -m device.daemon --config device/demo.toml

selftest: $(STAMP) ## Health check: model vs manifest, bundled image read correctly
	$(PY) -m device.selftest

lint: $(STAMP) ## ruff lint + format check, mypy on device/
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

typecheck: lint

test: data lint ## Lint, type-check and run the whole test suite
	$(PY) -m pytest

bench: data ## Benchmarks side by side -> reports/bench.md
	$(PY) -m host.bench

bench-quick: data ## Smoke run of the benchmark (a handful of frames, seconds)
	$(PY) -m host.bench --quick --out reports/tmp

deploy: $(STAMP) ## Deploy to a Pi: make deploy PI=user@host [PI_PORT= PI_KEY= PI_DIR=]
	host/deploy/deploy.sh deploy

deploy-model: $(STAMP) ## Update only the model on the Pi (same check-then-switch)
	host/deploy/deploy.sh deploy-model

rollback: ## Switch the Pi back to the previous release
	host/deploy/deploy.sh rollback

provision: ## First-time setup of a fresh Raspberry Pi OS (sudo over ssh)
	host/deploy/provision.sh

test-arm64: $(STAMP) ## Run the device tests in an arm64 Debian rootfs under qemu-user
	host/arm64/run.sh

clean: ## Remove caches and build outputs (keeps data/ and .venv)
	rm -rf .pytest_cache .ruff_cache .mypy_cache reports/tmp
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
