from django.contrib import admin

from .models import AnswerFact


@admin.register(AnswerFact)
class AnswerFactAdmin(admin.ModelAdmin):
    list_display = [
        "message_id", "created_at", "status", "model", "reuse", "confidence", "latency_ms", "ttft_ms", "cost",
    ]
    list_filter = ["status", "model", "reuse", "offline"]
    readonly_fields = [f.name for f in AnswerFact._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False
