"""The active prompt, which every answer reads: kept per process, never stale after a change here."""

import pytest

from experiments.models import PromptVersion
from experiments.selectors import DEFAULT_SYSTEM_PROMPT, prompt_for_new_answer
from experiments.services import prompt_version_activate, prompt_version_create

pytestmark = pytest.mark.django_db


def test_the_next_answer_uses_a_version_created_or_activated_here_at_once():
    assert prompt_for_new_answer().system_prompt == DEFAULT_SYSTEM_PROMPT
    first = prompt_version_create(name="coach", system_prompt="Be brief.")
    assert prompt_for_new_answer().prompt_version_id == first.pk
    prompt_version_create(name="coach", system_prompt="Be thorough.")
    assert prompt_for_new_answer().system_prompt == "Be thorough."
    prompt_version_activate(prompt_version=first)
    assert prompt_for_new_answer().prompt_version_id == first.pk


def test_a_version_saved_or_deleted_directly_is_seen_at_once():
    version = PromptVersion.objects.create(name="coach", version=1, system_prompt="Cite [1].", is_active=True)
    assert prompt_for_new_answer().prompt_version_id == version.pk
    version.delete()
    assert prompt_for_new_answer().system_prompt == DEFAULT_SYSTEM_PROMPT


def test_answers_in_a_row_read_the_active_prompt_from_the_database_once(django_assert_num_queries):
    prompt_version_create(name="coach", system_prompt="Be brief.")
    with django_assert_num_queries(1):
        for _ in range(5):
            assert prompt_for_new_answer().system_prompt == "Be brief."
