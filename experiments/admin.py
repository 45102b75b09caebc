from django.contrib import admin, messages
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.forms import ModelForm
from django.http import HttpRequest

from .models import PromptVersion
from .services import prompt_version_activate, prompt_version_create

FIELDS = ("name", "system_prompt", "model", "version", "is_active", "created_by", "created_at")


@admin.register(PromptVersion)
class PromptVersionAdmin(admin.ModelAdmin):
    list_display = ["name", "version", "model", "is_active", "created_at"]
    list_filter = ["name", "is_active"]
    fields = FIELDS
    readonly_fields = ["version", "is_active", "created_by", "created_at"]
    actions = ["activate"]

    def get_readonly_fields(self, request: HttpRequest, obj: PromptVersion | None = None) -> list[str]:
        # Versions are immutable once saved: edit means "save as a new version" below.
        return list(FIELDS if obj else self.readonly_fields)

    def save_model(self, request: HttpRequest, obj: PromptVersion, form: ModelForm, change: bool) -> None:
        if not isinstance(request.user, User):  # admin_view lets no anonymous visitor through
            raise PermissionDenied
        created = prompt_version_create(
            name=obj.name, system_prompt=obj.system_prompt, model=obj.model, created_by=request.user
        )
        obj.pk = created.pk

    @admin.action(description="Make the selected version the active one")
    def activate(self, request: HttpRequest, queryset: QuerySet[PromptVersion]) -> None:
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one version.", messages.ERROR)
            return
        version = queryset.get()
        prompt_version_activate(prompt_version=version)
        self.message_user(request, f"{version} is now active.")
