"""The fine-tuning export: lines as the pipeline saw them and a trainer approved them, free of PII,
deduplicated, split deterministically, valid line by line; the command and the staff endpoint."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.utils import timezone

from experiments.layout import question_with_data
from experiments.selectors import DEFAULT_SYSTEM_PROMPT
from review.export import TrainingExport, jsonl_lines, training_data_build, training_line_check
from tests.factories import (
    AnswerFactory,
    ApprovedAnswerFactory,
    ChunkFactory,
    DocumentFactory,
    PromptVersionFactory,
    TrainerFactory,
)

pytestmark = pytest.mark.django_db
URL = "/api/v1/review/training-data/"
EMAIL, PHONE, CARD = "jane.doe@example.com", "+1 415 555 0132", "4111 1111 1111 1111"


def approved(*, question: str, given: str, answer: str | None = None, prompt_version_id: int | None = None,
             chunk_ids: list[int] | None = None, **fields: object):
    """An approved answer of a pipeline answer `given`; `answer` is the trainer's edit, if any."""
    message = AnswerFactory(text=given, prompt_version_id=prompt_version_id, reply_to__text=question)
    return ApprovedAnswerFactory(
        question=question, answer=answer or given, original_answer=given if answer else "",
        chunk_ids=chunk_ids or [], source_message=message, **fields,
    )


def everything(export: TrainingExport) -> str:
    return "".join(jsonl_lines(lines=[*export.train, *export.validation, *export.evaluation]))


def contents(line: dict) -> list[str]:
    return [message["content"] for message in line["messages"]]


def test_it_exports_an_approved_answer_with_its_prompt_version_excerpts_and_renumbered_citations():
    prompt = PromptVersionFactory(system_prompt="You are Spotter, a coach.")
    plank = DocumentFactory(title="Plank")
    first, third = ChunkFactory(document=plank, heading="Form", text="Elbows under shoulders."), ChunkFactory(
        document=plank, heading="", text="Hold 30 seconds.")
    # The pipeline cited hits 3 then 1 and stored their chunks in that order: they become excerpts 1 and 2.
    approved(question="How long do I hold a plank?", given="Hold it for 30 seconds [3], elbows down [1].",
             prompt_version_id=prompt.pk, chunk_ids=[third.pk, first.pk])

    export = training_data_build(validation_share=0)

    # Laid out as the pipeline sends it: the language line in the system message, the excerpts before the question.
    system, user, assistant = contents(export.train[0])
    assert system == "You are Spotter, a coach.\n\nAnswer in English, the language of this conversation, even when " \
                     "the excerpts are in another one."
    assert "<knowledge_excerpts>\n[1] Plank\nHold 30 seconds.\n\n[2] Plank › Form\nElbows under shoulders.\n" \
           "</knowledge_excerpts>" in user
    assert user.endswith("</reference_data>\n\nHow long do I hold a plank?")
    excerpts = ["[1] Plank\nHold 30 seconds.", "[2] Plank › Form\nElbows under shoulders."]
    assert user == question_with_data("How long do I hold a plank?", excerpts=excerpts)
    assert assistant == "Hold it for 30 seconds [1], elbows down [2]."
    assert (export.validation, export.evaluation, export.skipped) == ([], [], [])


def test_an_edited_answer_is_exported_as_edited_under_the_default_prompt_when_no_version_answered():
    chunk = ChunkFactory(text="Keep a neutral spine.")
    approved(question="Should my back round in a deadlift?", given="Yes, round it [1].",
             answer="No: keep a neutral spine throughout [1].", chunk_ids=[chunk.pk])

    line = training_data_build(validation_share=0).train[0]

    system, user, assistant = contents(line)
    assert system.startswith(DEFAULT_SYSTEM_PROMPT) and assistant == "No: keep a neutral spine throughout [1]."
    assert "Keep a neutral spine." in user and user.endswith("\n\nShould my back round in a deadlift?")
    assert "round it" not in json.dumps(line)


def test_no_pii_of_the_question_the_answer_or_the_excerpts_reaches_any_part_of_the_export(tmp_path):
    chunk = ChunkFactory(text=f"Write to {EMAIL} or call {PHONE}.")
    for n in range(12):  # enough to fill both sides of the split
        approved(question=f"Refund {n}? I'm {EMAIL}, {PHONE}, card {CARD}.", chunk_ids=[chunk.pk],
                 given=f"We refunded {n} on card {CARD} [1]; we will email {EMAIL} or call {PHONE}.")

    export = training_data_build(validation_share=0.5)
    call_command("export_training_data", "--out", str(tmp_path), "--validation-share", "0.5")

    assert export.train and export.validation and len(export.evaluation) == len(export.validation)
    files = "".join(path.read_text() for path in tmp_path.iterdir())
    for text in (everything(export), files):
        for pii in (EMAIL, PHONE, CARD, "4111111111111111", "415 555"):
            assert pii not in text
    assert "[EMAIL]" in files and "[PHONE]" in files and "[CREDIT_CARD]" in files


def test_duplicates_by_normalised_question_and_answer_are_exported_once():
    older = approved(question="How do I do a push-up?", given="Keep your body straight.")
    newer = approved(question="how do i do a push up", given="Keep your body  straight")
    approved(question="How do I do a push-up?", given="Lower your chest to the floor.")

    export = training_data_build(validation_share=0)

    assert len(export.train) == 2
    assert [(s.approved_answer_id, s.reason) for s in export.skipped] == [
        (older.pk, "duplicate of a newer approved answer")
    ]
    assert newer.pk not in {s.approved_answer_id for s in export.skipped}


