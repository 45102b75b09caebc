import secrets

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

PRODUCTION = "production"
STAGING = "staging"


class PromptVersion(models.Model):
    """An immutable system prompt: a change is a new version, so every answer names what made it.
    Which version is served is a label's job (PromptLabel), never the version's."""

    name = models.CharField(max_length=100, help_text="the prompt this is a version of")
    version = models.PositiveIntegerField()
    system_prompt = models.TextField()
    model = models.CharField(max_length=100, blank=True, help_text="empty: the configured LLM_MODEL")
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["name", "version"], name="prompt_version_unique")]
        ordering = ["name", "-version"]

    def __str__(self) -> str:
        return f"{self.name} v{self.version}"


class PromptLabel(models.Model):
    """A name pointing at one version of a prompt (`production` is what answers use); moving it
    deploys or rolls back."""

    prompt_name = models.CharField(max_length=100)
    label = models.SlugField(max_length=50)
    version = models.ForeignKey(PromptVersion, on_delete=models.CASCADE, related_name="labels")
    moved_at = models.DateTimeField(auto_now=True)
    moved_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                 related_name="+")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["prompt_name", "label"], name="prompt_label_unique")]
        ordering = ["prompt_name", "label"]

    def __str__(self) -> str:
        return f"{self.prompt_name}@{self.label}"


class PromptLabelMove(models.Model):
    """Who moved which label from which version to which, when, and why: the deploy history."""

    prompt_name = models.CharField(max_length=100)
    label = models.SlugField(max_length=50)
    from_version = models.ForeignKey(PromptVersion, null=True, blank=True, on_delete=models.SET_NULL,
                                     related_name="+")
    to_version = models.ForeignKey(PromptVersion, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    moved_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                 related_name="+")
    moved_at = models.DateTimeField(auto_now_add=True, db_index=True)
    reason = models.TextField(blank=True)

    class Meta:
        ordering = ["-moved_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.prompt_name}@{self.label}: {self.from_version_id} -> {self.to_version_id}"


def _salt() -> str:
    return secrets.token_hex(8)


class Experiment(models.Model):
    """Visitors split between arms by a hash of the experiment's salt and their visitor id."""

    class Status(models.TextChoices):
        DRAFT = "draft"
        RUNNING = "running"
        PAUSED = "paused"
        STOPPED = "stopped"

    class Metric(models.TextChoices):
        THUMBS_UP_RATE = "thumbs_up_rate", "thumbs-up rate"
        THUMBS_DOWN_RATE = "thumbs_down_rate", "thumbs-down rate"
        HANDOFF_RATE = "handoff_rate", "handoff rate"
        REUSE_RATE = "reuse_rate", "reuse rate"
        CONFIDENCE = "confidence", "mean confidence"
        COST_PER_ANSWER = "cost_per_answer", "cost per answer"

    class Guardrail(models.TextChoices):
        COST_PER_ANSWER = "cost_per_answer", "cost per answer"
        LATENCY_P95 = "latency_p95", "latency p95"
        HANDOFF_RATE = "handoff_rate", "handoff rate"
        THUMBS_DOWN_RATE = "thumbs_down_rate", "thumbs-down rate"

    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    salt = models.CharField(max_length=32, default=_salt, help_text="changing it reshuffles every visitor")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.DRAFT)
    audience_share = models.FloatField(
        default=1.0, validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text="share of visitors in the experiment (0 to 1); the others get production")
    languages = ArrayField(models.CharField(max_length=16), default=list, blank=True,
                           help_text="comma-separated language codes; empty: every language")
    primary_metric = models.CharField(max_length=32, choices=Metric.choices, default=Metric.THUMBS_UP_RATE)
    min_effect = models.FloatField(
        default=0.05, validators=[MinValueValidator(1e-9)],
        help_text="the smallest difference worth acting on, in the metric's units (0.05 = 5 points of a rate)")
    guardrails = ArrayField(models.CharField(max_length=32, choices=Guardrail.choices), default=list, blank=True)
    # Fixed when it starts (the latency threshold of the p95 guardrail, the cost guardrail's scale):
    # taken from the data later they would void the tests' guarantee.
    baseline = models.JSONField(default=dict, blank=True)
    winner = models.ForeignKey("Arm", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    stopped_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name


# What an arm may set for its generation (OpenAI chat-completion parameters), with the range each takes.
GENERATION_SETTINGS: dict[str, tuple[type, float, float]] = {
    "temperature": (float, 0.0, 2.0), "top_p": (float, 0.0, 1.0), "max_tokens": (int, 1, 32_000),
    "presence_penalty": (float, -2.0, 2.0), "frequency_penalty": (float, -2.0, 2.0),
}


def validate_generation(value: object) -> None:
    """An arm's generation settings: known names only, each a number in its range (a typo would otherwise
    be sent to the LLM, or silently ignored, for the whole experiment)."""
    if not isinstance(value, dict):
        raise ValidationError("Generation settings are an object, e.g. {\"temperature\": 0.2}.")
    for name, given in value.items():
        if name not in GENERATION_SETTINGS:
            raise ValidationError(f"Unknown generation setting {name!r}; known: {', '.join(GENERATION_SETTINGS)}.")
        kind, low, high = GENERATION_SETTINGS[name]
        number = isinstance(given, int | float) and not isinstance(given, bool)
        if not number or (kind is int and not isinstance(given, int)):
            raise ValidationError(f"{name} is a{'n integer' if kind is int else ' number'}.")
        if not low <= given <= high:
            raise ValidationError(f"{name} is between {low:g} and {high:g}.")


class Arm(models.Model):
    """One way of answering: a prompt version, optionally another model and generation settings."""

    class Status(models.TextChoices):
        ACTIVE = "active"
        PAUSED = "paused"

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="arms")
    name = models.SlugField(max_length=40, help_text="recorded on every answer; fixed once the experiment starts")
    prompt_version = models.ForeignKey(PromptVersion, on_delete=models.PROTECT, related_name="+")
    model = models.CharField(max_length=100, blank=True, help_text="empty: the prompt version's model")
    generation = models.JSONField(default=dict, blank=True, validators=[validate_generation],
                                  help_text='sent with each answer, e.g. {"temperature": 0.2, "max_tokens": 300}; '
                                            f"known: {', '.join(GENERATION_SETTINGS)}")
    weight = models.FloatField(default=1.0, validators=[MinValueValidator(0.0)])
    is_control = models.BooleanField(default=False)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    pause_reason = models.TextField(blank=True)
    paused_at = models.DateTimeField(null=True, blank=True)
    share_reuse = models.BooleanField(
        default=False, help_text="serve and store reused answers together with the control arm")
    shadow = models.BooleanField(default=False, help_text="answers in the background only, never shown")
    shadow_share = models.FloatField(default=0.0, validators=[MinValueValidator(0.0), MaxValueValidator(1.0)])
    shadow_budget = models.DecimalField(max_digits=10, decimal_places=4, default=0)
    # The primary metric's always-valid result at the last look, so a decision once made stays made.
    last_look = models.JSONField(default=dict, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["experiment", "name"], name="arm_name_unique"),
            models.UniqueConstraint(fields=["experiment"], condition=models.Q(is_control=True),
                                    name="one_control_arm"),
        ]
        ordering = ["experiment", "-is_control", "name"]

    def __str__(self) -> str:
        return f"{self.experiment.name}: {self.name}" if self.experiment_id else self.name

    @property
    def key(self) -> str:
        """What answers record as their arm (AnswerFact.arm)."""
        return arm_key(self.experiment_id, self.name)


