from django.conf import settings
from django.db import models


class PromptVersion(models.Model):
    """An immutable system prompt: a change is a new version, so every answer names what made it."""

    name = models.CharField(max_length=100)
    version = models.PositiveIntegerField()
    system_prompt = models.TextField()
    model = models.CharField(max_length=100, blank=True, help_text="empty: the configured LLM_MODEL")
    is_active = models.BooleanField(default=False, help_text="the version new conversations use")
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["name", "version"], name="prompt_version_unique"),
            models.UniqueConstraint(fields=["is_active"], condition=models.Q(is_active=True), name="one_active_prompt"),
        ]
        ordering = ["name", "-version"]

    def __str__(self) -> str:
        return f"{self.name} v{self.version}"
