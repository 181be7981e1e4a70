# ferry's image: Debian bookworm's own Python 3.11, because libnbd's Python bindings exist only as
# the distro package (python3-libnbd). The venv sees them through --system-site-packages.
#
#   docker build -t ferry .
#   docker run -p 18080:18080 -e FERRY_TOKENS=admin:...,viewer:... \
#     -e FERRY_DATABASE_URL=postgresql+psycopg://ferry:...@db/ferry -v /srv/data:/srv/data ferry
#
# The image listens on 0.0.0.0, and ferry refuses to listen beyond loopback without FERRY_TOKENS:
# set them, or the container exits at once with a message saying so.

FROM debian:bookworm-slim AS base
ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-libnbd ca-certificates \
 && rm -rf /var/lib/apt/lists/*

# -- build: the venv and the project, at the paths they keep at run time -------------------------
FROM base AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3-venv \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/ferry
RUN python3 -m venv --system-site-packages /opt/ferry/.venv
COPY pyproject.toml README.md alembic.ini ./
COPY app ./app
COPY migrations ./migrations
# Editable, so that the Alembic scripts stay beside app/ where app/db/schema.py looks for them.
RUN /opt/ferry/.venv/bin/pip install --no-cache-dir --no-compile -e . \
 && /opt/ferry/.venv/bin/python -c "import nbd, app.db.schema as s; assert s.MIGRATIONS_DIR.is_dir()"

# -- run ------------------------------------------------------------------------------------------
FROM base AS run
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/ferry --shell /usr/sbin/nologin ferry \
 && install -d -o ferry -g ferry -m 0750 /var/lib/ferry
COPY --from=build /opt/ferry /opt/ferry
ENV PATH=/opt/ferry/.venv/bin:$PATH \
    FERRY_HOST=0.0.0.0 \
    FERRY_PORT=18080 \
    FERRY_DATA_DIR=/var/lib/ferry \
    FERRY_LOG_FORMAT=json
WORKDIR /var/lib/ferry
USER 10001:10001
VOLUME ["/var/lib/ferry"]
EXPOSE 18080
# The process is up; readiness (database at schema head) is /readyz, for orchestrators.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python3", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('FERRY_PORT', '18080'), timeout=4)"]
# One process, one worker: the pool lives in it. SIGTERM drains units in flight (FERRY_DRAIN_TIMEOUT).
STOPSIGNAL SIGTERM
CMD ["ferry", "serve"]
