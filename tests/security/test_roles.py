"""Roles, least privilege: what a trainer and an operator can open in admin, the data migration that makes
the groups, and beat schedules that operators may reschedule without choosing what runs."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test import Client
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from chat.roles import OPERATORS, TRAINERS, role_permissions
from tests.factories import OperatorFactory, TrainerFactory

pytestmark = pytest.mark.django_db

REVIEW_QUEUE = "/admin/review/reviewitem/"
CONVERSATIONS = "/admin/chat/conversation/"
MESSAGES = "/admin/chat/message/"
PROFILES = "/admin/chat/visitorprofile/"
SOURCES = "/admin/knowledge/source/"
PROMPTS = "/admin/experiments/promptversion/"
EXPERIMENTS = "/admin/experiments/experiment/"
ALERT_CHANNELS = "/admin/monitoring/alertchannel/"
TASKS = "/admin/django_celery_beat/periodictask/"
INTERVALS = "/admin/django_celery_beat/intervalschedule/"
BUDGET = "/admin/chat/llmbudget/"


def signed_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def status(client: Client, url: str) -> int:
    return client.get(url).status_code


def test_a_trainer_reviews_and_reads_conversations_and_touches_no_knowledge_prompts_or_schedules():
    trainer = signed_in(TrainerFactory.create())

    assert [status(trainer, url) for url in (REVIEW_QUEUE, CONVERSATIONS, MESSAGES)] == [200, 200, 200]
    refused = (SOURCES, PROMPTS, EXPERIMENTS, ALERT_CHANNELS, TASKS, INTERVALS, PROFILES, BUDGET)
    assert [status(trainer, url) for url in refused] == [403] * len(refused)
    assert b'id="dashboard"' not in trainer.get("/admin/").content


def test_an_operator_runs_the_system_and_reads_no_conversations_profiles_or_review_queue():
    operator = signed_in(OperatorFactory.create())

    allowed = (SOURCES, PROMPTS, EXPERIMENTS, ALERT_CHANNELS, TASKS, INTERVALS)
    assert [status(operator, url) for url in allowed] == [200] * len(allowed)
    assert b'id="dashboard"' in operator.get("/admin/").content
    assert [status(operator, url) for url in (CONVERSATIONS, MESSAGES, PROFILES, REVIEW_QUEUE)] == [403] * 4
    assert operator.get(BUDGET, follow=True).status_code == 200  # the LLM budget is the operators' to set


def test_a_superuser_can_grant_an_operator_the_conversations():
    user = OperatorFactory.create()
    user.user_permissions.add(Permission.objects.get(codename="view_conversation"))

    assert status(signed_in(User.objects.get(pk=user.pk)), CONVERSATIONS) == 200


def run_roles_migration() -> None:
    """chat/0006_roles's operations on the database as it is, with the models as they were then."""
    executor = MigrationExecutor(connection)
    state = executor.loader.project_state(("chat", "0006_roles"), at_end=False)
    for operation in executor.loader.get_migration("chat", "0006_roles").operations:
        operation.code(state.apps, None)


def test_the_migration_makes_both_roles_and_takes_back_what_demo_setup_used_to_grant():
    Group.objects.filter(name=TRAINERS).delete()
    old_operators, _ = Group.objects.get_or_create(name=OPERATORS)
    old_operators.permissions.add(*Permission.objects.filter(codename__in=["view_conversation", "view_visitorprofile"]))

    run_roles_migration()

    for name in (TRAINERS, OPERATORS):
        granted = set(Group.objects.get(name=name).permissions.values_list("pk", flat=True))
        assert granted == set(role_permissions(name).values_list("pk", flat=True)) != set()
    operators = Group.objects.get(name=OPERATORS).permissions
    # of chat, only the LLM budget and the safety policy: nothing of conversations, messages or profiles
    assert set(operators.filter(content_type__app_label="chat").values_list("codename", flat=True)) <= {
        "view_llmbudget", "change_llmbudget", "view_contentsafetypolicy", "change_contentsafetypolicy"}
    assert not operators.filter(codename__in=["add_periodictask", "delete_periodictask"]).exists()


# --- beat schedules ------------------------------------------------------------------------------------


@pytest.fixture
def task() -> PeriodicTask:
    every_minute = IntervalSchedule.objects.create(every=60, period=IntervalSchedule.SECONDS)
    return PeriodicTask.objects.create(name="stale answers", task="chat.tasks.fail_stale_streaming_answers",
                                       interval=every_minute, args="[]", kwargs="{}")


def change_form(periodic: PeriodicTask, **changes: object) -> dict:
    return {"name": periodic.name, "enabled": "on", "interval": periodic.interval_id, "args": periodic.args,
            "kwargs": periodic.kwargs, "task": periodic.task, "regtask": periodic.task, "description": "",
            "expire_seconds": "", "priority": "", "headers": "{}", "queue": "", "exchange": "", "routing_key": "",
            "start_time_0": "", "start_time_1": "", **changes}


def test_an_operator_reschedules_and_disables_a_task_but_cannot_change_what_it_runs(task):
    operator = signed_in(OperatorFactory.create())
    hourly = IntervalSchedule.objects.create(every=1, period=IntervalSchedule.HOURS)

    response = operator.post(f"{TASKS}{task.pk}/change/", change_form(
        task, enabled="", interval=hourly.pk, task="django.core.mail.send_mail", regtask="",
        args=json.dumps(["subject", "body", "x@example.com", ["y@example.com"]]), kwargs='{"fail_silently": 1}',
        queue="other", headers='{"x": 1}'))

    assert response.status_code == 302
    task.refresh_from_db()
    assert (task.enabled, task.interval_id) == (False, hourly.pk)
    assert (task.task, task.args, task.kwargs, task.queue) == ("chat.tasks.fail_stale_streaming_answers", "[]",
                                                               "{}", None)


def test_an_operator_cannot_add_a_task_or_run_one_at_once(task):
    operator = signed_in(OperatorFactory.create())

    assert status(operator, f"{TASKS}add/") == 403
    listing = operator.get(TASKS).content.decode()
    assert "disable_tasks" in listing and "run_tasks" not in listing
    operator.post(TASKS, {"action": "run_tasks", "_selected_action": [task.pk]})
    assert PeriodicTask.objects.get(pk=task.pk).last_run_at is None


def test_a_superuser_still_adds_tasks_and_runs_them(admin_client, task):
    assert admin_client.get(f"{TASKS}add/").status_code == 200
    assert "run_tasks" in admin_client.get(TASKS).content.decode()
