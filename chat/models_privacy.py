"""What is left of an erasure: that it happened, who asked and how much went, never whose data it was."""

from django.conf import settings
from django.db import models
from django.utils import timezone

__all__ = ["ErasureRecord"]


class ErasureRecord(models.Model):
    """One erasure of a visitor's data, or one retention run. Append-only (admin neither edits nor deletes).

    `visitor_hash` is a one-way hash of the visitor id (chat/privacy.py `visitor_hash`): enough to answer
    "was this visitor erased?" when the visitor asks again with their id, useless to recover the id."""

    class Requester(models.TextChoices):
        VISITOR = "visitor", "the visitor"
        STAFF = "staff", "a staff user"
        RETENTION = "retention", "the retention job (RETENTION_DAYS)"

    visitor_hash = models.CharField(max_length=64, blank=True, db_index=True,
                                    help_text="sha256 of the visitor id; empty for a retention run")
    requested_by = models.CharField(max_length=16, choices=Requester.choices)
    staff_user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+", help_text="who ran it from admin")
    at = models.DateTimeField(default=timezone.now, db_index=True)
    counts = models.JSONField(default=dict, blank=True, help_text="rows deleted per kind, Redis keys included")

    class Meta:
        ordering = ["-at", "-pk"]
        permissions = [
            ("export_visitor_data", "Can export a visitor's data"),
            ("erase_visitor_data", "Can erase a visitor's data"),
        ]

    def __str__(self) -> str:
        return f"erasure by {self.requested_by} at {self.at:%Y-%m-%d %H:%M}"
