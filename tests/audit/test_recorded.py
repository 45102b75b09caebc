"""Each kind of change staff make in admin leaves an audit entry naming who made it, with the values before
and after: prompts and labels, experiments, settings, review decisions, knowledge sources, users and roles."""

from __future__ import annotations

import json

import pytest
from auditlog.models import LogEntry
from auditlog.registry import auditlog
from django.contrib.auth.models import Group, Permission, User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from chat.models import LLMBudget
from experiments.models import PRODUCTION, PromptLabel, PromptVersion
from experiments.services import prompt_version_create
from knowledge.models import Document, Source
from review.models import ApprovedAnswer, ReviewDecision
from tests.experiments.builders import running_experiment
from tests.factories import AnswerFactory, ReviewItemFactory

from .conftest import entries, signed_in

pytestmark = pytest.mark.django_db
Action = LogEntry.Action


def test_a_new_prompt_version_is_recorded_with_its_text_and_author(operator):
    prompt_version_create(name="coach", system_prompt="Be brief.", labels=[PRODUCTION])

    signed_in(operator).post(reverse("admin:experiments_promptversion_add"),
                             {"name": "coach", "system_prompt": "Be thorough.", "model": ""})

    [created] = entries(PromptVersion.objects.get(version=2))
    assert created.action == Action.CREATE and created.actor == operator
    assert created.changes_dict["system_prompt"] == ["None", "Be thorough."]


def test_moving_a_label_records_the_version_before_and_after(operator):
    v1 = prompt_version_create(name="coach", system_prompt="Be brief.", labels=[PRODUCTION])
    v2 = prompt_version_create(name="coach", system_prompt="Be thorough.")

    signed_in(operator).post(reverse("admin:experiments_prompt_label", args=[v2.pk]), {"label": PRODUCTION})

    moved = entries(PromptLabel.objects.get(label=PRODUCTION))[-1]
    assert moved.action == Action.UPDATE and moved.actor == operator
    assert moved.changes_dict["version"] == [str(v1.pk), str(v2.pk)]


def test_editing_an_experiment_records_what_changed(operator):
    experiment = running_experiment()
    page = reverse("admin:experiments_experiment_change", args=[experiment.pk])
    a, b = experiment.arms.get(name="a"), experiment.arms.get(name="b")

    response = signed_in(operator).post(page, {
        "name": experiment.name, "description": "now with notes", "audience_share": "0.5", "languages": "",
        "guardrails": ["thumbs_down_rate"],
        "arms-TOTAL_FORMS": "2", "arms-INITIAL_FORMS": "2", "arms-MIN_NUM_FORMS": "2", "arms-MAX_NUM_FORMS": "1000",
        "arms-0-id": str(a.pk), "arms-0-experiment": str(experiment.pk),
        "arms-1-id": str(b.pk), "arms-1-experiment": str(experiment.pk),
    })

    assert response.status_code == 302
    edited = entries(experiment)[-1]
    assert edited.action == Action.UPDATE and edited.actor == operator
    assert edited.changes_dict["description"] == ["", "now with notes"]
    assert edited.changes_dict["audience_share"] == ["1.0", "0.5"]


def test_pausing_stopping_and_an_arm_pause_in_one_click_are_recorded_with_who_did_it(operator):
    experiment = running_experiment()
    arm = experiment.arms.get(name="b")
    client = signed_in(operator)

    client.post(reverse("admin:experiments_arm_do", args=[experiment.pk, arm.pk, "pause"]))
    client.post(reverse("admin:experiments_experiment_do", args=[experiment.pk, "pause"]))
    client.post(reverse("admin:experiments_experiment_do", args=[experiment.pk, "stop"]))

    assert entries(arm)[-1].changes_dict["status"] == ["active", "paused"] and entries(arm)[-1].actor == operator
    moves = [e.changes_dict["status"] for e in entries(experiment)[-2:]]
    assert moves == [["running", "paused"], ["paused", "stopped"]]
    assert all(e.actor == operator for e in entries(experiment)[-2:])


def test_changing_the_llm_budget_records_the_limits_before_and_after(operator):
    budget = LLMBudget.objects.create(visitor_daily_tokens=5000)

    response = signed_in(operator).post(reverse("admin:chat_llmbudget_change", args=[budget.pk]),
                                        {"daily_spend_cap_usd": "2.5", "visitor_daily_tokens": "800"})

    assert response.status_code == 302
    changed = entries(budget)[-1]
    assert changed.action == Action.UPDATE and changed.actor == operator
    assert changed.changes_dict["visitor_daily_tokens"] == ["5000", "800"]
    assert changed.changes_dict["daily_spend_cap_usd"][0] == "None"
    assert float(changed.changes_dict["daily_spend_cap_usd"][1]) == 2.5


def _review_page(item_pk: int) -> str:
    return reverse("admin:review_reviewitem_review", args=[item_pk])


def _queued_answer():
    answer = AnswerFactory.create(text="Keep your hips level.", confidence=0.3,
                                  reply_to__text="How long should I hold a plank?")
    return ReviewItemFactory.create(message=answer)


def test_an_approval_is_recorded_with_the_trainer_and_the_items_state_before_and_after(trainer):
    item, client = _queued_answer(), signed_in(trainer)
    client.post(_review_page(item.pk), {"action": "claim"})
    client.post(_review_page(item.pk), {"action": "approve"})

    decision = ReviewDecision.objects.get(item=item, action=ReviewDecision.Action.APPROVE)
    [approved] = entries(decision)
    assert approved.actor == trainer and approved.changes_dict["action"] == ["None", "approve"]
    assert '"status": "claimed"' in approved.changes_dict["before"][1]
    assert '"status": "approved"' in approved.changes_dict["after"][1]
    [answer_entry] = entries(ApprovedAnswer.objects.get(review_item=item))
    assert answer_entry.actor == trainer and answer_entry.changes_dict["answer"] == ["None", "Keep your hips level."]


