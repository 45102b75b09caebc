"""Settings of monitoring: metrics access, rollups, drift and new topics, alerts and anomalies (config/settings.py
imports them; the beat jobs that use them are listed there)."""

from django.core.exceptions import ImproperlyConfigured

from config.environment import env

# --- Monitoring ----------------------------------------------------------------------------------
# /metrics (Prometheus) answers a bearer METRICS_TOKEN, or these addresses without one.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
METRICS_ALLOWED_IPS = env.list("METRICS_ALLOWED_IPS", default=["127.0.0.1", "::1"])
# Rollups (monitoring/rollups.py): raw answer facts older than this are compacted away (their rollups stay);
# minute rollups (and the sampled review queue levels) go after MONITORING_MINUTE_ROLLUP_DAYS, hour rollups stay.
MONITORING_RAW_FACT_DAYS = env.int("MONITORING_RAW_FACT_DAYS", default=90)
MONITORING_MINUTE_ROLLUP_DAYS = env.int("MONITORING_MINUTE_ROLLUP_DAYS", default=8)
# An answer below this confidence counts as low-confidence on the dashboard.
MONITORING_LOW_CONFIDENCE_BELOW = env.float("MONITORING_LOW_CONFIDENCE_BELOW", default=0.5)

# --- Monitoring: drift and new topics (monitoring/drift.py) ------------------------------------------
# Every DRIFT_WINDOW_MINUTES the beat job judges the window that just ended against a reference: the
# DRIFT_REFERENCE_HOURS ending DRIFT_REFERENCE_GAP_HOURS before it, so a topic that is only starting is not
# yet part of what it is compared with. At most DRIFT_REFERENCE_MAX_QUESTIONS questions are sampled from
# each; a window or reference with fewer than DRIFT_MIN_ANSWERS answers is not judged.
DRIFT_WINDOW_MINUTES = env.int("DRIFT_WINDOW_MINUTES", default=60)
DRIFT_REFERENCE_HOURS = env.int("DRIFT_REFERENCE_HOURS", default=7 * 24)
DRIFT_REFERENCE_GAP_HOURS = env.int("DRIFT_REFERENCE_GAP_HOURS", default=24)
DRIFT_REFERENCE_MAX_QUESTIONS = env.int("DRIFT_REFERENCE_MAX_QUESTIONS", default=2000)
DRIFT_MIN_ANSWERS = env.int("DRIFT_MIN_ANSWERS", default=20)
# A question is novel when nothing in the reference is as close to it as all but the DRIFT_NOVELTY_ALPHA
# share of reference questions are to their nearest neighbour; the null of a window's novel-and-grouped
# count is drawn from DRIFT_NULL_DRAWS windows held out of the reference.
DRIFT_NOVELTY_ALPHA = env.float("DRIFT_NOVELTY_ALPHA", default=0.2)
DRIFT_NULL_DRAWS = env.int("DRIFT_NULL_DRAWS", default=30)
# A novel question also counts when a novel question of one of the DRIFT_NOVELTY_HISTORY windows before it
# resembles it: a topic too sparse for two of its askers to meet in one window meets across a few (0: each
# window alone). It must stay within the reference gap, so the windows looked back at are never reference.
DRIFT_NOVELTY_HISTORY = env.int("DRIFT_NOVELTY_HISTORY", default=2)
# Each kind's z-scores accumulate in a one-sided CUSUM: a window adds its z less the slack, and the check
# alarms while the sum is at or above the threshold (bench/drift.py measures both against false alarms).
DRIFT_CUSUM_SLACK = env.float("DRIFT_CUSUM_SLACK", default=1.0)
DRIFT_CUSUM_THRESHOLD = env.float("DRIFT_CUSUM_THRESHOLD", default=6.0)
if DRIFT_CUSUM_SLACK < 0 or DRIFT_CUSUM_THRESHOLD <= 0 or not 0 < DRIFT_NOVELTY_ALPHA < 1:
    raise ImproperlyConfigured("DRIFT_CUSUM_SLACK ≥ 0, DRIFT_CUSUM_THRESHOLD > 0 and 0 < DRIFT_NOVELTY_ALPHA < 1")
