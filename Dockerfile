# One image for every process of the service; the first argument picks it (deploy/docker/entrypoint.sh):
#   docker build -t taskmarket .
#   docker run -p 8000:8000 --env-file taskmarket.env taskmarket              # API (uvicorn)
#   docker run --env-file taskmarket.env taskmarket worker                     # job worker
#   docker run --env-file taskmarket.env taskmarket scheduler                  # job scheduler
#   docker run --env-file taskmarket.env taskmarket migrate                    # migrations, then exit
# Settings are environment variables (README, "Settings"); deploy/compose.yaml runs the whole stack.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- builder: the locked dependencies and the project in /opt/venv --------------------------------
FROM ${PYTHON_IMAGE} AS builder
ARG UV_VERSION=0.13.9
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_NO_CACHE=1 \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/opt/venv \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
RUN pip install "uv==${UV_VERSION}"
WORKDIR /src
# Dependencies first: this layer is rebuilt only when the lock file changes.
COPY pyproject.toml uv.lock ./
RUN uv sync --locked --no-dev --no-install-project --python /usr/local/bin/python3
# Then the project, installed as a regular package (migrations included) into the same environment.
COPY README.md ./
COPY app ./app
RUN uv sync --locked --no-dev --no-editable --python /usr/local/bin/python3

# --- runtime: no build tools, no source tree, a non-root user ---------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
# tini is PID 1: it forwards SIGTERM to the server (uvicorn drains, then the app's ordered shutdown)
# and reaps zombies, with or without `docker run --init`.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends tini \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 taskmarket \
    && useradd --system --uid 10001 --gid taskmarket --home-dir /nonexistent --no-create-home \
        --shell /usr/sbin/nologin taskmarket
COPY --from=builder /opt/venv /opt/venv
COPY deploy/docker/entrypoint.sh /usr/local/bin/taskmarket
COPY deploy/docker/healthcheck.py /usr/local/bin/taskmarket-healthcheck
ENV PATH="/opt/venv/bin:${PATH}" \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    LITESTAR_APP=app.main:create_app \
    ENVIRONMENT=production \
    HOST=0.0.0.0 \
    PORT=8000 \
    WEB_CONCURRENCY=1 \
    GRACEFUL_TIMEOUT=20 \
    JOBS_WAIT_SECONDS=20
WORKDIR /srv/taskmarket
# numeric, so Kubernetes' runAsNonRoot can verify it
USER 10001:10001
EXPOSE 8000 9100
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "/usr/local/bin/taskmarket-healthcheck"]
ENTRYPOINT ["/usr/bin/tini", "--", "/bin/sh", "/usr/local/bin/taskmarket"]
CMD ["api"]
