import uuid

from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.db import models
from django.db.models.functions import Upper
from pgvector.django import VectorField


class Conversation(models.Model):
    class Status(models.TextChoices):
        OPEN = "open"
        HANDOFF = "handoff", "waiting for a human"
        CLOSED = "closed"

    class Channel(models.TextChoices):
        WIDGET = "widget"
        API = "api"
        OPENAI = "openai", "OpenAI-compatible API"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    visitor_id = models.CharField(max_length=64, db_index=True)
    channel = models.CharField(max_length=16, choices=Channel.choices, default=Channel.WIDGET)
    language = models.CharField(max_length=16, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN)
    # Turns older than the verbatim window, folded into a running summary (chat/memory.py).
    summary = models.TextField(blank=True)
    summary_through = models.PositiveIntegerField(default=0, help_text="last message sequence in the summary")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at"]

    def __str__(self) -> str:
        return f"conversation {self.id}"


class Message(models.Model):
    class Role(models.TextChoices):
        USER = "user"
        ASSISTANT = "assistant"
        HUMAN = "human", "human agent"

    class Status(models.TextChoices):
        STREAMING = "streaming"
        COMPLETE = "complete"
        FAILED = "failed"
        HELD = "held", "held for a trainer"  # generated, not sent: waits for a trainer (REVIEW_HOLD_BELOW)

    class Reuse(models.TextChoices):
        NONE = "none"
        APPROVED = "approved"
        CACHE = "cache"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="messages")
    sequence = models.PositiveIntegerField()
    role = models.CharField(max_length=16, choices=Role.choices)
    text = models.TextField(blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.COMPLETE)
    error = models.TextField(blank=True)
    client_msg_id = models.CharField(max_length=100, blank=True)
    reply_to = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    # Facts of an assistant answer
    model = models.CharField(max_length=100, blank=True)
    prompt_version_id = models.IntegerField(null=True, blank=True)
    tokens_in = models.PositiveIntegerField(default=0)
    tokens_out = models.PositiveIntegerField(default=0)
    cost = models.DecimalField(max_digits=12, decimal_places=6, default=0)
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    ttft_ms = models.PositiveIntegerField(null=True, blank=True, verbose_name="time to first token (ms)")
    reuse = models.CharField(max_length=16, choices=Reuse.choices, default=Reuse.NONE)
    reused_entry = models.ForeignKey(
        "CacheEntry", null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        help_text="the cache entry this answer was served from",
    )
    approved_answer = models.ForeignKey(
        "review.ApprovedAnswer", null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
    )
    reuse_details = models.JSONField(default=dict, blank=True, help_text="the precision guard's verdict")
    cost_avoided = models.DecimalField(max_digits=12, decimal_places=6, default=0)
    context_tokens = models.PositiveIntegerField(default=0, help_text="tokens sent to the model")
    full_history_tokens = models.PositiveIntegerField(
        default=0, help_text="tokens the whole conversation would have needed without summary and budget"
    )
    confidence = models.FloatField(null=True, blank=True)
    sources = models.JSONField(default=list, blank=True)
    timings = models.JSONField(default=dict, blank=True, help_text="milliseconds per pipeline step")
    pii_redacted = models.BooleanField(default=False)
    standalone_query = models.TextField(
        blank=True, help_text="a follow-up as search and reuse read it, made to stand alone from the conversation",
    )
    refused = models.BooleanField(
        default=False, help_text="the safety policy's fixed sentence: never approved, cached or reused",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    held_until = models.DateTimeField(null=True, blank=True, help_text="a held answer is sent as it is then")

    class Meta:
        ordering = ["conversation_id", "sequence"]
        constraints = [
            models.UniqueConstraint(fields=["conversation", "sequence"], name="message_sequence_unique"),
            # A client that re-sends after a reconnect must not create the question twice.
            models.UniqueConstraint(
                fields=["conversation", "client_msg_id"],
                condition=~models.Q(client_msg_id=""),
                name="message_client_id_unique",
            ),
        ]
        indexes = [models.Index(fields=["status", "created_at"], name="message_status_created")]

    def __str__(self) -> str:
        return f"{self.role} #{self.sequence} in {self.conversation_id}"


class Feedback(models.Model):
    class Value(models.TextChoices):
        UP = "up", "thumbs up"
        DOWN = "down", "thumbs down"

    message = models.OneToOneField(Message, on_delete=models.CASCADE, related_name="feedback")
    value = models.CharField(max_length=8, choices=Value.choices)
    reason = models.CharField(max_length=200, blank=True)
    comment = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.value} on {self.message_id}"


