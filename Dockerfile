# chatops-bot container image. Build from the repository root:
#
#   docker build \
#     --build-arg VERSION=0.1.0 \
#     --build-arg REVISION="$(git rev-parse HEAD)" \
#     --build-arg CREATED="$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
#     -t chatops-bot:dev .
#
# Two stages on the same base image: the builder installs the locked runtime
# dependencies (requirements/runtime.txt, every file checked against its hash) into
# /opt/venv in a layer of their own, which a source change does not invalidate; then
# it builds the project's wheel and installs it without dependencies. The final stage
# copies only that venv (the venv's python is a symlink to the base image's
# interpreter, which is why both stages use the same base). See docs/azure.md,
# "The image".
#
# The base image, by tag and digest: the tag says what it is (Python 3.12, Debian
# bookworm, slim) and is what Renovate follows; the digest (the multi-platform index)
# is what is pulled, so a rebuild gets the tested base. Renovate (renovate.json,
# pinDigests) replaces the digest when the tag moves. Where the digest came from:
# docs/azure.md, "The image".

ARG PYTHON_IMAGE=python:3.12-slim-bookworm@sha256:0f5b26b9518d002b6173fd61daad821fa340635ebfec5bba471013f9ca114579

FROM ${PYTHON_IMAGE} AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

WORKDIR /src

# A C compiler for the span codec and the store's SQLite access (telemetry/*.c, built
# by hatch_build.py):
# Debian's, from the release the pinned base image is built on. It stays in this
# stage; the final image copies only the venv. Not pinned by version: libc6-dev must
# match the libc6 of the base image, which its digest already fixes.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install --yes --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*

# Dependencies first, from the lock only: --require-hashes refuses any file whose
# hash is not in the lock and any dependency the lock does not pin. This layer is
# rebuilt only when the lock changes. The build backend (hatchling) comes from its
# own lock into a throw-away venv, so the wheel below is built with no unpinned
# download either.
COPY requirements/runtime.txt requirements/build.txt ./requirements/
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --require-hashes --only-binary=:all: -r requirements/runtime.txt \
    && python -m venv /opt/build \
    && /opt/build/bin/pip install --require-hashes --only-binary=:all: -r requirements/build.txt

# Then the project, without dependencies (they are all in place). pip compiles the
# .pyc files here, so the non-root user never needs to write into /opt/venv;
# `pip check` fails the build if the lock no longer satisfies pyproject.toml. pip
# (and setuptools, which a 3.11 venv seeds) leave the venv at the end: nothing
# imports them at run time.
COPY pyproject.toml README.md hatch_build.py ./
COPY bot ./bot
COPY commands ./commands
COPY telemetry ./telemetry
RUN /opt/build/bin/pip wheel --no-deps --no-build-isolation --wheel-dir /tmp/wheels . \
    && /opt/venv/bin/pip install --no-deps /tmp/wheels/chatops_bot-*.whl \
    && /opt/venv/bin/pip check \
    && /opt/venv/bin/pip uninstall --yes pip setuptools \
    && rm -rf /tmp/wheels

FROM ${PYTHON_IMAGE}

# Build metadata (docs/azure.md, "The image": the pipeline passes all four).
ARG VERSION=0.0.0
ARG REVISION=unknown
ARG CREATED=unknown
ARG SOURCE=unknown

LABEL org.opencontainers.image.title="chatops-bot" \
      org.opencontainers.image.description="An OpenTelemetry-traced Discord chat-ops bot" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.created="${CREATED}"

# An unprivileged user with a fixed uid; USER below names it by number, so a
# platform's runAsNonRoot check can verify it without reading /etc/passwd.
RUN groupadd --system --gid 10001 chatops \
    && useradd --system --uid 10001 --gid chatops --home-dir /app --shell /usr/sbin/nologin chatops

COPY --from=builder /opt/venv /opt/venv
WORKDIR /app
COPY --chown=chatops:chatops flags.json ./

# SPAN_STORE=off: in the container, traces go to the OTLP endpoint (or Honeycomb);
# ACI gives a container no durable disk. To keep the local store instead, mount a
# volume at /data and set SPAN_STORE=/data/spans.db.
# GIT_COMMIT is what `!about` shows.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    SPAN_STORE=off \
    HEALTH_PORT=8080 \
    GIT_COMMIT=${REVISION}

USER 10001:10001
EXPOSE 8080

# /healthz answers while the process runs; python's urllib, so no curl in the image.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('HEALTH_PORT', '8080') + '/healthz', timeout=4)"]

# Exec form: the bot is PID 1 and receives SIGTERM itself (no shell in between);
# `chatops run` handles SIGTERM/SIGINT (closes the gateway, flushes spans, exit 0).
ENTRYPOINT ["chatops"]
CMD ["run"]
