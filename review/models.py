from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.utils import timezone
from pgvector.django import VectorField


class ReviewItem(models.Model):
    """An answer a trainer should look at, queued by the signals in `reasons`; the highest learning value
    comes first. The states and who may move an item between them are the services' (review/services.py)."""

    class Status(models.TextChoices):
        PENDING = "pending"
        CLAIMED = "claimed"
        APPROVED = "approved"
        EDITED = "edited", "edited and approved"
        REJECTED = "rejected"
        # Skipped by REVIEW_MAX_SKIPS trainers: out of the queue until a new signal brings it back.
        SKIPPED = "skipped"
        # A near-duplicate of an open item's question (`representative`): its decision covers this one.
        GROUPED = "grouped", "grouped under another"

    class Reason(models.TextChoices):
        LOW_CONFIDENCE = "low_confidence", "low confidence"
        NO_KB_MATCH = "no_kb_match", "no knowledge-base match"
        THUMBS_DOWN = "thumbs_down", "thumbs down"
        HANDOFF = "handoff", "asked for a human"
        CACHE_NEAR_MISS = "cache_near_miss", "near-miss of the cache"
        REPEATED_QUESTION = "repeated_question", "repeated unanswered question"
        HELD = "held", "held: the visitor waits"
        # Staff sent a new-topic cluster from the drift report (monitoring's `topic_sent_to_review`).
        NEW_TOPIC = "new_topic", "new topic"
        # Content safety (chat/safety/): the policy in admin says which of these reach the queue.
        INJECTION = "injection", "suspected prompt injection"
        MODERATION = "moderation", "flagged by moderation"
        LEAK = "leak", "system prompt leaked"

    DECIDED = (Status.APPROVED, Status.EDITED, Status.REJECTED)

    message = models.OneToOneField("chat.Message", on_delete=models.CASCADE, related_name="review_item")
    priority = models.FloatField(help_text="the answer's uncertainty: 1 - confidence, never lowered")
    reason = models.CharField(max_length=200, help_text="the latest reason, as a trainer reads it")
    reasons = ArrayField(models.CharField(max_length=32, choices=Reason.choices), default=list, blank=True)
    feedback_reason = models.CharField(max_length=200, blank=True, help_text="the visitor's thumbs-down reason")
    learning_value = models.FloatField(default=0.0, help_text="what a decision teaches (REVIEW_WEIGHTS)")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    claimed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    claimed_at = models.DateTimeField(null=True, blank=True)
    skip_count = models.PositiveIntegerField(default=0)
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    decided_at = models.DateTimeField(null=True, blank=True)
    # Density and grouping (review/learning.py): the question in the active embedding space, how many
    # unresolved questions it stands for, and the terms of its learning value as a trainer reads them.
    question_embedding = VectorField(null=True, blank=True)
    space_id = models.IntegerField(null=True, blank=True)
    representative = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL,
                                       related_name="represented", help_text="the item this one is grouped under")
    represents = models.PositiveIntegerField(default=1, help_text="questions its decision covers, itself included")
    density = models.FloatField(default=0.0, help_text="unresolved questions nearby, less those already covered")
    not_grouped_with = ArrayField(models.BigIntegerField(), default=list, blank=True,
                                  help_text="items a trainer said this question is not the same as")
    value_terms = models.JSONField(default=dict, blank=True, help_text="the learning value, term by term")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-learning_value", "created_at"]
        indexes = [models.Index(fields=["status", "-learning_value"], name="review_queue")]

    def __str__(self) -> str:
        return f"review of {self.message_id} ({self.status})"


class ReviewDecision(models.Model):
    """One state change of a review item: who, when, and the item before and after."""

    class Action(models.TextChoices):
        CLAIM = "claim"
        RELEASE = "release"
        APPROVE = "approve"
        EDIT = "edit", "edit and approve"
        REJECT = "reject"
        SKIP = "skip"
        REOPEN = "reopen"
        COVER = "cover", "covered by its group's decision"
        UNGROUP = "ungroup", "taken out of a group"

    item = models.ForeignKey(ReviewItem, on_delete=models.CASCADE, related_name="decisions")
    action = models.CharField(max_length=16, choices=Action.choices)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                             related_name="+", help_text="empty when a visitor's signal reopened the item")
    at = models.DateTimeField(default=timezone.now)
    before = models.JSONField(default=dict, blank=True)
    after = models.JSONField(default=dict, blank=True)
    diff = models.TextField(blank=True, help_text="unified diff of an edited answer")
    note = models.TextField(blank=True, help_text="why: the reject reason, the signal that reopened it")

    class Meta:
        ordering = ["at", "pk"]

    def __str__(self) -> str:
        return f"{self.action} of {self.item_id}"