def test_a_rejection_is_recorded_with_its_reason_and_claims_are_not(trainer):
    item, client = _queued_answer(), signed_in(trainer)
    client.post(_review_page(item.pk), {"action": "claim"})
    client.post(_review_page(item.pk), {"action": "reject", "reason": "wrong exercise"})

    rejected = ReviewDecision.objects.get(item=item, action=ReviewDecision.Action.REJECT)
    [entry] = entries(rejected)
    assert entry.actor == trainer and entry.changes_dict["note"] == ["None", "wrong exercise"]
    assert '"status": "rejected"' in entry.changes_dict["after"][1]
    assert "Keep your hips level" not in str(entry.changes_dict)  # the answer's text stays out of the log
    claim = ReviewDecision.objects.get(item=item, action=ReviewDecision.Action.CLAIM)
    assert entries(claim) == []


def test_adding_and_changing_a_knowledge_source_is_recorded(admin_user, admin_client):
    admin_client.post("/admin/knowledge/source/add/", {
        "name": "swing", "upload": SimpleUploadedFile("swing.md", b"# Kettlebell swing\n\nHinge at the hips."),
        "format": "", "mapping": "", "language": "en", "tags": "",
    })
    source = Source.objects.get(name="swing")
    admin_client.post(f"/admin/knowledge/source/{source.pk}/change/",
                      {"name": "swing", "format": "markdown", "mapping": "", "language": "de", "tags": ""})

    recorded = entries(source)
    assert recorded[0].action == Action.CREATE and recorded[0].changes_dict["name"] == ["None", "swing"]
    assert any(e.changes_dict.get("uri") == ["", "swing.md"] for e in recorded)
    assert recorded[-1].changes_dict["language"] == ["en", "de"]
    assert {e.actor for e in recorded} == {admin_user}
    assert all("status" not in e.changes_dict for e in recorded)  # ingestion's progress is not a change


def test_a_users_groups_and_a_groups_permissions_are_recorded(admin_user, admin_client, trainer):
    operators = Group.objects.get(name="Operators")
    admin_client.post(f"/admin/auth/user/{trainer.pk}/change/", {
        "username": trainer.username, "email": trainer.email, "is_active": "on", "is_staff": "on",
        "groups": [operators.pk], "date_joined_0": "2026-01-01", "date_joined_1": "10:00:00",
    })
    read_log = Permission.objects.get(codename="view_conversation", content_type__app_label="chat")
    admin_client.post(f"/admin/auth/group/{operators.pk}/change/", {
        "name": "Operators", "permissions": [*operators.permissions.values_list("pk", flat=True), read_log.pk]})

    moves = {(e.actor, e.changes_dict["groups"]["operation"], *e.changes_dict["groups"]["objects"])
             for e in entries(trainer) if "groups" in e.changes_dict}
    assert {(admin_user, "delete", "Trainers"), (admin_user, "add", "Operators")} <= moves
    granted = entries(operators)[-1]
    assert granted.actor == admin_user
    assert granted.changes_dict["permissions"] == {"type": "m2m", "operation": "add", "objects": [str(read_log)]}


def test_a_new_password_is_recorded_as_changed_never_with_its_hash(admin_client, trainer):
    old_hash = User.objects.get(pk=trainer.pk).password
    admin_client.post(f"/admin/auth/user/{trainer.pk}/password/",
                      {"password1": "a-new-long-password-9", "password2": "a-new-long-password-9",
                       "usable_password": "true"})

    [changed] = [e for e in entries(trainer) if e.action == LogEntry.Action.UPDATE and "password" in e.changes_dict]
    assert changed.changes_dict["password"] == ["(hidden)", "(hidden)"]
    new_hash = User.objects.get(pk=trainer.pk).password
    assert new_hash != old_hash and old_hash not in changed.changes_text + str(changed.changes)


def test_a_change_made_outside_a_request_is_recorded_without_an_actor(db):
    version = prompt_version_create(name="coach", system_prompt="Be brief.")  # as a task or a command would
    [created] = entries(version)
    assert created.actor is None and created.action == Action.CREATE


def test_ingestion_writes_no_entry_per_document_and_a_staff_edit_does(kb, admin_user, admin_client):
    document = Document.objects.filter(source=kb).first()
    assert not LogEntry.objects.filter(content_type__model="document").exists()

    response = admin_client.post(f"/admin/knowledge/document/{document.pk}/change/", {
        "source": kb.pk, "external_id": document.external_id, "title": "Plank (checked)", "url": document.url,
        "content": document.content, "metadata": json.dumps(document.metadata), "language": "en",
        "tags": ",".join(document.tags), "chunks-TOTAL_FORMS": "0", "chunks-INITIAL_FORMS": "0",
        "chunks-MIN_NUM_FORMS": "0", "chunks-MAX_NUM_FORMS": "0",
    })

    assert response.status_code == 302, response.content.decode()[:3000]
    [edited] = entries(document)
    assert edited.actor == admin_user and edited.changes_dict["title"] == [document.title, "Plank (checked)"]


def test_every_kind_of_setting_the_admin_edits_is_audited():
    audited = {model._meta.label for model in auditlog.get_models()}
    assert {"chat.LLMBudget", "chat.ContentSafetyPolicy", "monitoring.AlertChannel", "review.SupportHours",
            "django_celery_beat.PeriodicTask", "auth.User", "auth.Group", "knowledge.Source"} <= audited
