"""The audit log in admin: readable with `auditlog.view_logentry`, filterable and searchable, and
never editable, not even by a superuser."""

from __future__ import annotations

import pytest
from auditlog.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.urls import reverse

from experiments.models import PRODUCTION, PromptVersion
from experiments.services import prompt_version_create

from .conftest import signed_in

pytestmark = pytest.mark.django_db
LIST = reverse("admin:auditlog_logentry_changelist")


def _operator_adds_a_version(operator) -> LogEntry:
    prompt_version_create(name="coach", system_prompt="Be brief.", labels=[PRODUCTION])
    signed_in(operator).post(reverse("admin:experiments_promptversion_add"),
                             {"name": "coach", "system_prompt": "Be <b>thorough</b>.", "model": ""})
    return LogEntry.objects.get_for_object(PromptVersion.objects.get(version=2)).get()


def test_the_log_lists_who_changed_what_for_a_reader(operator, auditor):
    entry = _operator_adds_a_version(operator)
    listing = signed_in(auditor).get(LIST).content.decode()
    assert "coach v2" in listing and "ops" in listing and "system_prompt" in listing

    page = signed_in(auditor).get(reverse("admin:auditlog_logentry_change", args=[entry.pk])).content.decode()
    assert "Be &lt;b&gt;thorough&lt;/b&gt;." in page  # the text after the change, escaped
    assert 'name="_save"' not in page


def test_the_log_filters_by_model_actor_action_and_date_and_searches(operator, auditor):
    entry = _operator_adds_a_version(operator)
    client = signed_in(auditor)
    prompt_type = ContentType.objects.get_for_model(PromptVersion)
    for query in [f"content_type__id__exact={prompt_type.pk}", f"actor__id__exact={operator.pk}",
                  f"action__exact={LogEntry.Action.CREATE}", f"timestamp__year={entry.timestamp.year}",
                  "q=thorough"]:
        listing = client.get(f"{LIST}?{query}").content.decode()
        assert "coach v2" in listing, query
    assert "coach v2" not in client.get(f"{LIST}?q=nothing-like-this").content.decode()


def test_without_the_permission_the_log_is_not_shown(trainer):
    assert signed_in(trainer).get(LIST).status_code == 403


@pytest.mark.parametrize("who", ["auditor", "admin_user"])
def test_nobody_adds_changes_or_deletes_an_entry(request, operator, who):
    entry = _operator_adds_a_version(operator)
    client = signed_in(request.getfixturevalue(who))
    change = reverse("admin:auditlog_logentry_change", args=[entry.pk])

    assert client.get(reverse("admin:auditlog_logentry_add")).status_code == 403
    assert client.post(change, {"object_repr": "rewritten"}).status_code == 403
    assert client.get(reverse("admin:auditlog_logentry_delete", args=[entry.pk])).status_code == 403
    assert client.post(reverse("admin:auditlog_logentry_delete", args=[entry.pk]), {"post": "yes"}).status_code == 403
    listing = client.get(LIST).content.decode()
    assert "delete_selected" not in listing
    client.post(LIST, {"action": "delete_selected", "_selected_action": [entry.pk], "post": "yes"})
    assert LogEntry.objects.filter(pk=entry.pk, object_repr="coach v2").exists()
