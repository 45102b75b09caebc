"""Beat schedules in admin: staff other than superusers enable, disable and reschedule the periodic tasks
that exist, and never choose what runs. A task's name, arguments and routing stay as a superuser (or
CELERY_BEAT_SCHEDULE) set them, no new task can be added, and nothing can be run at once from here:
with those, anyone allowed to edit schedules could run any Celery task with any arguments."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest
from django_celery_beat.admin import PeriodicTaskAdmin
from django_celery_beat.models import PeriodicTask

WHAT_RUNS = ("task", "args", "kwargs", "queue", "exchange", "routing_key", "headers")
CHANGING_ACTIONS = ("enable_tasks", "disable_tasks", "toggle_tasks")


class ScheduleOnlyForm(forms.ModelForm):
    """The model's own form: django-celery-beat's form wants a task name from the form, which is read-only here."""


class GuardedPeriodicTaskAdmin(PeriodicTaskAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return request.user.is_superuser

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        fields = tuple(super().get_readonly_fields(request, obj))
        return fields if request.user.is_superuser else fields + WHAT_RUNS

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        fieldsets = super().get_fieldsets(request, obj)
        if request.user.is_superuser:
            return fieldsets
        return [(name, {**options, "fields": [f for f in options["fields"] if f != "regtask"]})
                for name, options in fieldsets]

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        if not request.user.is_superuser:
            kwargs["form"] = ScheduleOnlyForm
        return super().get_form(request, obj, change, **kwargs)

    def get_actions(self, request: HttpRequest) -> Any:
        actions = super().get_actions(request)
        if not request.user.is_superuser:
            actions.pop("run_tasks", None)
        if not self.has_change_permission(request):
            for name in CHANGING_ACTIONS:
                actions.pop(name, None)
        return actions


admin.site.unregister(PeriodicTask)
admin.site.register(PeriodicTask, GuardedPeriodicTaskAdmin)
