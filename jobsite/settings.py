"""Settings for every way Jobsite runs, read from the environment.

With no environment at all this is the embedded default: a SQLite file under ``var/`` and the
Valkey server that ``make run`` starts on loopback. Production sets ``DATABASE_URL``,
``CELERY_BROKER_URL``, ``SECRET_KEY`` and ``ALLOWED_HOSTS`` (see ``docker-compose.yml``).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import dj_database_url


def env_bool(name: str, default: bool = False) -> bool:
    return os.environ.get(name, str(default)).strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def env_float(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("JOBSITE_VAR_DIR", BASE_DIR / "var"))
VAR_DIR.mkdir(parents=True, exist_ok=True)


def _secret_key() -> str:
    """Production passes SECRET_KEY; the embedded default keeps a random one under var/."""
    if key := os.environ.get("SECRET_KEY"):
        return key
    path = VAR_DIR / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = _secret_key()
DEBUG = env_bool("DEBUG")
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],testserver")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")
# Behind an HTTPS proxy: secure cookies, HSTS, and the proxy's word on the scheme.
SECURE_HTTPS = env_bool("SECURE_HTTPS")
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = SECURE_HTTPS
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0)
if SECURE_HTTPS:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_results",
    "django_celery_beat",
    "django_tasks",
    "jobs",
    "processing",
]

MIDDLEWARE = [
    "jobs.api.middleware.BodySizeLimitMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "jobsite.urls"
WSGI_APPLICATION = "jobsite.wsgi.application"
ASGI_APPLICATION = "jobsite.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database ---------------------------------------------------------------------------
DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", f"sqlite:///{VAR_DIR / 'jobsite.sqlite3'}"),
        conn_max_age=env_int("DB_CONN_MAX_AGE", 0),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Web, workers and beat share one file: WAL lets readers run beside the writer,
    # busy_timeout waits for the write lock instead of failing, and IMMEDIATE takes that
    # lock at BEGIN so two writers never deadlock upgrading a read lock.
    DATABASES["default"]["OPTIONS"] = {
        "init_command": (
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=30000;"
        ),
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
    }
    DATABASES["default"]["TEST"] = {
        "NAME": os.environ.get("JOBSITE_TEST_DB", str(VAR_DIR / "test-jobsite.sqlite3"))
    }
elif env_bool("DB_POOL"):
    # Django's psycopg pool: under ASGI, CONN_MAX_AGE leaks one connection per thread.
    DATABASES["default"]["OPTIONS"] = {"pool": True}
    DATABASES["default"]["CONN_MAX_AGE"] = 0

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache (throttling, worker facts) ---------------------------------------------------
VALKEY_PORT = env_int("JOBSITE_VALKEY_PORT", 6390)
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", f"redis://127.0.0.1:{VALKEY_PORT}/0")
CACHE_URL = os.environ.get("CACHE_URL", CELERY_BROKER_URL.rsplit("/", 1)[0] + "/1")
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": CACHE_URL,
        # Short: a stalled cache must not hold requests (callers treat a miss as a miss).
        "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
    }
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
# Set by the test run only (tests/plugin.py, for itself and every process it starts), as
# Django's testing guide advises: PBKDF2's rounds cost ~0.3 s per user made or signed in,
# minutes over the suites. Never in a deployment: MD5 is no password hash.
if env_bool("JOBSITE_INSECURE_TEST_PASSWORDS"):
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", VAR_DIR / "static"))
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
MEDIA_URL = "media/"
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT", VAR_DIR / "media"))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# Admin and Swagger assets are served by WhiteNoise straight from the installed apps.
WHITENOISE_USE_FINDERS = True

# --- Request limits ---------------------------------------------------------------------
# A JSON body larger than this is a 413 before it is read.
JOBSITE_MAX_JSON_BYTES = env_int("JOBSITE_MAX_JSON_BYTES", 1 * 1024 * 1024)
# JSON (a body, or a form field holding JSON) nested deeper than this is a 400.
JOBSITE_MAX_JSON_DEPTH = env_int("JOBSITE_MAX_JSON_DEPTH", 64)
# A job's params (as JSON) larger than this are a 413 at create: they are instructions, and
# every claim and single-job read carries them. Large inputs come as a file or a file_url.
JOBSITE_MAX_PARAMS_BYTES = env_int("JOBSITE_MAX_PARAMS_BYTES", 64 * 1024)
# A result (as JSON) larger than this fails the job (result_too_large): every read of the
# job carries it. Large outputs belong in memories or files.
JOBSITE_MAX_RESULT_BYTES = env_int("JOBSITE_MAX_RESULT_BYTES", 1024 * 1024)
# An uploaded file larger than this is a 413; the upload streams to disk, never to memory.
JOBSITE_MAX_UPLOAD_BYTES = env_int("JOBSITE_MAX_UPLOAD_BYTES", 200 * 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = JOBSITE_MAX_JSON_BYTES
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
FILE_UPLOAD_HANDLERS = ["jobs.api.uploads.LimitedTemporaryFileUploadHandler"]

# --- REST API -----------------------------------------------------------------------------
# Seconds a web process trusts an API key row it read (0: read it on every request). A key
# revoked in another process still works there for up to this long.
JOBSITE_API_KEY_CACHE_SECONDS = env_float("JOBSITE_API_KEY_CACHE_SECONDS", 5.0)

# How every response and live event writes a moment: UTC, microseconds, "Z".
JOBSITE_TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "jobs.auth.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # DRF's, refusing unstorable text, JSON nested too deep and repeated form fields.
    "DEFAULT_PARSER_CLASSES": [
        "jobs.api.parsers.JSONParser",
        "jobs.api.parsers.MultiPartParser",
    ],
    # DRF's, escaping a lone surrogate in a row stored before the parsers refused them.
    "DEFAULT_RENDERER_CLASSES": ["jobs.api.renderers.JSONRenderer"],
    # One timestamp shape in every response and live event (jobs/timestamps.py).
    "DATETIME_FORMAT": JOBSITE_TIMESTAMP_FORMAT,
    "DEFAULT_THROTTLE_CLASSES": ["jobs.auth.ApiKeyRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {"api_key": os.environ.get("JOBSITE_THROTTLE_RATE", "6000/min")},
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "jobs.api.errors.exception_handler",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "UNAUTHENTICATED_USER": None,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Jobsite API",
    "DESCRIPTION": (
        "Create background jobs and follow them to the end. Authenticate with "
        "`Authorization: Bearer <key>` or `X-API-Key: <key>` "
        "(`python manage.py create_api_key --user NAME` prints one)."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "SWAGGER_UI_SETTINGS": {"persistAuthorization": True, "displayRequestDuration": True},
    "COMPONENT_SPLIT_REQUEST": True,
    "SERVE_AUTHENTICATION": [],
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    # Each route answers with and without its trailing slash; the schema shows it once.
    "PREPROCESSING_HOOKS": ["jobs.api.routing.one_spelling"],
}

# --- Django Tasks: @task functions enqueued the standard way become Jobsite jobs ---------
TASKS = {"default": {"BACKEND": "jobs.taskbackend.JobsiteTaskBackend", "QUEUES": []}}

# --- Celery (https://docs.celeryq.dev/en/stable/userguide/configuration.html) -------------
CELERY_BROKER_TRANSPORT_OPTIONS = {
    # Redis re-delivers an unacknowledged message after this; keep it far above the longest
    # job time limit (the Job row's heartbeat, not this, is how lost workers are found).
    "visibility_timeout": env_int("JOBSITE_VISIBILITY_TIMEOUT", 4 * 3600),
    "socket_connect_timeout": 3,
}
# A publish while the broker is down must not hang the request: fail fast and let the
# dispatcher re-publish from the Job row.
CELERY_BROKER_CONNECTION_TIMEOUT = 3
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 2, "interval_start": 0.1, "interval_step": 0.2}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
# Job state lives on the Job row; results of maintenance tasks go to django-celery-results.
CELERY_RESULT_BACKEND = "django-db"
CELERY_RESULT_EXTENDED = True
CELERY_RESULT_EXPIRES = 30 * 24 * 3600
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_DEFAULT_QUEUE = "default"
# https://docs.celeryq.dev/en/stable/userguide/configuration.html#task-acks-late
CELERY_TASK_ACKS_LATE = True
# A killed pool child is NOT re-queued by Celery: Celery then sends no task_failure and the
# Job row would not learn of the loss. Our handler re-queues it as a new, counted attempt.
CELERY_TASK_REJECT_ON_WORKER_LOST = False
# https://docs.celeryq.dev/en/stable/userguide/optimizing.html#prefetch-limits
CELERY_WORKER_PREFETCH_MULTIPLIER = env_int("JOBSITE_PREFETCH_MULTIPLIER", 1)
# With late acks, a lost broker connection would otherwise let a running job run twice.
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = True
# How long the pool waits for a killed process's result before declaring it lost.
CELERY_WORKER_LOST_WAIT = env_float("JOBSITE_WORKER_LOST_WAIT", 10.0)
CELERY_WORKER_SEND_TASK_EVENTS = env_bool("JOBSITE_TASK_EVENTS", True)
# The same for the job task alone (jobs.run): off, Flower neither lists jobs nor counts them,
# and each job costs the worker three Redis round trips less (docs/benchmarks.md).
JOBSITE_JOB_TASK_EVENTS = env_bool("JOBSITE_JOB_TASK_EVENTS", True)
# No "task-sent" event: it would be a second publish on every job create (Flower learns of
# each task from the worker's "received" event).
CELERY_TASK_SEND_SENT_EVENT = False
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# Celery closes Django's DB connection around every task; reuse it for this many tasks.
CELERY_DB_REUSE_MAX = env_int("JOBSITE_DB_REUSE_MAX", 1000)

# --- Jobsite ----------------------------------------------------------------------------
# How often a running job's worker proves it is alive, and how long silence means it died.
JOBSITE_HEARTBEAT_INTERVAL = env_float("JOBSITE_HEARTBEAT_INTERVAL", 2.0)
JOBSITE_HEARTBEAT_TIMEOUT = env_float("JOBSITE_HEARTBEAT_TIMEOUT", 30.0)
# Seconds a broker socket of a web process (its background publisher, queue stats) waits
# on a broker that stopped answering before it gives up.
JOBSITE_BROKER_TIMEOUT = env_float("JOBSITE_BROKER_TIMEOUT", 1.0)
# Messages waiting for a web process's background publisher (jobs/publish.py); past it, the
# sweeper publishes them.
JOBSITE_PUBLISH_BACKLOG = env_int("JOBSITE_PUBLISH_BACKLOG", 10_000)
# A pending job whose message has not been consumed for this long is published again.
JOBSITE_DISPATCH_AFTER = env_float("JOBSITE_DISPATCH_AFTER", 30.0)
# A running job asked to cancel that does not reach a progress call in time is terminated.
JOBSITE_CANCEL_GRACE = env_float("JOBSITE_CANCEL_GRACE", 10.0)
# Retry backoff: base * 2**(attempt-1), capped, with equal jitter (half fixed, half random).
JOBSITE_RETRY_BACKOFF_BASE = env_float("JOBSITE_RETRY_BACKOFF_BASE", 2.0)
JOBSITE_RETRY_BACKOFF_MAX = env_float("JOBSITE_RETRY_BACKOFF_MAX", 600.0)
# Retries due sooner than this are published with a broker countdown; later ones wait in
# the database for the sweeper (long countdowns outlive Redis's visibility timeout).
JOBSITE_RETRY_COUNTDOWN_MAX = env_float("JOBSITE_RETRY_COUNTDOWN_MAX", 60.0)
# Progress calls closer together than this are coalesced into one write (and one live
# event): also the longest a reported value waits before watchers see it.
JOBSITE_PROGRESS_MIN_INTERVAL = env_float("JOBSITE_PROGRESS_MIN_INTERVAL", 0.05)
# The sweeper (scheduled jobs, due retries, dispatcher, reaper, cancel enforcement).
JOBSITE_SWEEP_INTERVAL = env_float("JOBSITE_SWEEP_INTERVAL", 2.0)
JOBSITE_RETENTION_DAYS = env_int("JOBSITE_RETENTION_DAYS", 30)
# Metrics (``jobs.tally``): events are tallied this many seconds after they are seen, at
# most this many ids per transaction; a scrape counts up to TAIL_MAX untallied ids on the
# fly; per-minute figures (the dashboard's charts) are kept this many days.
JOBSITE_METRICS_LAG = env_float("JOBSITE_METRICS_LAG", 10.0)
JOBSITE_METRICS_CHUNK = env_int("JOBSITE_METRICS_CHUNK", 100_000)
JOBSITE_METRICS_TAIL_MAX = env_int("JOBSITE_METRICS_TAIL_MAX", 200_000)
JOBSITE_METRICS_MINUTES_DAYS = env_int("JOBSITE_METRICS_MINUTES_DAYS", 7)
JOBSITE_METRICS_ROLLUP_INTERVAL = env_float("JOBSITE_METRICS_ROLLUP_INTERVAL", 10.0)
# GET /metrics: "Authorization: Bearer <token>" with this token; "off" serves it to anyone;
# unset, it answers 404 (staff signed in to the admin may always read it).
JOBSITE_METRICS_TOKEN = os.environ.get("JOBSITE_METRICS_TOKEN", "")
# How long a purged job's outcome (``JobArchive``: GET /jobs/{id} still answers) is kept,
# in days; 0 keeps it for good.
JOBSITE_JOB_ARCHIVE_DAYS = env_int("JOBSITE_JOB_ARCHIVE_DAYS", 0)
# Each pool process's data limit: a job allocating past it fails `out_of_memory` (0: none).
JOBSITE_WORKER_MEMORY_LIMIT_MB = env_int("JOBSITE_WORKER_MEMORY_LIMIT_MB", 0)
# The niceness (0-19) of a worker's pool processes: the media workers run at 10, so that
# transcriptions take the cores only when the web and the short jobs leave them idle.
JOBSITE_WORKER_NICE = env_int("JOBSITE_WORKER_NICE", 0)
# Memory one attempt may add to its pool process, for every job type that sets no limit of
# its own; past it the job fails `out_of_memory` (0: none). Also echo's largest allocate_mb.
JOBSITE_JOB_MEMORY_LIMIT_MB = env_int("JOBSITE_JOB_MEMORY_LIMIT_MB", 1024)
# A pool process whose memory grew past this after a job is replaced (Celery's own check).
CELERY_WORKER_MAX_MEMORY_PER_CHILD = (
    env_int("JOBSITE_WORKER_MAX_MEMORY_PER_CHILD_MB", 0) * 1024 or None
)
# A worker's claim/complete/fail write waits this long for a database that went away.
JOBSITE_DB_RETRY_SECONDS = env_float("JOBSITE_DB_RETRY_SECONDS", 60.0)
# Live updates: the Redis whose pub/sub carries job changes to every web process.
JOBSITE_LIVE_URL = os.environ.get("JOBSITE_LIVE_URL", CELERY_BROKER_URL)
# Threads per ASGI process for the REST API and the admin (jobsite/asgi.py).
JOBSITE_ASGI_THREADS = env_int("JOBSITE_ASGI_THREADS", 4)

# --- The web server's own limits (jobsite/protocol.py, jobsite/intake.py) ------------------
# Open connections per web process (0: the open-files limit, less a reserve); past it, 503.
JOBSITE_MAX_CONNECTIONS = env_int("JOBSITE_MAX_CONNECTIONS", 0)
# Open connections from one client address (a trusted proxy's are not counted).
JOBSITE_MAX_CONNECTIONS_PER_CLIENT = env_int("JOBSITE_MAX_CONNECTIONS_PER_CLIENT", 1000)
# Seconds for a request's line and headers to arrive (after connecting, or after the last
# response on a kept-alive connection); past it, 408 and closed.
JOBSITE_HEADER_TIMEOUT = env_float("JOBSITE_HEADER_TIMEOUT", 10.0)
# Bytes of request line and headers; past it, 431 and closed.
JOBSITE_MAX_HEADER_BYTES = env_int("JOBSITE_MAX_HEADER_BYTES", 64 * 1024)
# A request body must keep arriving: no gap longer than this (seconds)...
JOBSITE_BODY_IDLE_TIMEOUT = env_float("JOBSITE_BODY_IDLE_TIMEOUT", 15.0)
# ...and on average at least this many bytes per second after the first 10 seconds.
JOBSITE_BODY_MIN_RATE = env_int("JOBSITE_BODY_MIN_RATE", 64 * 1024)
# Proxies whose X-Forwarded-For/-Proto uvicorn believes (and the per-client limit exempts).
FORWARDED_ALLOW_IPS = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
# A comment line on idle SSE streams, so proxies and clients keep them open.
JOBSITE_SSE_KEEPALIVE = env_float("JOBSITE_SSE_KEEPALIVE", 15.0)
# Concurrent streams and long-polls per API key, per web process; past it, a 429.
JOBSITE_MAX_WATCHERS_PER_KEY = env_int("JOBSITE_MAX_WATCHERS_PER_KEY", 100)
# How long a live-page link (a signed, job-scoped read token) stays valid.
JOBSITE_LIVE_TOKEN_MAX_AGE = env_int("JOBSITE_LIVE_TOKEN_MAX_AGE", 12 * 3600)
# Where operators find Flower (linked from the admin); empty hides the link.
JOBSITE_FLOWER_URL = os.environ.get("JOBSITE_FLOWER_URL", "")

# --- Failed authentication (API keys, live links, the admin's login form) ---------------
# After this many failures from one client address (IPv6: its /64) within a window of this
# many seconds, the address is answered 429 with Retry-After until the window ends (0: off).
JOBSITE_AUTH_FAILURE_LIMIT = env_int("JOBSITE_AUTH_FAILURE_LIMIT", 20)
JOBSITE_AUTH_FAILURE_WINDOW = env_int("JOBSITE_AUTH_FAILURE_WINDOW", 300)
# Their counters live in the cache's Redis (CACHE_URL), read in the round trip the API's
# rate throttle makes anyway (jobs/auth.py), with 0.25 s timeouts.
# The admin's login form goes through django-axes (https://django-axes.readthedocs.io/),
# counting in the cache by the same address and limits; its middleware must come last.
INSTALLED_APPS.append("axes")
MIDDLEWARE.append("axes.middleware.AxesMiddleware")
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_ENABLED = JOBSITE_AUTH_FAILURE_LIMIT > 0
AXES_HANDLER = "axes.handlers.cache.AxesCacheHandler"
AXES_LOCKOUT_PARAMETERS = ["ip_address"]
AXES_CLIENT_IP_CALLABLE = "jobs.auth.axes_client_address"
AXES_FAILURE_LIMIT = "jobs.auth.axes_failure_limit"
AXES_COOLOFF_TIME = "jobs.auth.axes_cool_off"
AXES_LOCKOUT_CALLABLE = "jobs.auth.axes_lockout_response"
AXES_ENABLE_ADMIN = False  # the cache handler keeps no rows to list there

# --- Documents ------------------------------------------------------------------------------
# A PDF with more pages than this fails at once, before any page is read.
JOBSITE_DOC_MAX_PAGES = env_int("JOBSITE_DOC_MAX_PAGES", 2000)
# ZIP-based formats (DOCX, PPTX, XLSX, ODT, EPUB) that would inflate past this fail unread.
JOBSITE_DOC_MAX_UNZIPPED_BYTES = env_int("JOBSITE_DOC_MAX_UNZIPPED_MB", 200) * 1024 * 1024
# Text beyond this many characters fails the job instead of filling the database.
JOBSITE_DOC_MAX_CHARACTERS = env_int("JOBSITE_DOC_MAX_CHARACTERS", 20_000_000)
# Seconds one attempt of a document job may take, and the memory it may add to its worker.
JOBSITE_DOC_TIME_LIMIT = env_int("JOBSITE_DOC_TIME_LIMIT", 900)
JOBSITE_DOC_MEMORY_MB = env_int("JOBSITE_DOC_MEMORY_MB", 1536)
# Pages without a text layer go through Tesseract when it is installed.
JOBSITE_OCR = env_bool("JOBSITE_OCR", True)
JOBSITE_OCR_LANGUAGES = os.environ.get("JOBSITE_OCR_LANGUAGES", "eng+deu")
# Fetching a file_url: an overall time budget and redirect hops, each hop's address
# checked (no private, loopback, link-local or metadata addresses) unless named here.
JOBSITE_FETCH_TIMEOUT = env_float("JOBSITE_FETCH_TIMEOUT", 60.0)
JOBSITE_FETCH_MAX_REDIRECTS = env_int("JOBSITE_FETCH_MAX_REDIRECTS", 5)
JOBSITE_FETCH_ALLOW_HOSTS = os.environ.get("JOBSITE_FETCH_ALLOW_HOSTS", "")
# Web extraction: seconds per attempt in all (fetch, render, extract, store).
JOBSITE_WEB_TIME_LIMIT = env_int("JOBSITE_WEB_TIME_LIMIT", 300)
# render_js: the browser's whole visit (load, scripts, settling) and its processes' memory.
JOBSITE_RENDER_TIMEOUT = env_float("JOBSITE_RENDER_TIMEOUT", 45.0)
JOBSITE_RENDER_MEMORY_MB = env_int("JOBSITE_RENDER_MEMORY_MB", 1024)
# The Chromium binary for render_js; empty: chromium (Debian) or chromium-browser on PATH.
JOBSITE_CHROMIUM = os.environ.get("JOBSITE_CHROMIUM", "")

# --- Memories ---------------------------------------------------------------------------
# A collection with more memories than this is deleted by a batch_operation job (202),
# not inside the request (204).
JOBSITE_COLLECTION_DELETE_INLINE = env_int("JOBSITE_COLLECTION_DELETE_INLINE", 1000)
# Consolidation: near-duplicates from this similarity (estimated Jaccard of word 3-shingles);
# memories older than this many days, below this importance and unread as long are
# summarised, keeping this share of their sentences (the originals are archived).
JOBSITE_CONSOLIDATION_SIMILARITY = env_float("JOBSITE_CONSOLIDATION_SIMILARITY", 0.85)
JOBSITE_CONSOLIDATION_AGE_DAYS = env_int("JOBSITE_CONSOLIDATION_AGE_DAYS", 30)
JOBSITE_CONSOLIDATION_IMPORTANCE = env_float("JOBSITE_CONSOLIDATION_IMPORTANCE", 0.5)
JOBSITE_CONSOLIDATION_RATIO = env_float("JOBSITE_CONSOLIDATION_RATIO", 0.3)

# --- Media (audio, and the audio track of video) ------------------------------------------
# Longer recordings fail at the probe, before any decoding (4 h take ~30 min on one core).
JOBSITE_MEDIA_MAX_SECONDS = env_float("JOBSITE_MEDIA_MAX_SECONDS", 4 * 3600.0)
# Files with more streams than this fail unread (a real recording has two or three).
JOBSITE_MEDIA_MAX_STREAMS = env_int("JOBSITE_MEDIA_MAX_STREAMS", 8)
# Video frames larger than this (4K UHD) fail unread: one frame of 16k x 16k is 768 MB.
JOBSITE_MEDIA_MAX_PIXELS = env_int("JOBSITE_MEDIA_MAX_PIXELS", 3840 * 2160)
# The transcription model when a job names none: "quality" (Whisper base) or "light" (tiny.en).
JOBSITE_MEDIA_MODEL = os.environ.get("JOBSITE_MEDIA_MODEL", "quality")
# Seconds one attempt may take (quality: ~0.12 x real time on one core, measured), and memory.
JOBSITE_MEDIA_TIME_LIMIT = env_int("JOBSITE_MEDIA_TIME_LIMIT", 4 * 3600)
JOBSITE_MEDIA_MEMORY_MB = env_int("JOBSITE_MEDIA_MEMORY_MB", 2048)
# CTranslate2 threads per job: one core per worker process (scale with worker concurrency).
JOBSITE_MEDIA_THREADS = env_int("JOBSITE_MEDIA_THREADS", 1)
# Where a model shipped in parts (Whisper base) is put together once, then verified.
JOBSITE_MEDIA_MODEL_DIR = Path(os.environ.get("JOBSITE_MEDIA_MODEL_DIR", VAR_DIR / "models"))

# --- Webhooks: a job with a callback_url is told when it ends (jobs/webhooks/) ------------
# Seconds one delivery attempt may take (connect, send, the answer's first bytes).
JOBSITE_WEBHOOK_TIMEOUT = env_float("JOBSITE_WEBHOOK_TIMEOUT", 10.0)
# Retries (exponential, equal jitter) stop this long after the job ended; then failed.
JOBSITE_WEBHOOK_RETRY_WINDOW = env_float("JOBSITE_WEBHOOK_RETRY_WINDOW", 24 * 3600.0)
JOBSITE_WEBHOOK_BACKOFF_BASE = env_float("JOBSITE_WEBHOOK_BACKOFF_BASE", 5.0)
JOBSITE_WEBHOOK_BACKOFF_MAX = env_float("JOBSITE_WEBHOOK_BACKOFF_MAX", 3600.0)
# After a secret rotation, deliveries carry the old secret's signature too for this long.
JOBSITE_WEBHOOK_SECRET_GRACE = env_float("JOBSITE_WEBHOOK_SECRET_GRACE", 24 * 3600.0)
# The most jobs one POST /api/v1/batches/ creates (all in one transaction).
JOBSITE_BATCH_MAX_JOBS = env_int("JOBSITE_BATCH_MAX_JOBS", 1000)
# Memory access counts wait in Redis this long (at most) before reaching the table.
JOBSITE_ACCESS_FLUSH_INTERVAL = env_float("JOBSITE_ACCESS_FLUSH_INTERVAL", 10.0)

CELERY_BEAT_SCHEDULE = {
    "jobsite-sweep": {
        "task": "jobs.maintenance.sweep",
        "schedule": JOBSITE_SWEEP_INTERVAL,
        "options": {"queue": "maintenance", "expires": max(JOBSITE_SWEEP_INTERVAL * 2, 5)},
    },
    "jobsite-tally": {
        "task": "jobs.tally",
        "schedule": JOBSITE_METRICS_ROLLUP_INTERVAL,
        "options": {"queue": "maintenance", "expires": max(JOBSITE_METRICS_ROLLUP_INTERVAL, 5)},
    },
    "jobsite-memory-access": {
        "task": "processing.flush_memory_access",
        "schedule": JOBSITE_ACCESS_FLUSH_INTERVAL,
        "options": {"queue": "maintenance", "expires": 30},
    },
    # The daily purge and consolidation are rows of their own (jobs/migrations/0008),
    # edited in the admin: an entry here would overwrite them at every start of beat.
}

# How log lines look: "plain" text for people (make run), or "json", one object per line
# for log pipelines. Either way a line a job caused names the job (jobsite/logs.py).
JOBSITE_LOG_FORMAT = os.environ.get("JOBSITE_LOG_FORMAT", "plain").strip().lower()
if JOBSITE_LOG_FORMAT not in {"plain", "json"}:
    raise ValueError(f"JOBSITE_LOG_FORMAT is 'plain' or 'json', not {JOBSITE_LOG_FORMAT!r}")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {
            "class": "jobsite.logs.PlainFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s: %(message)s",
        },
        "json": {"()": "jobsite.logs.JsonFormatter"},
    },
    # The job's fields go on at the handler: records propagated from any logger get them.
    "filters": {"job": {"()": "jobsite.logs.JobContextFilter"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": JOBSITE_LOG_FORMAT,
            "filters": ["job"],
        }
    },
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # Celery logs every task twice (received, succeeded), the sweeper's every 2 s
        # included; jobs.services logs each job transition instead.
        "celery.app.trace": {"level": "WARNING"},
        "celery.worker.strategy": {"level": "WARNING"},
        "celery.beat": {"level": "WARNING"},
        # JSON lines from uvicorn too: its own handlers (plain text) give way to the root's
        # once the app, and so Django's logging, has loaded (before it listens).
        **(
            {name: {"handlers": [], "propagate": True} for name in ("uvicorn", "uvicorn.access")}
            if JOBSITE_LOG_FORMAT == "json"
            else {}
        ),
    },
}
APPEND_SLASH = False
