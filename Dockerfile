# syntax=docker/dockerfile:1
#
# staffsync container image. Build from the repository root:
#   docker build -t staffsync:0.1.0 .
#
# The image runs as UID/GID 10001 and works with a read-only root file system. State
# lives under /var/lib/staffsync (a volume), the config file is read from
# /etc/staffsync/staffsync.toml, and secrets come from files named <section>__<key> in
# /run/secrets or in $STAFFSYNC_SECRETS_DIR. Mount a tmpfs on /tmp when the root file
# system is read-only.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# Build stage: turn the source tree into a wheel and install it with its dependencies
# into a virtual environment, which the runtime stage copies without pip or build tools.
FROM ${PYTHON_IMAGE} AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src

RUN python -m pip wheel --no-deps --wheel-dir /wheels . \
 && python -m venv --without-pip /opt/staffsync \
 && python -m pip --python /opt/staffsync/bin/python install /wheels/staffsync-*.whl

# Runtime stage.
FROM ${PYTHON_IMAGE} AS runtime

ARG STAFFSYNC_UID=10001

RUN groupadd --system --gid "${STAFFSYNC_UID}" staffsync \
 && useradd --system --uid "${STAFFSYNC_UID}" --gid staffsync \
      --home-dir /var/lib/staffsync --no-create-home --shell /usr/sbin/nologin staffsync \
 && install -d -o staffsync -g staffsync -m 0750 /var/lib/staffsync \
 && install -d -m 0755 /etc/staffsync

COPY --from=build /opt/staffsync /opt/staffsync

# The wheel's modules were compiled at install time, so nothing needs to write .pyc
# files next to them on a read-only root file system.
ENV PATH=/opt/staffsync/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    STAFFSYNC_CONFIG=/etc/staffsync/staffsync.toml \
    STAFFSYNC_OPS__LISTEN=0.0.0.0:9464

# The working directory is the volume, so a relative SQLite path such as the default
# sqlite:///staffsync.db puts the state database on it.
WORKDIR /var/lib/staffsync
VOLUME ["/var/lib/staffsync"]

USER ${STAFFSYNC_UID}:${STAFFSYNC_UID}
EXPOSE 9464
STOPSIGNAL SIGTERM

# Slim images have no curl, so the check uses Python's urllib. It fails (exit 1) on a
# refused connection and on any status other than 2xx.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; port = os.environ.get('STAFFSYNC_OPS__LISTEN', ':9464').rsplit(':', 1)[1]; urllib.request.urlopen('http://127.0.0.1:' + port + '/healthz', timeout=4)"]

ENTRYPOINT ["staffsync"]
CMD ["run"]
