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
SWAGGER_UI_VERSION := 5.35.0
REDOC_VERSION := 2.5.4
VENDOR := app/static/vendor
CODE := app training vae_contract tests benchmarks deploy

export VAE_DATA_DIR := $(abspath $(DATA_DIR))
export VAE_MODEL_DIR := $(abspath $(MODEL_DIR))
export TF_CPP_MIN_LOG_LEVEL ?= 2

.DEFAULT_GOAL := help
.PHONY: help install install-dev data model train run serve test test-fast lint eval classifier \
	bench-serve bench-train bench-soak docker docker-gpu compose-up compose-down clean browser \
	containers screenshots vendor-docs

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

train: data ## Train a new model version (PRESET=default|seed|default-v1|benchmark|tiny; minutes on a CPU, benchmark 2 h)
	$(BIN)/vae-train --preset $(PRESET) --model-dir $(MODEL_DIR) --data-dir $(DATA_DIR)

run: model ## Train if needed, then serve on http://127.0.0.1:8000 (docs at /docs)
	@echo "Serving on http://$(HOST):$(PORT) - API docs at http://$(HOST):$(PORT)/docs"
	$(BIN)/vae-serve --host $(HOST) --port $(PORT)

serve: install ## Serve the newest model without checking for one first
	$(BIN)/vae-serve --host $(HOST) --port $(PORT)

test: install-dev data browser containers lint ## Lint, type check, then the whole test suite (real MNIST, real servers)
	$(BIN)/python -m pytest

test-fast: install-dev ## The fast tier only (seconds: routing, validation, images, maths; no TensorFlow)
	$(BIN)/python -m pytest tests/unit

# The browser tests drive Debian's Chromium with Playwright (a dev dependency; it never
# downloads a browser). Installed when missing and possible; else those tests are skipped.
browser: ## Install Debian's Chromium for the browser tests, if missing
	@if command -v chromium >/dev/null; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then APT="apt-get"; \
	elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then APT="sudo -n apt-get"; \
	else echo "Chromium is missing and cannot be installed here (not root, no sudo): the" \
	  "browser tests will be skipped. Install it with: apt-get install chromium"; exit 0; fi; \
	echo "Installing Chromium (Debian's package) for the browser tests"; \
	($$APT update -qq && DEBIAN_FRONTEND=noninteractive $$APT install -y -qq chromium) \
	  || echo "Installing Chromium failed: the browser tests will be skipped"

# The balancer's tests run the real nginx container with podman. Where this machine has the
# workplace's container setup (../shared/tools/container-setup: podman and local stand-ins for
# the base images) and root, it is run when podman or the image is missing; else those tests
# are skipped and say why.
CONTAINER_SETUP ?= ../shared/tools/container-setup
containers: ## Set podman and the nginx image up for the container tests, if missing and possible
	@if command -v podman >/dev/null && podman image exists docker.io/library/nginx:1.27 \
	  && podman image exists docker.io/library/python:3.11-slim; then exit 0; fi; \
	if [ -x "$(CONTAINER_SETUP)" ] && [ "$$(id -u)" = 0 ]; then \
	  "$(CONTAINER_SETUP)" || echo "The container setup failed: the container tests will be skipped"; \
	else echo "No podman, and no $(CONTAINER_SETUP) to set it up (or not root): the" \
	  "container tests will be skipped"; fi

screenshots: model browser ## Refresh the explorer's screenshots in docs/images (and its latency)
	$(BIN)/python -m tests.support.browser --model-dir $(MODEL_DIR) --out docs/images

vendor-docs: ## Fetch the pinned Swagger UI and ReDoc files for /docs and /redoc (npm pack)
	@tmp=$$(mktemp -d) && cd $$tmp \
	  && npm pack --silent swagger-ui-dist@$(SWAGGER_UI_VERSION) redoc@$(REDOC_VERSION) \
	  && mkdir s r && tar xzf swagger-ui-dist-*.tgz -C s && tar xzf redoc-*.tgz -C r \
	  && cd - >/dev/null && mkdir -p $(VENDOR)/swagger-ui $(VENDOR)/redoc \
	  && cp $$tmp/s/package/swagger-ui-bundle.js $$tmp/s/package/swagger-ui.css \
	    $$tmp/s/package/swagger-ui-bundle.js.LICENSE.txt $$tmp/s/package/LICENSE \
	    $$tmp/s/package/NOTICE $(VENDOR)/swagger-ui/ \
	  && cp $$tmp/r/package/bundles/redoc.standalone.js \
	    $$tmp/r/package/bundles/redoc.standalone.js.LICENSE.txt $$tmp/r/package/LICENSE \
	    $(VENDOR)/redoc/ \
	  && rm -rf $$tmp && cd $(VENDOR) && sha256sum */*.js */*.css

lint: install-dev ## Ruff lint and format checks, import layers and cycles, mypy on the packages
	$(BIN)/ruff check $(CODE)
	$(BIN)/ruff format --check $(CODE)
	$(BIN)/lint-imports --no-cache
	$(BIN)/mypy app training vae_contract

eval: install ## Evaluate the newest model again (figures and pictures into runs/eval/)
	$(BIN)/vae-eval --model-dir $(MODEL_DIR) --data-dir $(DATA_DIR) --output runs/eval

classifier: data ## Retrain the evaluation classifier shipped in training/assets/
	$(BIN)/python -m training.classifier --data-dir $(DATA_DIR)

bench-serve: install-dev ## Benchmark the service beside bare FastAPI, LitServe and the naive app, like for like
	$(BIN)/python benchmarks/serve_bench.py --model-dir $(MODEL_DIR)

bench-soak: install-dev ## Soak: 100,000 mixed requests, memory growth < 100 MB (LEAK=2048: the control)
	$(BIN)/python -m benchmarks.soak $(if $(LEAK),--leak-bytes $(LEAK))

bench-train: data ## Train seed, default-v1 and default side by side; print the table and targets, refresh docs/images
	$(BIN)/python benchmarks/train_bench.py --data-dir $(DATA_DIR) --pictures docs/images $(BENCH_ARGS)

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
