"""The staff roles (Django groups) and what each may do, least privilege.

Trainers work the review queue and take conversations over: all of review, and reading the conversations,
answers and feedback they review; they also answer a visitor's request for its data (export, erasure). They
do not touch the knowledge base, prompts and experiments, monitoring or schedules. Operators run the system:
knowledge, prompts and experiments, monitoring and alerts, the LLM budget and the safety policy, the audit
log (read only), evaluations and fine-tuning, and the beat schedules (enable, disable, reschedule; never which
task runs: monitoring/admin_schedules.py). They do not read conversations, the review queue or visitor profiles unless
a superuser grants it. Nobody but superusers sees the personal data masked in visitors' messages
(chat.view_pii) unless granted.

The data migration chat/0006_roles creates both groups; a later change to these definitions needs a
migration that calls `roles_sync` again.
"""

from __future__ import annotations

from typing import Any

from django.apps import apps as global_apps
from django.contrib.auth.management import create_permissions
from django.contrib.auth.models import Group
from django.db.models import Q, QuerySet

TRAINERS = "Trainers"
OPERATORS = "Operators"
EVERY_MODEL = "*"
VIEW = ("view",)
MANAGE = ("add", "change", "delete", "view")

# role -> app label -> model name (or EVERY_MODEL) -> actions
ROLES: dict[str, dict[str, dict[str, tuple[str, ...]]]] = {
    TRAINERS: {
        "review": {EVERY_MODEL: MANAGE},
        # change: the cache's "never serve again" action, a trainer's decision on a shared answer
        "chat": {"conversation": VIEW, "message": VIEW, "feedback": VIEW, "cacheentry": ("view", "change"),
                 # a visitor's data request: they read the conversations already (chat/admin_privacy.py)
                 "erasurerecord": ("view", "export", "erase")},
    },
    OPERATORS: {
        "knowledge": {EVERY_MODEL: MANAGE},
        "experiments": {EVERY_MODEL: MANAGE},
        "chat": {"llmbudget": ("view", "change"), "contentsafetypolicy": ("view", "change")},
        "auditlog": {"logentry": VIEW},
        "monitoring": {EVERY_MODEL: MANAGE},
        "review": {model: MANAGE for model in (
            "evaluationset", "evaluationcase", "evaluationrun", "evaluationresult", "finetunerun", "modelpromotion",
        )},
        "django_celery_beat": {
            "periodictask": ("view", "change"),
            **{schedule: MANAGE for schedule in (
                "intervalschedule", "crontabschedule", "solarschedule", "clockedschedule",
            )},
        },
    },
}


def role_permissions(name: str, *, apps: Any = global_apps) -> QuerySet[Any]:
    """The permissions a role grants, as a queryset of auth.Permission."""
    wanted = Q(pk__in=[])
    for app_label, models in ROLES[name].items():
        for model, actions in models.items():
            codenames = Q(codename__regex=rf"^({'|'.join(actions)})_")
            where = Q() if model == EVERY_MODEL else Q(content_type__model=model)
            wanted |= Q(content_type__app_label=app_label) & where & codenames
    return apps.get_model("auth", "Permission").objects.filter(wanted)


def permissions_create(apps: Any, schema_editor: Any = None) -> None:
    """A migration's RunPython: permissions are otherwise made after all migrations (post_migrate), and
    `roles_sync` needs them now."""
    for label in {"auth", "contenttypes", *(label for role in ROLES.values() for label in role)}:
        try:
            app_config = apps.get_app_config(label)
        except LookupError:  # an app a later migration brings in (an earlier roles migration runs without it)
            continue
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None


def roles_sync(apps: Any = global_apps, schema_editor: Any = None) -> None:
    """Each role's group, with exactly its permissions (a migration's RunPython function too)."""
    for name in ROLES:
        group, _ = apps.get_model("auth", "Group").objects.get_or_create(name=name)
        group.permissions.set(role_permissions(name, apps=apps))


def role_group(name: str) -> Group:
    """The role's group; made with its permissions when missing (a flushed test database, a deleted group),
    left as it is otherwise, with whatever a superuser granted it since."""
    group, created = Group.objects.get_or_create(name=name)
    if created:
        group.permissions.set(role_permissions(name))
    return group