class VisitorProfile(models.Model):
    """What a visitor told us about themselves, used in the context of their answers only.

    Visible, editable and deletable by the visitor (API and widget). Which facts are kept and how
    they are labelled is the deployment's configuration (CHAT_PROFILE_CONFIG), not code."""

    visitor_id = models.CharField(max_length=64, unique=True)
    language = models.CharField(max_length=16, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"profile of {self.visitor_id}"

    def is_empty(self) -> bool:
        return not (self.language or self.facts.all())


class VisitorFact(models.Model):
    """One thing a visitor stated, under a label from the profile configuration ("goal", "note").

    A label may hold several values; the same value twice under one label is one fact."""

    profile = models.ForeignKey(VisitorProfile, on_delete=models.CASCADE, related_name="facts")
    label = models.CharField(max_length=64)
    value = models.CharField(max_length=300)
    message = models.ForeignKey(
        Message, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        help_text="the message it was picked from; empty: stated in the profile itself",
    )
    created_at = models.DateTimeField(auto_now_add=True, help_text="when it was learned")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            # Upper, as Django's iexact lookup compares: a value found equal is the one the rule counts.
            models.UniqueConstraint("profile", "label", Upper("value"), name="visitorfact_one_per_value"),
        ]

    def __str__(self) -> str:
        return f"{self.label}: {self.value}"


class CacheEntry(models.Model):
    """A complete answer, reusable for the same or an equivalent question within its scope.

    Scope = embedding space + prompt version + knowledge-base version + language, and for an answer
    shaped by a visitor's profile that visitor and profile (chat/reuse/scope.py): a change to any of
    them makes the entry unreachable (and the eviction job removes it)."""

    question = models.TextField()
    question_hash = models.CharField(max_length=64, help_text="sha256 of the normalised question")
    answer = models.TextField()
    # Entries with the same key give the same answer: the precision guard counts them as agreeing.
    answer_key = models.CharField(max_length=64)
    sources = models.JSONField(default=list, blank=True)
    chunk_ids = ArrayField(models.BigIntegerField(), default=list, blank=True)
    document_ids = ArrayField(models.BigIntegerField(), default=list, blank=True)
    confidence = models.FloatField(null=True, blank=True)
    space_id = models.IntegerField()
    embedding = VectorField()  # sized by the space; one partial HNSW index per space (chat/reuse/services.py)
    prompt_version_id = models.IntegerField(null=True, blank=True)
    kb_version = models.IntegerField()
    language = models.CharField(max_length=16)
    # Set only for an answer shaped by a visitor's profile: served to that visitor and profile alone.
    visitor_id = models.CharField(max_length=64, blank=True)
    profile_hash = models.CharField(max_length=64, blank=True)
    model = models.CharField(max_length=100, blank=True)
    tokens_in = models.PositiveIntegerField(default=0)
    tokens_out = models.PositiveIntegerField(default=0)
    cost = models.DecimalField(max_digits=12, decimal_places=6, default=0, help_text="what generating it cost")
    message = models.ForeignKey(
        Message, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", help_text="the answer stored"
    )
    alias_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.CASCADE, related_name="aliases",
        help_text="a question this entry's answer was served for",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    hits = models.PositiveIntegerField(default=0)
    last_hit_at = models.DateTimeField(null=True, blank=True)
    blocked_at = models.DateTimeField(null=True, blank=True)
    blocked_reason = models.CharField(max_length=200, blank=True)

    class Meta:
        verbose_name_plural = "cache entries"
        indexes = [
            models.Index(fields=["question_hash"], name="cacheentry_question"),
            models.Index(fields=["answer_key"], name="cacheentry_answer_key"),
            models.Index(fields=["created_at"], name="cacheentry_created"),
            GinIndex(fields=["document_ids"], name="cacheentry_documents"),
        ]

    def __str__(self) -> str:
        return self.question[:80]


class CacheVote(models.Model):
    """A visitor's thumbs-down on an answer served from, or stored as, a cache entry (chat/reuse/).

    The entry is no longer served to that visitor; CACHE_BLOCK_DOWNVOTES distinct visitors block it
    for everyone. Goes with the feedback: changed to a thumbs-up, or deleted with the visitor's data."""

    entry = models.ForeignKey(CacheEntry, on_delete=models.CASCADE, related_name="votes",
                              help_text="the entry the answer came from (an alias's original)")
    feedback = models.OneToOneField(Feedback, on_delete=models.CASCADE, related_name="cache_vote")
    visitor_id = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["visitor_id", "entry"], name="cachevote_visitor_entry")]

    def __str__(self) -> str:
        return f"thumbs down by {self.visitor_id} on entry {self.entry_id}"


class CacheCalibration(models.Model):
    """Precision-guard thresholds computed by `manage.py cache_calibrate`; the newest one is used."""

    params = models.JSONField(help_text="chat.reuse.guard.GuardParams fields")
    target_precision = models.FloatField()
    precision = models.FloatField(help_text="measured on the labelled data, leave-one-out")
    hit_rate = models.FloatField()
    labelled = models.PositiveIntegerField(help_text="labelled questions used")
    source = models.CharField(max_length=300)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"calibration {self.created_at:%Y-%m-%d %H:%M} (precision {self.precision:.3f})"

from .models_budgets import *  # noqa: E402,F403
from .models_pii import *  # noqa: E402,F403
from .models_privacy import *  # noqa: E402,F403
from .models_safety import *  # noqa: E402,F403