class ApprovedAnswer(models.Model):
    """A trainer-verified answer, served first when a new question matches its question."""

    question = models.TextField()
    answer = models.TextField()
    chunk_ids = ArrayField(models.BigIntegerField(), default=list, blank=True, help_text="chunks it rests on")
    sources = models.JSONField(default=list, blank=True)
    language = models.CharField(max_length=16, default="en")
    scope = models.CharField(
        max_length=100, blank=True, help_text="a prompt name to serve it only there; empty for every prompt"
    )
    expires_at = models.DateTimeField(null=True, blank=True)
    is_active = models.BooleanField(default=True)
    hit_count = models.PositiveIntegerField(default=0)
    last_hit_at = models.DateTimeField(null=True, blank=True)
    # The question embedded in one space; re-embedded when the active space changes.
    space_id = models.IntegerField(null=True, blank=True)
    embedding = VectorField(null=True, blank=True)
    source_message = models.ForeignKey("chat.Message", null=True, blank=True, on_delete=models.SET_NULL,
                                       related_name="+")
    review_item = models.ForeignKey(ReviewItem, null=True, blank=True, on_delete=models.SET_NULL,
                                    related_name="approved_answers", help_text="the review it was approved in")
    original_answer = models.TextField(blank=True, help_text="the answer as given, when a trainer edited it")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.question[:80]


# --- evaluation -------------------------------------------------------------------------------------


class EvaluationSet(models.Model):
    """Questions with reference answers a model and prompt version are scored on."""

    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    from_approved = models.BooleanField(
        default=False, help_text="every answer a trainer approves joins this set (the held-out evaluation set)"
    )
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class EvaluationCase(models.Model):
    evaluation_set = models.ForeignKey(EvaluationSet, on_delete=models.CASCADE, related_name="cases")
    question = models.TextField()
    reference = models.TextField(help_text="the answer a good answer should agree with")
    language = models.CharField(max_length=16, default="en")
    approved_answer = models.ForeignKey(ApprovedAnswer, null=True, blank=True, on_delete=models.SET_NULL,
                                        related_name="evaluation_cases")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["pk"]
        constraints = [
            models.UniqueConstraint(fields=["evaluation_set", "question"], name="evaluation_case_unique_question"),
        ]

    def __str__(self) -> str:
        return self.question[:80]


class EvaluationRun(models.Model):
    """Every case of a set answered by one model and prompt version, and scored (a Celery job)."""

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"

    evaluation_set = models.ForeignKey(EvaluationSet, on_delete=models.CASCADE, related_name="runs")
    model = models.CharField(max_length=100, blank=True, help_text="empty: the served model")
    prompt_version = models.ForeignKey("experiments.PromptVersion", null=True, blank=True,
                                       on_delete=models.SET_NULL, related_name="+",
                                       help_text="empty: the active prompt version")
    judge_model = models.CharField(max_length=100, blank=True, help_text="the LLM judge; empty: no judge")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    total = models.PositiveIntegerField(default=0)
    done = models.PositiveIntegerField(default=0)
    # Means over the cases: similarity, faithfulness, judge (when judged), overall, failed.
    scores = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"run {self.pk} of {self.evaluation_set_id}"


class EvaluationResult(models.Model):
    run = models.ForeignKey(EvaluationRun, on_delete=models.CASCADE, related_name="results")
    case = models.ForeignKey(EvaluationCase, on_delete=models.CASCADE, related_name="results")
    answer = models.TextField(blank=True)
    excerpts = models.JSONField(default=list, blank=True, help_text="the cited excerpts the answer was given")
    similarity = models.FloatField(null=True, blank=True, help_text="cosine of answer and reference embeddings")
    faithfulness = models.FloatField(null=True, blank=True, help_text="share of sentences the excerpts support")
    judge = models.FloatField(null=True, blank=True, help_text="the LLM judge's score, 0 to 1")
    judge_note = models.TextField(blank=True)
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["case_id"]
        constraints = [models.UniqueConstraint(fields=["run", "case"], name="evaluation_result_unique_case")]

    def __str__(self) -> str:
        return f"case {self.case_id} in run {self.run_id}"


# --- fine-tuning ------------------------------------------------------------------------------------


