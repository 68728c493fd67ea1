# The VAE digit service and its trainer. Targets (`docker build --target NAME`):
#   serve      (default) the service on CPU TensorFlow, without the training stack
#   train      vae-train on CPU TensorFlow: the serving dependencies plus the training extras
#   serve-gpu  the service on tensorflow[and-cuda] (NVIDIA Container Toolkit on the host)
#   train-gpu  vae-train on tensorflow[and-cuda]
# Layers, bottom to top: the Python base, the dependencies (keyed by the requirement lists
# generated from pyproject.toml, not by the code), the training extras (train targets), then
# the project itself as a wheel: a code change rebuilds and ships a layer of a few MB.

FROM python:3.11-slim AS base
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="vae-digits" \
      org.opencontainers.image.description="A variational autoencoder trained on MNIST, served over HTTP" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.base.name="docker.io/library/python:3.11-slim"
# Paths a read-only root file system leaves writable: /tmp (a tmpfs), /models, /data (volumes).
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TF_CPP_MIN_LOG_LEVEL=2 \
    KERAS_HOME=/tmp/keras \
    MPLCONFIGDIR=/tmp/matplotlib \
    VAE_MODEL_DIR=/models \
    VAE_DATA_DIR=/data \
    VAE_HOST=0.0.0.0 \
    VAE_PORT=8000
# A fixed non-root uid (the Kubernetes manifests' runAsUser); /models and /data belong to it, so
# a new named volume mounted there is writable by it.
RUN useradd --uid 10001 --user-group --create-home --shell /usr/sbin/nologin vae \
 && mkdir -p /models /data \
 && chown vae:vae /models /data

# The requirement lists of each image, from pyproject.toml's extras.
FROM base AS requirements
WORKDIR /src
COPY pyproject.toml deploy/requirements.py ./
RUN python requirements.py pyproject.toml serve cpu > serve-cpu.txt \
 && python requirements.py pyproject.toml serve gpu > serve-gpu.txt \
 && python requirements.py pyproject.toml train > train.txt

# The project as a wheel, built apart so that the dependency layers never see the code.
FROM base AS wheel
WORKDIR /src
COPY pyproject.toml README.md ./
COPY vae_contract ./vae_contract
COPY app ./app
COPY training ./training
RUN pip wheel --quiet --no-deps --wheel-dir /dist .

# Serving dependencies. TensorFlow's C++ headers (430 MB) only serve to compile custom ops.
FROM base AS serve-deps
COPY --from=requirements /src/serve-cpu.txt /tmp/requirements.txt
RUN python -m venv /opt/venv \
 && pip install --quiet -r /tmp/requirements.txt \
 && rm -rf /opt/venv/lib/python3.11/site-packages/tensorflow/include /tmp/requirements.txt

FROM base AS serve-gpu-deps
COPY --from=requirements /src/serve-gpu.txt /tmp/requirements.txt
RUN python -m venv /opt/venv \
 && pip install --quiet -r /tmp/requirements.txt \
 && rm -rf /opt/venv/lib/python3.11/site-packages/tensorflow/include /tmp/requirements.txt

# Training adds its extras on top of the serving layer, which the two images then share.
FROM serve-deps AS train-deps
COPY --from=requirements /src/train.txt /tmp/requirements.txt
RUN pip install --quiet -r /tmp/requirements.txt && rm /tmp/requirements.txt

FROM serve-gpu-deps AS train-gpu-deps
COPY --from=requirements /src/train.txt /tmp/requirements.txt
RUN pip install --quiet -r /tmp/requirements.txt && rm /tmp/requirements.txt

FROM train-gpu-deps AS train-gpu
COPY --from=wheel /dist /tmp/dist
RUN pip install --quiet --no-deps /tmp/dist/*.whl && rm -rf /tmp/dist
USER vae
WORKDIR /home/vae
# One-shot: trains only when /models/vae/ holds no model yet, and continues an interrupted run.
CMD ["vae-train", "--if-missing", "--resume", "--model-dir", "/models", "--data-dir", "/data"]

FROM train-deps AS train
COPY --from=wheel /dist /tmp/dist
RUN pip install --quiet --no-deps /tmp/dist/*.whl && rm -rf /tmp/dist
USER vae
WORKDIR /home/vae
CMD ["vae-train", "--if-missing", "--resume", "--model-dir", "/models", "--data-dir", "/data"]

FROM serve-gpu-deps AS serve-gpu
COPY --from=wheel /dist /tmp/dist
RUN pip install --quiet --no-deps /tmp/dist/*.whl && rm -rf /tmp/dist
USER vae
WORKDIR /home/vae
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(f\"http://127.0.0.1:{os.environ.get('VAE_PORT', '8000')}/readyz\", timeout=4)"]
CMD ["vae-serve"]

# Last, so that a plain `docker build .` gives the CPU serving image.
FROM serve-deps AS serve
COPY --from=wheel /dist /tmp/dist
RUN pip install --quiet --no-deps /tmp/dist/*.whl && rm -rf /tmp/dist
USER vae
WORKDIR /home/vae
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(f\"http://127.0.0.1:{os.environ.get('VAE_PORT', '8000')}/readyz\", timeout=4)"]
CMD ["vae-serve"]
