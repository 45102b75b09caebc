"""Prompts: immutable versions, labels that deploy and roll back (recorded), template variables checked
when a version is saved, and the production prompt every answer reads (kept per process, never stale
after a change here)."""

import pytest
from django.core.exceptions import ValidationError

from experiments.models import PRODUCTION, PromptLabel, PromptLabelMove, PromptVersion
from experiments.selectors import DEFAULT_SYSTEM_PROMPT, answer_prompt_version, prompt_for_new_answer
from experiments.services import prompt_label_move, prompt_label_rollback, prompt_version_create
from experiments.templating import template_errors, template_render
from tests.factories import TrainerFactory

pytestmark = pytest.mark.django_db


def test_the_next_answer_uses_a_version_deployed_here_at_once():
    assert prompt_for_new_answer().system_prompt == DEFAULT_SYSTEM_PROMPT
    first = prompt_version_create(name="coach", system_prompt="Be brief.", labels=[PRODUCTION])
    assert prompt_for_new_answer().prompt_version_id == first.pk
    prompt_version_create(name="coach", system_prompt="Be thorough.", labels=[PRODUCTION])
    assert prompt_for_new_answer().system_prompt == "Be thorough."
    prompt_label_move(version=first, label=PRODUCTION)
    assert prompt_for_new_answer().prompt_version_id == first.pk


def test_a_new_version_without_a_label_changes_nothing_answers_see():
    deployed = prompt_version_create(name="coach", system_prompt="Be brief.", labels=[PRODUCTION])
    draft = prompt_version_create(name="coach", system_prompt="Be thorough.", labels=["staging"])
    assert draft.version == 2
    assert prompt_for_new_answer().prompt_version_id == deployed.pk


def test_a_label_deleted_with_its_version_is_seen_at_once():
    version = prompt_version_create(name="coach", system_prompt="Cite [1].", labels=[PRODUCTION])
    assert prompt_for_new_answer().prompt_version_id == version.pk
    version.delete()
    assert prompt_for_new_answer().system_prompt == DEFAULT_SYSTEM_PROMPT


def test_answers_in_a_row_read_the_production_prompt_from_the_database_once(django_assert_num_queries):
    prompt_version_create(name="coach", system_prompt="Be brief.", labels=[PRODUCTION])
    with django_assert_num_queries(1):
        for _ in range(5):
            assert prompt_for_new_answer().system_prompt == "Be brief."


def test_it_records_who_moved_a_label_from_which_version_to_which():
    ops = TrainerFactory.create(username="ops")
    v1 = prompt_version_create(name="coach", system_prompt="Be brief.", labels=[PRODUCTION])
    v2 = prompt_version_create(name="coach", system_prompt="Be thorough.")

    move = prompt_label_move(version=v2, label=PRODUCTION, moved_by=ops, reason="longer answers")

    assert (move.from_version, move.to_version, move.moved_by, move.reason) == (v1, v2, ops, "longer answers")
    assert PromptLabel.objects.get(prompt_name="coach", label=PRODUCTION).version == v2
    assert prompt_label_move(version=v2, label=PRODUCTION, moved_by=ops) is None  # already there: no move


def test_a_rollback_moves_production_back_and_is_recorded_too():
    v1 = prompt_version_create(name="coach", system_prompt="Be brief.", labels=[PRODUCTION])
    v2 = prompt_version_create(name="coach", system_prompt="Be thorough.", labels=[PRODUCTION])
    assert answer_prompt_version() == v2

    move = prompt_label_rollback(prompt_name="coach", label=PRODUCTION)

    assert answer_prompt_version() == v1 and prompt_for_new_answer().prompt_version_id == v1.pk
    assert (move.from_version, move.to_version) == (v2, v1)
    assert PromptLabelMove.objects.filter(prompt_name="coach", label=PRODUCTION).count() == 3


def test_labels_belong_to_one_prompt_each():
    coach = prompt_version_create(name="coach", system_prompt="Be brief.", labels=[PRODUCTION])
    summary = prompt_version_create(name="summary", system_prompt="Summarise.", labels=[PRODUCTION])
    assert PromptLabel.objects.get(prompt_name="coach", label=PRODUCTION).version == coach
    assert PromptLabel.objects.get(prompt_name="summary", label=PRODUCTION).version == summary


def test_the_answer_prompt_name_picks_which_production_answers(settings):
    coach = prompt_version_create(name="coach", system_prompt="Be brief.", labels=[PRODUCTION])
    prompt_version_create(name="summary", system_prompt="Summarise.", labels=[PRODUCTION])
    settings.ANSWER_PROMPT_NAME = "coach"
    assert answer_prompt_version() == coach


def test_unknown_template_variables_are_refused_with_the_known_ones_named():
    with pytest.raises(ValidationError) as refused:
        prompt_version_create(name="coach", system_prompt="Answer in {langauge}.")
    assert "Unknown variable {langauge}" in str(refused.value) and "{language}" in str(refused.value)
    assert not PromptVersion.objects.exists()
    assert template_errors("Answer in {language}. JSON looks like {{\"a\": 1}}.") == []
    assert template_errors("a stray { brace")[0].startswith("Unbalanced brace")
    assert template_errors("{language!r}") == ["{language} takes no format or conversion."]


def test_a_template_is_filled_with_the_known_variables_and_literal_braces():
    assert template_render("Reply in {language}; {{x}} stays.", {"language": "de"}) == "Reply in de; {x} stays."
    assert template_render("old {unknown} text", {"language": "de"}) == "old {unknown} text"
