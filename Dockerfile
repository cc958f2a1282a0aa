# syntax=docker/dockerfile:1
# gamevm-operator image: dependencies from the hash-locked docker/requirements.lock
# into a virtualenv, the project as a wheel, then only that virtualenv on a
# fresh copy of the same slim base, running as a numeric non-root user.
#
#   docker build -t gamevm-operator:0.1.0 .                                   # target operator
#   docker build --target cloudypad -t gamevm-operator:0.1.0-cloudypad .      # + CloudyPad CLI
#   make image [IMAGE_TARGET=cloudypad]       # the same with buildah, no daemon (hack/image/)
#
# Only the operator ships: the wheel holds the `gamevm` package alone (no simulators, no
# local stack, no benchmark code: those live in devtools/ and bench/, outside the build
# context, see .dockerignore).
#
# Base: python 3.11.14 on Debian bookworm (slim), pinned by tag and by the digest
# of its multi-architecture index; both stages must use the same interpreter
# because the virtualenv links to it.
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm@sha256:65a93d69fa75478d554f4ad27c85c1e69fa184956261b4301ebaf6dbb0a3543d
# The official CloudyPad image at the CLI version the adapter is tested against: node, the
# CLI on PATH, pulumi, ansible with CloudyPad's roles and collections. Its Python is
# Debian bookworm's 3.11, the same minor version as the lock's wheels. Pin its digest too
# when you build (`skopeo inspect docker://crafteo/cloudypad:0.45.1`).
ARG CLOUDYPAD_IMAGE=crafteo/cloudypad:0.45.1

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /build
# Dependencies first: this layer is reused until the lock changes. Binary
# wheels only, so the builder needs no compiler.
COPY docker/requirements.lock ./
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-deps --require-hashes --only-binary=:all: \
      -r requirements.lock
COPY pyproject.toml setup.py README.md ./
COPY operator/ ./operator/
# The project itself as a wheel (build backend pinned in pyproject.toml), then
# pip is removed from the virtualenv: nothing installs at run time.
RUN /opt/venv/bin/pip wheel --no-deps --wheel-dir /wheels . \
 && /opt/venv/bin/pip install --no-deps /wheels/gamevm_operator-*.whl \
 && /opt/venv/bin/pip uninstall --yes pip

# Target `cloudypad`: the operator inside the official CloudyPad image, so the five
# cloudypad_* providers find the CLI (docs/cloudypad.md). The virtualenv is built again with
# that image's own interpreter (a virtualenv links to the interpreter it was made with), from
# the same hash-locked wheels and the same operator wheel.
FROM ${CLOUDYPAD_IMAGE} AS cloudypad
USER 0:0
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
# python3-venv for the virtualenv, openssh-client for Ansible's SSH to the VMs.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3-venv openssh-client \
 && rm -rf /var/lib/apt/lists/*
COPY docker/requirements.lock /tmp/requirements.lock
COPY --from=builder /wheels /tmp/wheels
RUN python3 -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-deps --require-hashes --only-binary=:all: \
      -r /tmp/requirements.lock \
 && /opt/venv/bin/pip install --no-deps /tmp/wheels/gamevm_operator-*.whl \
 && /opt/venv/bin/pip uninstall --yes pip \
 && rm -rf /tmp/requirements.lock /tmp/wheels \
 && groupadd --gid 65532 gamevm \
 && useradd --no-log-init --uid 65532 --gid 65532 --no-create-home \
      --home-dir /tmp --shell /usr/sbin/nologin gamevm \
 && mkdir -p /var/lib/cloudypad \
 && chown 65532:65532 /var/lib/cloudypad
LABEL org.opencontainers.image.title="gamevm-operator-cloudypad" \
      org.opencontainers.image.description="gamevm-operator with the CloudyPad CLI 0.45.1" \
      org.opencontainers.image.licenses="Apache-2.0"
# CloudyPad's state (instance files, Pulumi's file backend) goes to CLOUDYPAD_HOME: mount a
# PersistentVolumeClaim there (deploy/cloudypad). Pulumi's plugin cache too (PULUMI_HOME,
# given through GAMEVM_CLOUDYPAD_ENV), so a restart does not download plugins again.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    USER=gamevm \
    GAMEVM_HTTP_HOST=0.0.0.0 \
    GAMEVM_HTTP_PORT=8080 \
    GAMEVM_CLOUDYPAD_CLI=cloudypad \
    GAMEVM_CLOUDYPAD_HOME=/var/lib/cloudypad
VOLUME ["/var/lib/cloudypad"]
WORKDIR /tmp
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/opt/venv/bin/gamevm-operator", "run"]

# Target `operator` (the default, last stage): the operator alone on the slim python base.
FROM ${PYTHON_IMAGE} AS operator
LABEL org.opencontainers.image.title="gamevm-operator" \
      org.opencontainers.image.description="Kubernetes operator for cloud gaming VMs (Nintendo console emulation)" \
      org.opencontainers.image.licenses="Apache-2.0"
# The base image's own pip/setuptools/wheel are build tools the operator never uses.
# kopf derives its identity from getpass.getuser(), which raises for a uid with
# no passwd entry and no USER/LOGNAME: give 65532 an account (no home, no shell),
# and set USER below for platforms that run the image under another uid.
RUN python -m pip uninstall --yes --disable-pip-version-check pip setuptools wheel \
 && groupadd --gid 65532 gamevm \
 && useradd --no-log-init --uid 65532 --gid 65532 --no-create-home \
      --home-dir /tmp --shell /usr/sbin/nologin gamevm
COPY --from=builder /opt/venv /opt/venv
# The root filesystem is read-only in the Deployment: no .pyc writes, HOME on
# the /tmp emptyDir. The HTTP server (/healthz, /metrics, heartbeat, read API)
# listens on all interfaces inside the pod on 8080.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    USER=gamevm \
    GAMEVM_HTTP_HOST=0.0.0.0 \
    GAMEVM_HTTP_PORT=8080
WORKDIR /tmp
# 65532 is the conventional "nonroot" uid/gid (distroless); numeric so the
# kubelet can verify runAsNonRoot without a passwd lookup.
USER 65532:65532
EXPOSE 8080
# Exec form: the operator is PID 1 and gets SIGTERM directly, so kopf can
# release its handlers cleanly; liveness is served on :8080/healthz.
ENTRYPOINT ["/opt/venv/bin/gamevm-operator", "run"]
