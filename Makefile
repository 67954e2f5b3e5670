# The README's two commands: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench bench-scale clean

$(STAMP): pyproject.toml examples/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]' -e examples
	touch $(STAMP)

## Run the example eval with the bridge on its embedded default, then show what it recorded.
demo: $(STAMP)
	INSPECT_OTEL_ENABLED=1 $(BIN)/inspect eval examples/bridge_demo.py \
		--model offline/careful,offline/hasty -T samples=5 --epochs 2 --log-dir logs
	$(BIN)/otel-bridge show

## Lint and type-check (the first half of `make test`).
lint: $(STAMP)
	$(BIN)/ruff check otel_bridge tests examples bench
	$(BIN)/mypy

## Lint, type-check and run the whole test suite (builds the collector, Jaeger and the Weave test server once).
test: lint
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python bench/run.py

## show / sync on 1k-, 10k- and 100k-sample span files cloned from a real eval (docs/performance.md).
SCALE_SIZES ?= 1000,10000,100000
SCALE_WEAVE_SIZES ?= 1000,10000
bench-scale: $(STAMP)
	$(BIN)/python bench/scale.py --sizes $(SCALE_SIZES) --weave-sizes $(SCALE_WEAVE_SIZES)

clean:
	rm -rf $(VENV) otel-spans logs wandb
