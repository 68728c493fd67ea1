# Two commands from a fresh clone: `make run` (train if needed, then serve) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
MODEL_DIR ?= model
DATA_DIR ?= data
PRESET ?= default
HOST ?= 127.0.0.1
PORT ?= 8000
IMAGE ?= vae-digits:latest

export VAE_DATA_DIR := $(abspath $(DATA_DIR))
export VAE_MODEL_DIR := $(abspath $(MODEL_DIR))
export TF_CPP_MIN_LOG_LEVEL ?= 2

.DEFAULT_GOAL := help
.PHONY: help install install-dev data model train run serve test lint eval classifier \
	bench-serve bench-train docker compose-up compose-down clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-13s %s\n", $$1, $$2}'

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	@touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@ $(VENV)/.installed

install: $(VENV)/.installed ## Create .venv and install the project

install-dev: $(VENV)/.installed-dev ## Create .venv with the dev extras (tests, lint)

data: $(VENV)/.installed ## Fetch and verify MNIST into data/ (once)
	$(BIN)/python -m training.data $(DATA_DIR)

model: data ## Train the default model unless model/vae/ already holds one
	$(BIN)/vae-train --if-missing --preset $(PRESET) --model-dir $(MODEL_DIR) --data-dir $(DATA_DIR)

train: data ## Train a new model version (PRESET=default|seed|tiny; takes minutes on a CPU)
	$(BIN)/vae-train --preset $(PRESET) --model-dir $(MODEL_DIR) --data-dir $(DATA_DIR)

run: model ## Train if needed, then serve on http://127.0.0.1:8000 (docs at /docs)
	@echo "Serving on http://$(HOST):$(PORT) - API docs at http://$(HOST):$(PORT)/docs"
	$(BIN)/vae-serve --host $(HOST) --port $(PORT)

serve: install ## Serve the newest model without checking for one first
	$(BIN)/vae-serve --host $(HOST) --port $(PORT)

test: install-dev data ## Run the whole test suite (trains a small model on real MNIST)
	$(BIN)/python -m pytest

lint: install-dev ## Ruff checks
	$(BIN)/ruff check app training tests benchmarks

eval: install ## Evaluate the newest model again (figures and pictures into runs/eval/)
	$(BIN)/vae-eval --model-dir $(MODEL_DIR) --data-dir $(DATA_DIR) --output runs/eval

classifier: data ## Retrain the evaluation classifier shipped in training/assets/
	$(BIN)/python -m training.classifier --data-dir $(DATA_DIR)

bench-serve: install-dev ## Benchmark the service against a bare FastAPI endpoint
	$(BIN)/python benchmarks/serve_bench.py --model-dir $(MODEL_DIR)

bench-train: data ## Train seed and default side by side; print the table, refresh docs/images
	$(BIN)/python benchmarks/train_bench.py --data-dir $(DATA_DIR) --pictures docs/images

docker: ## Build the Docker image (CPU; GPU: make docker DOCKER_BUILD_ARGS="--build-arg EXTRAS=gpu")
	docker build $(DOCKER_BUILD_ARGS) -t $(IMAGE) .

compose-up: ## Train (if needed) and serve with docker compose
	docker compose up -d

compose-down: ## Stop the compose services
	docker compose down

clean: ## Remove .venv, caches and training checkpoints/logs (keeps data/ and exported models)
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info $(MODEL_DIR)/checkpoints $(MODEL_DIR)/logs
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
