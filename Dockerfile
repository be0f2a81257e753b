# syntax=docker/dockerfile:1
#
# The tickrail image the Helm chart runs (helm/tickrail: repository `tickrail`,
# tag = the chart's appVersion = the package version):
#
#   docker build -t tickrail:0.1.0 .
#
# It holds tickrail with its cloud and otel extras in a virtualenv, and runs
# as uid/gid 10001 (the chart's podSecurityContext). Your graph code, either:
#   - from a package index, at build time:
#       docker build --build-arg EXTRA_PACKAGES="acme-agents==1.4.2" -t acme/agents:1.4.2 .
#   - or in a derived image (docs/deploy.md, "The image"): COPY it under /app,
#     which is on PYTHONPATH, and name it as `--graph my_agents.research:graph`.
#
# Health: no HEALTHCHECK, because the command differs per container (a role,
# `serve`, `migrate`); on Kubernetes the chart probes /healthz, /readyz
# (role pods; startupProbe on executors) and gRPC health (the API).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- build: resolve and install everything into /opt/tickrail --------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/tickrail
WORKDIR /src
# The package's own files only (see .dockerignore); src/tickrail links to the
# top-level sdk/, adapters/ and services/, which a regular install copies.
COPY pyproject.toml README.md ./
COPY src/ src/
COPY sdk/ sdk/
COPY adapters/ adapters/
COPY services/ services/
ARG EXTRA_PACKAGES=""
RUN /opt/tickrail/bin/pip install --no-cache-dir ".[cloud,otel]" ${EXTRA_PACKAGES} \
    && /opt/tickrail/bin/tickrail --help > /dev/null

# ---- runtime: the virtualenv, a non-root user, nothing else ---------------
FROM ${PYTHON_IMAGE} AS runtime
RUN groupadd --system --gid 10001 tickrail \
    && useradd --system --uid 10001 --gid 10001 --home-dir /app --no-create-home \
       --shell /usr/sbin/nologin tickrail \
    && mkdir -p /app \
    && chown 10001:10001 /app
COPY --from=build /opt/tickrail /opt/tickrail
ENV PATH=/opt/tickrail/bin:$PATH \
    PYTHONPATH=/app \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
WORKDIR /app
# A role's /healthz, /readyz and /metrics (setting http_port).
EXPOSE 8080
USER 10001:10001
ENTRYPOINT ["tickrail"]
CMD ["--help"]
