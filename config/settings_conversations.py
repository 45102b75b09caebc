"""Settings of conversations: how a follow-up is made to stand alone (chat/standalone.py; config/settings.py
imports them)."""

from django.core.exceptions import ImproperlyConfigured

from config.environment import env

# --- Conversations: standalone questions (chat/standalone.py) ---
# A follow-up is searched and reused as a question that stands alone. With an LLM, one short rewrite call:
# its model (empty: LLM_MODEL), a deadline it must meet (or the offline form is used), its length.
STANDALONE_LLM = env.bool("STANDALONE_LLM", default=True)
STANDALONE_MODEL = env.str("STANDALONE_MODEL", default="")
STANDALONE_TIMEOUT_SECONDS = env.float("STANDALONE_TIMEOUT_SECONDS", default=1.5)
STANDALONE_MAX_TOKENS = env.int("STANDALONE_MAX_TOKENS", default=80)
if not 0 < STANDALONE_TIMEOUT_SECONDS <= 10:  # every follow-up waits for it before search starts
    raise ImproperlyConfigured("STANDALONE_TIMEOUT_SECONDS must be above 0 and at most 10")
# The offline method (values chosen on bench/conversation.py): how many of the conversation's words join the
# question, the least IDF such a word needs (0: it is in fewer than half the chunks; a word in most of them
# moves the search nowhere), how much each older
# question weighs against the one before it, the floor of the opening question (it usually names the subject),
# the weight and number of the titles the last answer cited.
STANDALONE_CONTEXT_WORDS = env.int("STANDALONE_CONTEXT_WORDS", default=4)
STANDALONE_MIN_IDF = env.float("STANDALONE_MIN_IDF", default=0.0)
STANDALONE_RECENCY_DECAY = env.float("STANDALONE_RECENCY_DECAY", default=0.85)
STANDALONE_OPENING_WEIGHT = env.float("STANDALONE_OPENING_WEIGHT", default=0.7)
# An earlier question sharing a word that names documents (IDF >= STANDALONE_NAMING_MIN_IDF) with the follow-up
# ("the causes in Asia" after "the causes of stigma in Africa") weighs at least this, whatever its age
# (bench/conversation.py: 0.85 and 1.0 alike, 1.5 worse).
STANDALONE_PARALLEL_WEIGHT = env.float("STANDALONE_PARALLEL_WEIGHT", default=1.0)
STANDALONE_TITLE_WEIGHT = env.float("STANDALONE_TITLE_WEIGHT", default=0.8)
STANDALONE_CITED_TITLES = env.int("STANDALONE_CITED_TITLES", default=1)
# What the conversation's words count for in the full-text rank, against 1 for the question's own words: the
# follow-up says what is asked, the context only what about.
STANDALONE_CONTEXT_WEIGHT = env.float("STANDALONE_CONTEXT_WEIGHT", default=0.5)
if not 0 <= STANDALONE_CONTEXT_WEIGHT <= 1:
    raise ImproperlyConfigured("STANDALONE_CONTEXT_WEIGHT must be from 0 to 1")
# A question stands alone (left as it is) with this many known words of its own, or with one word rarer than
# this IDF that is in document titles, and no word pointing back ("it", "that one").
STANDALONE_OWN_WORDS = env.int("STANDALONE_OWN_WORDS", default=4)
STANDALONE_NAMING_MIN_IDF = env.float("STANDALONE_NAMING_MIN_IDF", default=2.0)
if STANDALONE_CONTEXT_WORDS < 0 or STANDALONE_CITED_TITLES < 0 or STANDALONE_OWN_WORDS < 1:
    raise ImproperlyConfigured("STANDALONE_CONTEXT_WORDS and STANDALONE_CITED_TITLES must be 0 or more, "
                               "STANDALONE_OWN_WORDS 1 or more")
