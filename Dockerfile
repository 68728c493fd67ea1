# syntax=docker/dockerfile:1
# The VAE digit service: CPU TensorFlow by default; GPU build: --build-arg EXTRAS=gpu
FROM python:3.11-slim AS build
ARG EXTRAS=""
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# Dependencies first, in a layer of their own (installed through empty packages), so that a
# change to the code rebuilds in seconds. TensorFlow's C++ headers (430 MB) only serve to
# compile custom ops: not needed to run.
COPY pyproject.toml ./
RUN mkdir app training && touch README.md app/__init__.py training/__init__.py \
 && pip install --upgrade pip \
 && pip install ".${EXTRAS:+[$EXTRAS]}" \
 && pip uninstall --yes vae-digits \
 && rm -rf README.md app training /opt/venv/lib/python3.11/site-packages/tensorflow/include
COPY README.md ./
COPY app ./app
COPY training ./training
RUN pip install --no-deps .

FROM python:3.11-slim
# Only the installed venv is carried over: no sources, caches or build tools.
COPY --from=build /opt/venv /opt/venv
RUN useradd --create-home --uid 10001 vae \
 && mkdir -p /models /data \
 && chown vae:vae /models /data
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    TF_CPP_MIN_LOG_LEVEL=2 \
    MPLCONFIGDIR=/tmp/matplotlib \
    VAE_MODEL_DIR=/models \
    VAE_DATA_DIR=/data \
    VAE_HOST=0.0.0.0 \
    VAE_PORT=8000
USER vae
WORKDIR /home/vae
VOLUME ["/models"]
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(f\"http://127.0.0.1:{os.environ.get('VAE_PORT', '8000')}/readyz\", timeout=4)"]
CMD ["vae-serve"]
