import uuid

from django.db import models


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
    confidence = models.FloatField(null=True, blank=True)
    sources = models.JSONField(default=list, blank=True)
    timings = models.JSONField(default=dict, blank=True, help_text="milliseconds per pipeline step")
    pii_redacted = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    completed_at = models.DateTimeField(null=True, blank=True)

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