def arm_key(experiment_id: int, arm_name: str) -> str:
    return f"{experiment_id}:{arm_name}"


class ShadowAnswer(models.Model):
    """A live answer answered again by a shadow arm, with the same question, knowledge and history.
    Never sent, cached, queued for review or recorded in monitoring's facts: only compared here."""

    class Preference(models.TextChoices):
        LIVE = "live"
        SHADOW = "shadow"
        TIE = "tie"

    arm = models.ForeignKey(Arm, on_delete=models.CASCADE, related_name="shadow_answers")
    # Deleted with the answer it shadows (a visitor's data goes with the visitor).
    live_message = models.ForeignKey("chat.Message", on_delete=models.CASCADE, related_name="+")
    question = models.TextField()
    live_text = models.TextField()
    shadow_text = models.TextField()
    model = models.CharField(max_length=100, blank=True, help_text="the model that gave the shadow answer")
    similarity = models.FloatField(null=True, blank=True, help_text="embedding cosine of the two answers")
    live_length = models.PositiveIntegerField(default=0, help_text="characters")
    shadow_length = models.PositiveIntegerField(default=0, help_text="characters")
    live_latency_ms = models.PositiveIntegerField(null=True, blank=True, help_text="the whole live pipeline")
    shadow_latency_ms = models.PositiveIntegerField(default=0, help_text="context and generation")
    live_tokens = models.PositiveIntegerField(default=0, help_text="in and out")
    shadow_tokens = models.PositiveIntegerField(default=0, help_text="in and out")
    live_cost = models.DecimalField(max_digits=12, decimal_places=6, default=0)
    cost = models.DecimalField(max_digits=12, decimal_places=6, default=0, help_text="what the arm's budget counts")
    preference = models.CharField(max_length=8, choices=Preference.choices, blank=True,
                                  help_text="the LLM judge's; empty: not judged")
    judge_reason = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["arm", "live_message"], name="shadow_answer_unique")]
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"shadow of {self.live_message_id} by arm {self.arm_id}"