if not 0 <= DRIFT_NOVELTY_HISTORY * DRIFT_WINDOW_MINUTES <= DRIFT_REFERENCE_GAP_HOURS * 60:
    raise ImproperlyConfigured("DRIFT_NOVELTY_HISTORY windows must fit in DRIFT_REFERENCE_GAP_HOURS (and be ≥ 0)")
# Coverage drift: an answer whose best knowledge-base match (cosine) is below this is weakly covered.
DRIFT_WEAK_MATCH_BELOW = env.float("DRIFT_WEAK_MATCH_BELOW", default=0.5)
# New topics: the questions of the last DRIFT_TOPIC_HORIZON_HOURS (at most DRIFT_TOPIC_MAX_QUESTIONS of them)
# that are novel or answered poorly, in clusters of at least DRIFT_TOPIC_MIN_SIZE; a cluster whose centre is
# within DRIFT_TOPIC_MATCH_SIMILARITY (cosine) of a known one's is that one, grown or shrunk. The horizon is
# short because every hour adds a few outliers of known topics that resemble each other by chance; a topic
# that lasts longer is still one cluster, matched check after check, with its trend.
DRIFT_TOPIC_HORIZON_HOURS = env.int("DRIFT_TOPIC_HORIZON_HOURS", default=6)
DRIFT_TOPIC_MAX_QUESTIONS = env.int("DRIFT_TOPIC_MAX_QUESTIONS", default=5000)
DRIFT_TOPIC_MIN_SIZE = env.int("DRIFT_TOPIC_MIN_SIZE", default=5)
DRIFT_TOPIC_MATCH_SIMILARITY = env.float("DRIFT_TOPIC_MATCH_SIMILARITY", default=0.8)

# --- Monitoring: alerts and anomalies (monitoring/alerts.py, monitoring/anomaly.py) ----------------------
# Where alerts go is configured in admin (Alert channels). A webhook that fails or answers non-2xx is
# retried ALERT_DELIVERY_RETRIES times with growing delays (from 15 s, doubling, at most 10 min apart: the
# default covers about half an hour of a receiver being down); every attempt is logged (Alert deliveries).
ALERT_DELIVERY_RETRIES = env.int("ALERT_DELIVERY_RETRIES", default=8)
ALERT_WEBHOOK_TIMEOUT_SECONDS = env.float("ALERT_WEBHOOK_TIMEOUT_SECONDS", default=10.0)
# Conditions the alerts job watches: an LLM circuit breaker open this long, the oldest waiting review item
# waiting this long (0: never), today's LLM cost (the day in TIME_ZONE) over this budget in USD (0: none).
ALERT_BREAKER_OPEN_SECONDS = env.int("ALERT_BREAKER_OPEN_SECONDS", default=300)
ALERT_REVIEW_QUEUE_WAIT_MINUTES = env.int("ALERT_REVIEW_QUEUE_WAIT_MINUTES", default=240)
ALERT_DAILY_COST_BUDGET_USD = env.float("ALERT_DAILY_COST_BUDGET_USD", default=0.0)
# Anomalies: an hour is compared with the same hour of the week over the past ANOMALY_WEEKS weeks (judged
# once ANOMALY_MIN_WEEKS are known) and alerts at a robust score of ANOMALY_THRESHOLD; the baseline's spread
# is at least ANOMALY_RELATIVE_FLOOR of its median. Rates and latency are judged on hours with at least
# ANOMALY_MIN_ANSWERS_PER_HOUR answers.
ANOMALY_WEEKS = env.int("ANOMALY_WEEKS", default=8)
ANOMALY_MIN_WEEKS = env.int("ANOMALY_MIN_WEEKS", default=3)
ANOMALY_THRESHOLD = env.float("ANOMALY_THRESHOLD", default=6.0)
ANOMALY_RELATIVE_FLOOR = env.float("ANOMALY_RELATIVE_FLOOR", default=0.1)
ANOMALY_MIN_ANSWERS_PER_HOUR = env.int("ANOMALY_MIN_ANSWERS_PER_HOUR", default=20)
if ANOMALY_MIN_WEEKS < 1 or ANOMALY_MIN_WEEKS > ANOMALY_WEEKS:
    raise ImproperlyConfigured("ANOMALY_MIN_WEEKS must be between 1 and ANOMALY_WEEKS")
