# Two commands from a fresh clone: `make run` (train if needed, then serve) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
MODEL_DIR ?= model
DATA_DIR ?= data
PRESET ?= default
HOST ?= 127.0.0.1
PORT ?= 8000
# TensorFlow flavour of .venv: cpu (tensorflow-cpu) or gpu (tensorflow[and-cuda], Linux + NVIDIA)
TF ?= cpu
EXTRAS := serve,train,$(TF)
IMAGE ?= vae-digits
REPLICAS ?= 1

export VAE_DATA_DIR := $(abspath $(DATA_DIR))
export VAE_MODEL_DIR := $(abspath $(MODEL_DIR))
export TF_CPP_MIN_LOG_LEVEL ?= 2

.DEFAULT_GOAL := help
.PHONY: help install install-dev data model train run serve test lint eval classifier \
	bench-serve bench-train docker docker-gpu compose-up compose-down clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-13s %s\n", $$1, $$2}'

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# tensorflow, tensorflow-cpu and tensorflow[and-cuda] install the same `tensorflow` package:
# before installing another flavour into an existing .venv, take the previous one out.
$(VENV)/.tf-$(TF): | $(BIN)/python
	$(BIN)/pip uninstall --yes --quiet tensorflow tensorflow-cpu 2>/dev/null || true
	@rm -f $(VENV)/.tf-* && touch $@

$(VENV)/.installed: pyproject.toml $(VENV)/.tf-$(TF) | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[$(EXTRAS)]'
	@touch $@

$(VENV)/.installed-dev: pyproject.toml $(VENV)/.tf-$(TF) | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[$(EXTRAS),dev]'
	@touch $@ $(VENV)/.installed

install: $(VENV)/.installed ## Create .venv and install the project (TF=gpu: CUDA TensorFlow)

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

eval: install ## Evaluate the newest model again (report, pictures, metadata)
	$(BIN)/vae-eval --model-dir $(MODEL_DIR) --data-dir $(DATA_DIR)

classifier: data ## Retrain the evaluation classifier shipped in training/assets/
	$(BIN)/python -m training.classifier --data-dir $(DATA_DIR)

bench-serve: install-dev ## Benchmark the service against a bare FastAPI endpoint
	$(BIN)/python benchmarks/serve_bench.py --model-dir $(MODEL_DIR)

bench-train: data ## Train seed and default side by side; print the table, refresh docs/images
	$(BIN)/python benchmarks/train_bench.py --data-dir $(DATA_DIR) --pictures docs/images

docker: ## Build the serving and training images (CPU TensorFlow)
	docker build --target serve -t $(IMAGE):latest .
	docker build --target train -t $(IMAGE)-train:latest .

docker-gpu: ## Build the GPU serving and training images (tensorflow[and-cuda])
	docker build --target serve-gpu -t $(IMAGE):gpu .
	docker build --target train-gpu -t $(IMAGE)-train:gpu .

compose-up: ## Train if needed, then serve behind nginx on 127.0.0.1:8000 (REPLICAS=N replicas)
	docker compose up -d --build --scale api=$(REPLICAS)

compose-down: ## Stop and remove the compose services (the models and mnist volumes stay)
	docker compose down

clean: ## Remove .venv, caches and training checkpoints/logs (keeps data/ and exported models)
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info $(MODEL_DIR)/checkpoints $(MODEL_DIR)/logs
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
