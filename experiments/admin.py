from django.contrib import admin, messages

from .models import PromptVersion
from .services import prompt_version_activate, prompt_version_create


@admin.register(PromptVersion)
class PromptVersionAdmin(admin.ModelAdmin):
    list_display = ["name", "version", "model", "is_active", "created_at"]
    list_filter = ["name", "is_active"]
    fields = ["name", "system_prompt", "model", "version", "is_active", "created_by", "created_at"]
    readonly_fields = ["version", "is_active", "created_by", "created_at"]
    actions = ["activate"]

    def get_readonly_fields(self, request, obj=None):
        # Versions are immutable once saved: edit means "save as a new version" below.
        return self.fields if obj else self.readonly_fields

    def save_model(self, request, obj, form, change) -> None:
        created = prompt_version_create(name=obj.name, system_prompt=obj.system_prompt, model=obj.model)
        created.created_by = request.user
        created.save(update_fields=["created_by"])
        obj.pk = created.pk

    @admin.action(description="Make the selected version the active one")
    def activate(self, request, queryset) -> None:
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one version.", messages.ERROR)
            return
        version = queryset.get()
        prompt_version_activate(prompt_version=version)
        self.message_user(request, f"{version} is now active.")