class FineTuneRun(models.Model):
    """One fine-tuning attempt: export, upload, the provider's job, the gate's evaluation, the outcome."""

    class Status(models.TextChoices):
        EXPORTING = "exporting"
        TRAINING = "training"
        EVALUATING = "evaluating"
        PROMOTED = "promoted"
        REFUSED = "refused", "refused by the quality gate"
        READY = "ready", "passed the gate, not promoted"
        FAILED = "failed"
        OFFLINE = "offline", "exported; no LLM configured"
        ROLLED_BACK = "rolled_back", "rolled back"

    class Trigger(models.TextChoices):
        NEW_EXAMPLES = "new_examples", "new examples"
        THUMBS_DOWN = "thumbs_down", "thumbs-down rate"
        MANUAL = "manual"

    trigger = models.CharField(max_length=16, choices=Trigger.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.EXPORTING)
    base_model = models.CharField(max_length=100)
    fine_tuned_model = models.CharField(max_length=200, blank=True)
    examples = models.PositiveIntegerField(default=0, help_text="training examples uploaded")
    validation_examples = models.PositiveIntegerField(default=0)
    training_file_id = models.CharField(max_length=100, blank=True)
    validation_file_id = models.CharField(max_length=100, blank=True)
    job_id = models.CharField(max_length=100, blank=True)
    job_status = models.CharField(max_length=32, blank=True, help_text="as the provider reports it")
    trained_tokens = models.PositiveIntegerField(null=True, blank=True)
    baseline_run = models.ForeignKey(EvaluationRun, null=True, blank=True, on_delete=models.SET_NULL,
                                     related_name="+", help_text="the current model on the held-out set")
    candidate_run = models.ForeignKey(EvaluationRun, null=True, blank=True, on_delete=models.SET_NULL,
                                      related_name="+", help_text="the fine-tuned model on the held-out set")
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+", help_text="empty: started by the beat job")
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"fine-tune {self.pk} ({self.status})"


class ModelPromotion(models.Model):
    """The served model changed: a fine-tuned model promoted, or rolled back. The newest row names the
    model answers use when their prompt version names none."""

    class Action(models.TextChoices):
        PROMOTE = "promote"
        ROLLBACK = "rollback"

    run = models.ForeignKey(FineTuneRun, on_delete=models.PROTECT, related_name="promotions")
    action = models.CharField(max_length=16, choices=Action.choices)
    model_before = models.CharField(max_length=200, blank=True, help_text="empty: the configured LLM_MODEL")
    model_after = models.CharField(max_length=200, blank=True, help_text="empty: the configured LLM_MODEL")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                             related_name="+", help_text="empty: promoted by the gate")
    at = models.DateTimeField(default=timezone.now)
    note = models.TextField(blank=True)

    class Meta:
        ordering = ["-at", "-pk"]
        get_latest_by = ["at", "pk"]

    def __str__(self) -> str:
        return f"{self.action} to {self.model_after or 'the configured model'}"


# --- a person in the conversation -------------------------------------------------------------------


class Handoff(models.Model):
    """A visitor asked for a person: waiting until a trainer takes the conversation over, then theirs
    until they hand it back to the assistant or close it. While one is waiting or taken, the assistant
    does not answer in that conversation."""

    class Reason(models.TextChoices):
        ASKED = "asked", "asked for a person"
        NOT_ANSWERED = "not_answered", "the assistant could not answer"
        UNHAPPY = "unhappy", "unhappy with the answers"
        ACCOUNT = "account", "a personal or account matter"
        URGENT = "urgent", "urgent or safety matter"

    class Status(models.TextChoices):
        WAITING = "waiting", "waiting for a person"
        TAKEN = "taken", "taken over"
        RETURNED = "returned", "handed back to the assistant"
        CLOSED = "closed"

    OPEN = (Status.WAITING, Status.TAKEN)

    conversation = models.ForeignKey("chat.Conversation", on_delete=models.CASCADE, related_name="handoffs")
    reason = models.CharField(max_length=16, choices=Reason.choices, default=Reason.ASKED)
    detail = models.CharField(max_length=300, blank=True, help_text="what the visitor said when asking")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.WAITING)
    requested_at = models.DateTimeField(default=timezone.now)
    taken_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                 related_name="+")
    taken_at = models.DateTimeField(null=True, blank=True)
    first_reply_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    resolved = models.BooleanField(null=True, blank=True, help_text="closed as resolved (or not) by the trainer")
    notified_at = models.DateTimeField(null=True, blank=True, help_text="staff told by e-mail and webhook")

    class Meta:
        ordering = ["requested_at", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["conversation"], condition=models.Q(status__in=["waiting", "taken"]),
                                    name="one_open_handoff_per_conversation"),
        ]

    def __str__(self) -> str:
        return f"handoff of {self.conversation_id} ({self.status})"


class SupportHours(models.Model):
    """When trainers answer handoffs (SUPPORT_TIME_ZONE); outside them a visitor is told when someone
    will. No rows: always staffed."""

    class Weekday(models.IntegerChoices):
        MONDAY = 0
        TUESDAY = 1
        WEDNESDAY = 2
        THURSDAY = 3
        FRIDAY = 4
        SATURDAY = 5
        SUNDAY = 6

    weekday = models.PositiveSmallIntegerField(choices=Weekday.choices)
    opens = models.TimeField()
    closes = models.TimeField()

    class Meta:
        ordering = ["weekday", "opens"]
        verbose_name_plural = "support hours"
        constraints = [models.CheckConstraint(condition=models.Q(opens__lt=models.F("closes")),
                                              name="support_hours_open_before_close")]

    def __str__(self) -> str:
        return f"{self.get_weekday_display()} {self.opens:%H:%M}–{self.closes:%H:%M}"
