"""The release that replaces the one active prompt with labels: the active version becomes the one
labelled `production` (a recorded move), and rolling the release back makes it active again."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from experiments.models import PRODUCTION, PromptLabelMove
from experiments.selectors import answer_prompt_version, forget_active_prompt, prompt_for_new_answer

BEFORE = [("experiments", "0001_initial")]


@pytest.mark.django_db(transaction=True)
def test_the_active_version_becomes_production_and_back():
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    old = executor.loader.project_state(BEFORE).apps.get_model("experiments", "PromptVersion")
    old.objects.create(name="coach", version=1, system_prompt="Be brief.")
    active = old.objects.create(name="coach", version=2, system_prompt="Be thorough.", is_active=True)
    try:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())
        forget_active_prompt()

        assert answer_prompt_version().pk == active.pk and prompt_for_new_answer().system_prompt == "Be thorough."
        move = PromptLabelMove.objects.get()
        assert (move.label, move.from_version, move.to_version_id) == (PRODUCTION, None, active.pk)

        executor.loader.build_graph()
        executor.migrate(BEFORE)  # and back, for a rollback of the release
        rolled_back = executor.loader.project_state(BEFORE).apps.get_model("experiments", "PromptVersion")
        assert list(rolled_back.objects.filter(is_active=True).values_list("pk", flat=True)) == [active.pk]
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())
