# syntax=docker/dockerfile:1
#
# One image for every Jobsite process: web (uvicorn, ASGI), Celery workers, celery-beat,
# Flower and the one-shot migrate. The command picks the role: see docker-compose.yml and
# docs/deployment.md. Build: `docker build -t jobsite .` (BuildKit, the default since
# Docker 23, is needed for the heredoc below).

ARG PYTHON_IMAGE=python:3.11-slim

# --- build: the project and its dependencies, in a virtualenv copied into the runtime ------
FROM ${PYTHON_IMAGE} AS build

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH

RUN python -m venv /opt/venv

WORKDIR /src

# The dependencies alone first, in their own layer, so that a code change does not
# reinstall them. Every dependency ships a wheel: no compiler is needed.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt

# Then the project itself, from pyproject.toml (no dev extras).
COPY . .
RUN pip install .

# --- runtime ----------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

# PYTHONPATH=/app: every process (manage.py, uvicorn, celery) imports the project from the
# source tree in /app, whatever its working directory, so BASE_DIR is /app and the
# top-level templates/ directory is found. The copy `pip install .` put in the virtualenv
# holds the same code.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/app \
    DJANGO_SETTINGS_MODULE=jobsite.settings \
    JOBSITE_VAR_DIR=/app/var \
    STATIC_ROOT=/app/static \
    MEDIA_ROOT=/data/media

# Debian's headless Chromium renders render_js web pages (processing/web/render.py);
# OpenCV (scene detection) loads libGL and GLib.
RUN apt-get update \
    && apt-get install -y --no-install-recommends chromium libgl1 libglib2.0-0 \
    && rm -rf /var/lib/apt/lists/*

RUN groupadd --system --gid 1000 jobsite \
    && useradd --system --uid 1000 --gid jobsite --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin jobsite

COPY --from=build /opt/venv /opt/venv

WORKDIR /app
COPY . .

# Static files are collected at build time and served by WhiteNoise. The settings need a
# SECRET_KEY (without one they write var/secret_key): a throwaway one, for this step only.
# /data/media is the volume shared by web (which stores uploads) and the workers (which
# read them); a named volume takes this directory's owner when it is first created.
RUN SECRET_KEY=collectstatic-only-not-a-secret JOBSITE_VAR_DIR=/tmp/build-var \
        python manage.py collectstatic --noinput --verbosity 0 \
    && rm -rf /tmp/build-var \
    && python -m compileall -q jobs jobsite processing \
    && install -d -o jobsite -g jobsite /app/var /data/media

# A health probe with the standard library only (no curl in the image). Django answers 400
# to a Host header missing from ALLOWED_HOSTS, so the probe sends the first allowed host.
COPY --chmod=0755 <<'EOF' /usr/local/bin/jobsite-http-check
#!/usr/local/bin/python
"""Exit 0 if URL answers 2xx or 3xx within the timeout, 1 otherwise.

Usage: jobsite-http-check [URL] [TIMEOUT_SECONDS]
"""
import os
import sys
import urllib.error
import urllib.request

url = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8000/api/schema/"
timeout = float(sys.argv[2]) if len(sys.argv) > 2 else 5.0
allowed = [h.strip() for h in os.environ.get("ALLOWED_HOSTS", "").split(",") if h.strip()]
host = next((h.lstrip(".") for h in allowed if h != "*"), "localhost")
request = urllib.request.Request(url, headers={"Host": host, "User-Agent": "jobsite-http-check"})
try:
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
        status = response.status
except urllib.error.HTTPError as exc:
    status = exc.code
except Exception as exc:
    print(f"{url}: {exc}", file=sys.stderr)
    sys.exit(1)
print(f"{url}: HTTP {status}")
sys.exit(0 if 200 <= status < 400 else 1)
EOF

# Numeric, so that a runtime (Kubernetes runAsNonRoot) can verify it is not root.
USER 1000:1000

EXPOSE 8000

# For the default command (web). docker-compose.yml sets each other role's own check.
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s --retries=3 \
    CMD ["jobsite-http-check", "http://127.0.0.1:8000/api/schema/"]

CMD ["python", "-m", "jobsite.serve", "--host", "0.0.0.0", "--port", "8000", "--workers", "2"]
