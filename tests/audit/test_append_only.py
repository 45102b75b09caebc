"""The audit table itself refuses to change: no UPDATE, no DELETE, whoever asks. Deleting a user's account
is the one change let through: its entries lose the account but keep who it was."""

from __future__ import annotations

import pytest
from auditlog.models import LogEntry
from django.core.management import call_command
from django.db import IntegrityError, connection, transaction
from django.urls import reverse

from experiments.models import PromptVersion

from .conftest import entries, signed_in

pytestmark = pytest.mark.django_db


@pytest.fixture
def entry(operator) -> LogEntry:
    signed_in(operator).post(reverse("admin:experiments_promptversion_add"),
                             {"name": "coach", "system_prompt": "Be brief.", "model": ""})
    [created] = entries(PromptVersion.objects.get())
    return created


def test_the_database_refuses_to_update_an_entry(entry):
    with pytest.raises(IntegrityError, match="append-only"), transaction.atomic():
        LogEntry.objects.filter(pk=entry.pk).update(object_repr="something else")
    with pytest.raises(IntegrityError, match="append-only"), transaction.atomic():
        LogEntry.objects.filter(pk=entry.pk).update(actor=None, object_repr="something else")
    assert LogEntry.objects.get(pk=entry.pk).object_repr == "coach v1"


def test_the_database_refuses_to_delete_an_entry(entry):
    with pytest.raises(IntegrityError, match="append-only"), transaction.atomic():
        LogEntry.objects.filter(pk=entry.pk).delete()
    with pytest.raises(IntegrityError, match="append-only"), transaction.atomic():
        call_command("auditlogflush", "--yes")
    assert LogEntry.objects.filter(pk=entry.pk).exists()


def test_deleting_an_account_keeps_its_entries_and_who_made_them(entry, operator, admin_user):
    operator.delete()

    kept = LogEntry.objects.get(pk=entry.pk)
    assert kept.actor is None and kept.actor_email == "ops@example.com"
    assert kept.additional_data == {"deleted_actor": "ops"}
    assert kept.changes_dict["system_prompt"] == ["None", "Be brief."]
    page = signed_in(admin_user).get(reverse("admin:auditlog_logentry_change", args=[kept.pk])).content.decode()
    assert "ops@example.com (account deleted)" in page


@pytest.mark.django_db(transaction=True)  # the permission ends with the erasure's transaction
def test_an_erasure_may_delete_entries_in_its_own_transaction_only(entry):
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL spotter.audit_erasure = 'on'")
        LogEntry.objects.filter(pk=entry.pk).delete()
    assert not LogEntry.objects.filter(pk=entry.pk).exists()
    other = LogEntry.objects.exclude(pk=entry.pk).first()
    with pytest.raises(IntegrityError, match="append-only"), transaction.atomic():
        LogEntry.objects.filter(pk=other.pk).delete()