def test_the_split_is_deterministic_and_keeps_paraphrases_on_one_side():
    for n in range(30):
        approved(question=f"How many sets of exercise {n}?", given=f"Three sets of exercise {n}.")
        approved(question=f"Sets for exercise {n}, how many?", given=f"Three sets of exercise {n}.")

    first, again = training_data_build(validation_share=0.3), training_data_build(validation_share=0.3)
    other_seed = training_data_build(validation_share=0.3, seed=1)

    assert (first.train, first.validation) == (again.train, again.validation)
    assert first.validation != other_seed.validation
    assert 0 < len(first.validation) < 60 and len(first.train) + len(first.validation) == 60
    held_out = {contents(line)[2] for line in first.validation}
    assert not held_out & {contents(line)[2] for line in first.train}  # twins share their answer
    assert {case["reference_answer"] for case in first.evaluation} == held_out


def test_every_line_of_every_file_is_valid_json_with_system_user_assistant(tmp_path):
    chunk = ChunkFactory()
    for n in range(10):
        approved(question=f"Question {n} about squats?", given=f"Answer {n} about squats [1].",
                 chunk_ids=[chunk.pk], prompt_version_id=PromptVersionFactory().pk)

    call_command("export_training_data", "--out", str(tmp_path), "--validation-share", "0.4")

    lines = [json.loads(raw) for name in ("train", "validation") for raw in
             (tmp_path / f"{name}.jsonl").read_text().splitlines()]
    assert len(lines) == 10
    for line in lines:
        training_line_check(line=line)
        assert [m["role"] for m in line["messages"]] == ["system", "user", "assistant"]
        assert all(m["content"].strip() for m in line["messages"])
    for raw in (tmp_path / "eval.jsonl").read_text().splitlines():
        assert set(json.loads(raw)) == {"question", "reference_answer", "language", "approved_answer_id"}


def test_it_skips_with_a_reason_what_cannot_make_a_valid_line():
    gone = approved(question="Where is the chunk?", given="Here [1].", chunk_ids=[987654])
    dangling = approved(question="What does excerpt 2 say?", given="It says so [1].", answer="See [2].",
                        chunk_ids=[ChunkFactory().pk])
    empty = approved(question="Blank?", given="  \n ")
    approved(question="Inactive?", given="Not exported.", is_active=False)
    approved(question="Expired?", given="Not exported.", expires_at=timezone.now() - timedelta(days=1))

    export = training_data_build(validation_share=0)

    reasons = {s.approved_answer_id: s.reason for s in export.skipped}
    assert export.train == [] and set(reasons) == {gone.pk, dangling.pk, empty.pk}
    assert "no longer exist" in reasons[gone.pk] and "cites [2]" in reasons[dangling.pk]
    assert reasons[empty.pk] == "the assistant message is empty (after scrubbing)"


def test_the_command_writes_three_files_and_reports_counts_and_skips(tmp_path, capsys):
    approved(question="How do I do a lunge?", given="Step forward and lower the back knee.")
    approved(question="how do I do a lunge", given="Step forward and lower the back knee")

    call_command("export_training_data", "--out", str(tmp_path / "out"))

    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["eval.jsonl", "train.jsonl", "validation.jsonl"]
    output = capsys.readouterr().out
    assert "1 approved answers skipped" in output and "duplicate of a newer approved answer" in output


def test_the_endpoint_refuses_anyone_but_staff_with_a_json_403(client):
    assert client.get(URL).status_code == 403
    client.force_login(User.objects.create_user("visitor", password="x"))
    response = client.get(URL)
    assert response.status_code == 403 and response.json()["code"] == "permission_denied"


def test_the_endpoint_streams_each_part_as_jsonl_to_staff(client):
    for n in range(8):
        approved(question=f"How do I brace for lift {n}?", given=f"Breathe in and brace for lift {n}.")
    client.force_login(TrainerFactory())

    parts = {part: client.get(URL, {"part": part, "validation_share": 0.5}) for part in ("train", "validation", "eval")}

    assert all(r.status_code == 200 and r["Content-Type"] == "application/jsonl" for r in parts.values())
    lines = {part: [json.loads(raw) for raw in b"".join(r.streaming_content).decode().splitlines()]
             for part, r in parts.items()}
    assert len(lines["train"]) + len(lines["validation"]) == 8 and len(lines["eval"]) == len(lines["validation"])
    assert client.get(URL, {"part": "everything"}).status_code == 400


def test_the_endpoint_is_documented_in_the_openapi_schema(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    operation = schema["paths"]["/api/v1/review/training-data/"]["get"]
    assert {p["name"] for p in operation["parameters"]} >= {"part", "validation_share", "seed"}
    assert "application/jsonl" in operation["responses"]["200"]["content"]


def test_a_trainer_downloads_the_training_data_from_the_approved_answers_page(client):
    approved(question="How do I do a lunge?", given="Step forward and lower the back knee.")
    client.force_login(User.objects.create_superuser("operator", password="x"))
    page = client.get("/admin/review/approvedanswer/").content.decode()
    link = f"{URL}?part=train"
    assert link in page and "Evaluation set (JSONL)" in page
    lines = [line for part in ("train", "validation")
             for line in b"".join(client.get(f"{URL}?part={part}").streaming_content).decode().splitlines()]
    assert [json.loads(line)["messages"][-1]["content"] for line in lines] == ["Step forward and lower the back knee."]
