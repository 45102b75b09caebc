"""Prompts in admin as an operator uses them: saving a version's page changes nothing, a new version comes
from the add form (its variables checked), labels move on a button, and two versions compare as a diff."""

import uuid

import pytest
from django.urls import reverse

from experiments.models import PRODUCTION, PromptLabelMove, PromptVersion
from experiments.selectors import prompt_for_new_answer
from experiments.services import prompt_version_create
from monitoring.models import AnswerFact

pytestmark = pytest.mark.django_db


def change_url(version: PromptVersion) -> str:
    return reverse("admin:experiments_promptversion_change", args=[version.pk])


def test_saving_an_existing_versions_page_never_creates_or_deploys_a_version(operator_client):
    deployed = prompt_version_create(name="coach", system_prompt="Be brief.", labels=[PRODUCTION])
    older = prompt_version_create(name="coach", system_prompt="Be thorough.")

    response = operator_client.post(change_url(older), {"name": "coach", "system_prompt": "Edited!", "model": ""})

    assert response.status_code in (200, 302)
    assert PromptVersion.objects.count() == 2
    assert PromptVersion.objects.get(pk=older.pk).system_prompt == "Be thorough."
    assert prompt_for_new_answer().prompt_version_id == deployed.pk
    assert PromptLabelMove.objects.count() == 1  # the deploy of `deployed` only


def test_a_versions_page_offers_no_save_button(operator_client):
    version = prompt_version_create(name="coach", system_prompt="Be brief.")
    html = operator_client.get(change_url(version)).content.decode()
    assert 'name="_save"' not in html and "Move “production” here" in html


def test_a_new_version_from_the_add_form_gets_the_next_number_and_no_label(operator_client, operator):
    prompt_version_create(name="coach", system_prompt="Be brief.", labels=[PRODUCTION])

    response = operator_client.post(reverse("admin:experiments_promptversion_add"),
                                    {"name": "coach", "system_prompt": "Reply in {language}.", "model": ""})

    assert response.status_code == 302
    new = PromptVersion.objects.get(version=2)
    assert new.created_by == operator and not new.labels.exists()


def test_an_unknown_variable_is_a_form_error_next_to_the_text(operator_client):
    response = operator_client.post(reverse("admin:experiments_promptversion_add"),
                                    {"name": "coach", "system_prompt": "Be {tone}.", "model": ""})
    assert response.status_code == 200
    assert "Unknown variable {tone}" in response.content.decode()
    assert not PromptVersion.objects.exists()


def test_moving_production_is_one_click_and_recorded_with_who(operator_client, operator):
    v1 = prompt_version_create(name="coach", system_prompt="Be brief.", labels=[PRODUCTION])
    v2 = prompt_version_create(name="coach", system_prompt="Be thorough.")

    operator_client.post(reverse("admin:experiments_prompt_label", args=[v2.pk]), {"label": PRODUCTION})
    assert prompt_for_new_answer().prompt_version_id == v2.pk
    operator_client.post(reverse("admin:experiments_prompt_rollback", args=[v2.pk]), {"label": PRODUCTION})
    assert prompt_for_new_answer().prompt_version_id == v1.pk

    moves = list(PromptLabelMove.objects.order_by("pk").values_list("from_version", "to_version", "moved_by"))
    assert moves[1:] == [(v1.pk, v2.pk, operator.pk), (v2.pk, v1.pk, operator.pk)]
    history = operator_client.get(change_url(v1)).content.decode()
    assert "rollback" in history and "ops" in history


def test_a_label_only_moves_on_a_post(operator_client):
    version = prompt_version_create(name="coach", system_prompt="Be brief.")
    assert operator_client.get(reverse("admin:experiments_prompt_label", args=[version.pk])).status_code == 405


def test_the_diff_of_two_versions_shows_what_changed_escaped(operator_client):
    v1 = prompt_version_create(name="coach", system_prompt="Be brief.\nCite [1].")
    v2 = prompt_version_create(name="coach", system_prompt="Be brief.\nCite <b>[1]</b> always.")

    html = operator_client.get(change_url(v2) + f"?against={v1.pk}").content.decode()

    assert '<div class="remove">-Cite [1].</div>' in html
    assert '<div class="add">+Cite &lt;b&gt;[1]&lt;/b&gt; always.</div>' in html


def test_the_list_shows_labels_and_how_many_answers_each_version_gave(operator_client):
    version = prompt_version_create(name="coach", system_prompt="Be brief.", labels=[PRODUCTION])
    for _ in range(3):
        AnswerFact.objects.create(message_id=uuid.uuid4(), conversation_id=uuid.uuid4(), status="complete",
                                  prompt_version_id=version.pk)
    html = operator_client.get(reverse("admin:experiments_promptversion_changelist")).content.decode()
    assert '<span class="prompt-label">production</span>' in html
    assert '<td class="field-answers">3</td>' in html
