"""Evaluation sets and runs: approvals join a set, cases import from CSV and JSONL, a run answers every
case through the pipeline's steps (offline, and against the local fake LLM with a judge) and scores it;
the admin pages a trainer uses to start, follow and compare runs."""

from __future__ import annotations

import os
from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import expect

from chat.evaluation import JudgeError, answer_case, parse_judgement
from chat.management.commands.demo_setup import Command as DemoSetup
from experiments.layout import QUESTION_SEPARATOR
from knowledge.chunking import split_sentences
from knowledge.embeddings import embed_query
from knowledge.selectors import search
from review.evaluation import (
    CaseAnswer,
    EvaluationImportError,
    Judgement,
    evaluation_case_add_approved,
    evaluation_cases_import,
    evaluation_run_create,
    evaluation_run_execute,
    evaluation_runs_compare,
    evaluation_runs_fail_stale,
    evaluation_set_for_approved,
    held_out_set,
    model_matches,
)
from review.export import jsonl_lines, training_data_build
from review.models import (
    ApprovedAnswer,
    EvaluationCase,
    EvaluationRun,
    EvaluationSet,
    FineTuneRun,
    ModelPromotion,
)
from tests.browser import needs_chromium
from tests.factories import ApprovedAnswerFactory, PromptVersionFactory, TrainerFactory

pytestmark = pytest.mark.django_db
Status = EvaluationRun.Status
SQUAT = "How do I do a goblet squat?"
PLANK = "How do I hold a plank?"
UNRELATED = "The museum opens at nine on Sundays and tickets cost twelve euros."
SHOTS = os.environ.get("REVIEW_SHOTS_DIR", "/tmp")  # where the runs' and comparison's screenshots are left


def new_set(name: str = "smoke", cases: dict[str, str] | None = None) -> EvaluationSet:
    evaluation_set = EvaluationSet.objects.create(name=name)
    for question, reference in (cases or {}).items():
        EvaluationCase.objects.create(evaluation_set=evaluation_set, question=question, reference=reference)
    return evaluation_set


def run_now(evaluation_set: EvaluationSet, **options: object) -> EvaluationRun:
    run = evaluation_run_create(evaluation_set=evaluation_set, **options)  # type: ignore[arg-type]
    return evaluation_run_execute(run_id=run.pk)


def result_for(run: EvaluationRun, question: str):
    return run.results.get(case__question=question)


# --- sets -------------------------------------------------------------------------------------------


def test_an_approved_answer_joins_the_approved_answers_set_and_a_re_approval_updates_its_reference():
    first = ApprovedAnswerFactory.create(question=PLANK, answer="Elbows under the shoulders.", language="en")
    case = evaluation_case_add_approved(answer=first)

    edited = ApprovedAnswerFactory.create(question=PLANK, answer="Elbows under the shoulders, body in a line.")
    evaluation_case_add_approved(answer=edited)

    evaluation_set = evaluation_set_for_approved()
    assert (evaluation_set.name, evaluation_set.from_approved) == (django_settings.EVALUATION_SET_NAME, True)
    assert list(evaluation_set.cases.values_list("pk", "question", "reference", "approved_answer")) == [
        (case.pk, PLANK, "Elbows under the shoulders, body in a line.", edited.pk)]


def test_the_held_out_set_holds_exactly_what_the_training_export_holds_out():
    for n in range(40):
        ApprovedAnswerFactory.create(question=f"How many sets of exercise {n}?", answer=f"Do {n + 2} sets.")
    held_out = {line["question"] for line in training_data_build().evaluation}
    trained_on = {line["messages"][1]["content"].rpartition(QUESTION_SEPARATOR)[2]
                  for line in training_data_build().train}
    assert held_out, "the export holds some questions out"

    evaluation_set = held_out_set()

    assert set(evaluation_set.cases.values_list("question", flat=True)) == held_out
    assert not held_out & trained_on
    withdrawn = ApprovedAnswer.objects.get(question=sorted(held_out)[0])
    withdrawn.is_active = False
    withdrawn.save()
    assert set(held_out_set().cases.values_list("question", flat=True)) == held_out - {withdrawn.question}


def test_the_held_out_set_stays_as_it_is_while_a_run_on_it_is_queued_or_running():
    for n in range(40):
        ApprovedAnswerFactory.create(question=f"How many sets of exercise {n}?", answer=f"Do {n + 2} sets.")
    evaluation_set = held_out_set()
    questions = set(evaluation_set.cases.values_list("question", flat=True))
    withdrawn = ApprovedAnswer.objects.get(question=sorted(questions)[0])
    withdrawn.is_active = False
    withdrawn.save()
    run = EvaluationRun.objects.create(evaluation_set=evaluation_set, status=Status.QUEUED)

    for status in (Status.QUEUED, Status.RUNNING):
        EvaluationRun.objects.filter(pk=run.pk).update(status=status)
        assert set(held_out_set().cases.values_list("question", flat=True)) == questions

    EvaluationRun.objects.filter(pk=run.pk).update(status=Status.DONE)
    assert set(held_out_set().cases.values_list("question", flat=True)) == questions - {withdrawn.question}


# --- importing cases ----------------------------------------------------------------------------------


def test_it_imports_cases_from_csv_and_a_repeated_question_updates_its_reference():
    evaluation_set = new_set(cases={PLANK: "old reference"})
    data = (f'question,reference_answer,language\n"{PLANK}","Elbows under the shoulders."\n'
            f'{SQUAT},"Hold the bell at your chest, sit down between the knees.",de\n').encode()

    assert evaluation_cases_import(evaluation_set=evaluation_set, data=data, filename="cases.csv") == 2

    cases = dict(evaluation_set.cases.values_list("question", "reference"))
    assert cases == {PLANK: "Elbows under the shoulders.",
                     SQUAT: "Hold the bell at your chest, sit down between the knees."}
    assert evaluation_set.cases.get(question=SQUAT).language == "de"
    assert evaluation_set.cases.get(question=PLANK).language == "en"


def test_it_imports_the_training_exports_evaluation_part_as_jsonl():
    for n in range(30):
        ApprovedAnswerFactory.create(question=f"How long do I rest after set {n}?", answer=f"Rest {n + 30} seconds.")
    lines = training_data_build().evaluation
    evaluation_set = new_set()

    count = evaluation_cases_import(evaluation_set=evaluation_set, data="".join(jsonl_lines(lines=lines)).encode(),
                                    filename="eval.jsonl")

    assert count == len(lines) > 0
    assert set(evaluation_set.cases.values_list("question", "reference")) == {
        (line["question"], line["reference_answer"]) for line in lines}


@pytest.mark.parametrize(("filename", "data", "line", "says"), [
    ("cases.csv", b"question,answer\nHow?,Like this.\n", 1, "question and reference"),
    ("cases.csv", b"question,reference\nHow?,Like this.\nAnd why?,\n", 3, "reference answer is missing"),
    ("cases.csv", b"question,reference,language\nHow?,Like this.,not-a-language-code\n", 2, "language"),
    ("cases.jsonl", b'{"question": "How?", "reference": "Like this."}\n{"question": "Why?"\n', 2, "not JSON"),
    ("cases.jsonl", b'{"question": "How?", "reference": "Like this."}\n["Why?", "Because."]\n', 2, "JSON object"),
    ("cases.jsonl", b'{"question": "", "reference_answer": "Like this."}\n', 1, "question is missing"),
])
def test_a_bad_file_imports_nothing_and_says_on_which_line(filename, data, line, says):
    evaluation_set = new_set()

    with pytest.raises(EvaluationImportError) as error:
        evaluation_cases_import(evaluation_set=evaluation_set, data=data, filename=filename)

    assert error.value.line == line and says in str(error.value) and f"line {line}" in str(error.value)
    assert not evaluation_set.cases.exists()


def test_a_file_that_is_not_text_or_holds_no_cases_is_refused():
    with pytest.raises(EvaluationImportError, match="UTF-8"):
        evaluation_cases_import(evaluation_set=new_set(), data=b"\xff\xfe\x00q", filename="cases.csv")
    with pytest.raises(EvaluationImportError, match="no cases"):
        evaluation_cases_import(evaluation_set=new_set("empty"), data=b"question,reference\n", filename="cases.csv")


# --- runs, offline --------------------------------------------------------------------------------------


def test_an_offline_run_answers_every_case_and_an_answer_like_its_reference_scores_higher(kb):
    copied = answer_case(question=SQUAT, language="en", model="", prompt_version_id=None).text
    evaluation_set = new_set(cases={SQUAT: copied, PLANK: UNRELATED})

    run = run_now(evaluation_set)

    assert (run.status, run.done, run.total, run.judge_model) == (Status.DONE, 2, 2, "")
    squat, plank = result_for(run, SQUAT), result_for(run, PLANK)
    assert squat.answer == copied and squat.excerpts and plank.answer and plank.excerpts
    assert squat.similarity > 0.95 and plank.similarity < 0.4
    # The extractive provider copies sentences from the excerpts it cites.
    assert squat.faithfulness == plank.faithfulness == 1.0
    assert squat.judge is None and squat.latency_ms > 0 and not squat.error
    assert run.scores == {
        "answered": 2, "failed": 0, "similarity": pytest.approx((squat.similarity + plank.similarity) / 2, abs=1e-3),
        "faithfulness": 1.0, "overall": pytest.approx((squat.similarity + plank.similarity + 2) / 4, abs=1e-3),
    }


def test_a_failing_case_is_recorded_and_the_run_goes_on(kb, settings):
    settings.CHAT_MAX_MESSAGE_CHARS = 60  # the guard refuses the long question, as it would a visitor's
    long_question = "How do I do a goblet squat " + "with the kettlebell held high " * 5 + "?"
    run = run_now(new_set(cases={long_question: "Sit down between the knees.", SQUAT: "Sit down between the knees."}))

    failed, answered = result_for(run, long_question), result_for(run, SQUAT)
    assert "longer than 60 characters" in failed.error and not failed.answer and failed.similarity is None
    assert answered.answer and not answered.error
    assert (run.status, run.done, run.scores["answered"], run.scores["failed"]) == (Status.DONE, 2, 1, 1)
    # A failed case counts 0 towards the overall score.
    answered_score = (answered.similarity + answered.faithfulness) / 2
    assert run.scores["overall"] == pytest.approx(answered_score / 2, abs=1e-3)


def test_a_run_where_no_case_is_answered_fails_and_is_never_run_twice(kb, settings):
    settings.CHAT_MAX_MESSAGE_CHARS = 10
    run = run_now(new_set(cases={SQUAT: "Sit down between the knees."}))

    assert run.status == Status.FAILED and "no case was answered" in run.error and run.done == 1
    assert evaluation_run_execute(run_id=run.pk).results.count() == 1


# --- runs, online -----------------------------------------------------------------------------------------


def test_an_online_run_answers_with_the_chosen_model_and_prompt_version_and_is_judged(kb, online):
    hit = search(query=SQUAT, vector=embed_query(SQUAT))[0]
    grounded = split_sentences(hit.text.splitlines()[-1])[0]
    online.script.model_answers["good-model"] = f"{grounded} [1]"
    online.script.model_answers["bad-model"] = "Eat a banana before bed."
    online.script.model_answers["judge-model"] = 'Here you go: {"score": 0.75, "reason": "Close to the reference."}'
    prompt = PromptVersionFactory.create(system_prompt="You are a strict strength coach. Cite like [1].")
    evaluation_set = new_set(cases={SQUAT: grounded})

    good = run_now(evaluation_set, model="good-model", prompt_version=prompt, judge_model="judge-model")
    bad = run_now(evaluation_set, model="bad-model", prompt_version=prompt, judge_model="judge-model")

    answered, judged = result_for(good, SQUAT), result_for(bad, SQUAT)
    assert answered.answer == f"{grounded} [1]" and answered.excerpts[0].endswith(hit.text)
    assert (answered.judge, answered.judge_note) == (0.75, "Close to the reference.")
    assert good.scores["judge"] == 0.75 and good.scores["similarity"] > 0.95 and good.scores["faithfulness"] == 1.0
    assert judged.faithfulness == 0.0 and judged.excerpts == [] and judged.similarity < 0.5
    assert good.scores["overall"] > bad.scores["overall"]
    chat_requests = [r for r in online.script.requests if r["model"] == "good-model"]
    assert chat_requests[0]["messages"][0]["content"].startswith("You are a strict strength coach.")
    assert any(r["model"] == "judge-model" and grounded in r["messages"][1]["content"] for r in online.script.requests)


def test_a_run_without_a_model_is_answered_by_the_served_fine_tuned_model(kb, online):
    tuned = FineTuneRun.objects.create(trigger=FineTuneRun.Trigger.MANUAL, base_model="fake-model",
                                       fine_tuned_model="ft:fake-model:spotter", status=FineTuneRun.Status.PROMOTED)
    ModelPromotion.objects.create(run=tuned, action=ModelPromotion.Action.PROMOTE, model_after=tuned.fine_tuned_model)
    online.script.model_answers["ft:fake-model:spotter"] = "Sit down between your knees [1]."

    run = run_now(new_set(cases={SQUAT: "Sit down between the knees."}), judge_model="")

    assert result_for(run, SQUAT).answer == "Sit down between your knees [1]."
    assert [r["model"] for r in online.script.requests] == ["ft:fake-model:spotter"]


def test_a_run_is_judged_by_the_configured_model_online_and_never_offline(online, settings):
    evaluation_set = new_set()
    assert evaluation_run_create(evaluation_set=evaluation_set).judge_model == "fake-model"
    settings.EVALUATION_JUDGE_MODEL = "judge-model"
    assert evaluation_run_create(evaluation_set=evaluation_set).judge_model == "judge-model"
    settings.OPENAI_BASE_URL, settings.OPENAI_API_KEY = "", ""
    assert evaluation_run_create(evaluation_set=evaluation_set, judge_model="judge-model").judge_model == ""


def test_a_judge_that_fails_leaves_the_answer_scored(kb, online):
    online.script.model_answers["judge-model"] = "I would rather not grade this."
    run = run_now(new_set(cases={SQUAT: "Sit down between the knees."}), judge_model="judge-model")

    result = result_for(run, SQUAT)
    assert run.status == Status.DONE and not result.error and result.similarity is not None
    assert result.judge is None and "the judge failed" in result.judge_note and run.scores["judge"] is None


def test_a_case_the_fallback_model_answered_fails_and_says_which_model_answered(kb, online, settings):
    settings.LLM_FALLBACK_MODEL = "fallback-model"
    online.script.model_faults["broken-model"] = "500"
    online.script.model_answers["fallback-model"] = "Sit down between the knees [1]."

    run = run_now(new_set(cases={SQUAT: "Sit down between the knees."}), model="broken-model", judge_model="")

    result = result_for(run, SQUAT)
    assert [r["model"] for r in online.script.requests][-1] == "fallback-model"  # the gateway fell back
    assert result.error.startswith("answered by fallback-model, not broken-model") and result.similarity is None
    assert result.answer == "Sit down between the knees [1]."  # kept, to show what was said instead
    assert run.status == Status.FAILED and run.scores["failed"] == 1 and run.scores["overall"] == 0.0


def test_a_grade_the_fallback_model_gave_is_not_the_judges(kb, online, settings):
    settings.LLM_FALLBACK_MODEL = "fallback-model"
    online.script.model_faults["judge-model"] = "500"
    online.script.model_answers["fallback-model"] = '{"score": 1, "reason": "Perfect."}'

    run = run_now(new_set(cases={SQUAT: "Sit down between the knees."}), judge_model="judge-model")

    result = result_for(run, SQUAT)
    assert run.status == Status.DONE and not result.error and result.similarity is not None
    assert result.judge is None and result.judge_note == "the judge failed: graded by fallback-model, not judge-model"


def test_a_model_matches_its_own_name_or_its_dated_snapshot_and_nothing_else():
    assert model_matches(requested="gpt-4o-mini", reported="gpt-4o-mini")
    assert model_matches(requested="gpt-4o-mini", reported="gpt-4o-mini-2024-07-18")
    assert model_matches(requested="gpt-4", reported="gpt-4-0613")
    assert model_matches(requested="", reported="gpt-4o") and model_matches(requested="gpt-4o", reported="")
    assert not model_matches(requested="gpt-4o", reported="gpt-4o-mini-2024-07-18")
    assert not model_matches(requested="gpt-4o-mini", reported="gpt-4o-2024-08-06")
    assert not model_matches(requested="ft:gpt-4o-mini:spotter:a", reported="gpt-4o-mini")


def _started(run: EvaluationRun, *, minutes_ago: int) -> None:
    then = timezone.now() - timedelta(minutes=minutes_ago)
    EvaluationRun.objects.filter(pk=run.pk).update(created_at=then, started_at=then)


def test_runs_a_stopped_worker_left_running_or_a_lost_task_left_queued_fail(settings):
    settings.REVIEW_STALE_RUN_MINUTES = 60
    evaluation_set = new_set(cases={SQUAT: "Sit down."})
    stale, working, lost, waiting, done = (EvaluationRun.objects.create(evaluation_set=evaluation_set, status=s)
                                           for s in ("running", "running", "queued", "queued", "done"))
    for run, minutes in ((stale, 61), (working, 59), (lost, 61), (waiting, 5), (done, 600)):
        _started(run, minutes_ago=minutes)

    assert evaluation_runs_fail_stale() == 2

    statuses = dict(EvaluationRun.objects.values_list("pk", "status"))
    assert [statuses[r.pk] for r in (stale, working, lost, waiting, done)] == [
        "failed", "running", "failed", "queued", "done"]
    stale.refresh_from_db()
    assert "Still running 60 minutes after it started" in stale.error and stale.finished_at
    assert "its task was lost" in EvaluationRun.objects.get(pk=lost.pk).error


def answer_after_the_run_failed_as_stale(*, question: str, language: str, model: str,
                                         prompt_version_id: int | None) -> CaseAnswer:
    """An answerer (EVALUATION_ANSWERER) so slow that the beat job fails its run meanwhile."""
    EvaluationRun.objects.filter(status=Status.RUNNING).update(started_at=timezone.now() - timedelta(days=1))
    evaluation_runs_fail_stale()
    return CaseAnswer(text="Sit down between the knees.", excerpts=[], latency_ms=1)


def test_a_run_failed_as_stale_while_it_works_stays_failed(kb, settings):
    settings.EVALUATION_ANSWERER = f"{__name__}.answer_after_the_run_failed_as_stale"

    run = run_now(new_set(cases={SQUAT: "Sit down.", PLANK: "Brace."}))

    assert run.status == Status.FAILED and "Still running" in run.error
    assert run.done == 0 and run.results.count() == 1  # it stopped at the first case


def test_runs_compare_case_by_case_with_each_runs_answer(kb):
    evaluation_set = new_set(cases={SQUAT: "Sit down between the knees.", PLANK: "Elbows under the shoulders."})
    first, second = run_now(evaluation_set), run_now(evaluation_set)

    comparison = evaluation_runs_compare(runs=[second, first])

    assert [run.pk for run in comparison.runs] == [first.pk, second.pk]
    assert [case.question for case in comparison.cases] == [SQUAT, PLANK]
    assert all(result is not None and result.answer for case in comparison.cases for result in case.results)


# --- admin ------------------------------------------------------------------------------------------------


def test_a_trainer_imports_cases_and_sees_a_bad_files_line(trainer_client):
    evaluation_set = new_set()
    url = reverse("admin:review_evaluationset_import", args=[evaluation_set.pk])

    bad = trainer_client.post(url, {"file": SimpleUploadedFile("c.csv", b"question,reference\nHow?,\n")})
    csv_file = SimpleUploadedFile("c.csv", f"question,reference\n{PLANK},Brace.\n".encode())
    good = trainer_client.post(url, {"file": csv_file})

    assert bad.status_code == 200 and "line 2: the reference answer is missing" in bad.content.decode()
    assert good.status_code == 302 and list(evaluation_set.cases.values_list("question", flat=True)) == [PLANK]
    listing = trainer_client.get(reverse("admin:review_evaluationset_changelist")).content.decode()
    assert "smoke" in listing and "1 cases" in listing and "Run evaluation" in listing


def test_a_trainer_starts_a_run_and_reads_its_answers_and_scores(kb, trainer_client, settings,
                                                                django_capture_on_commit_callbacks):
    settings.CELERY_TASK_ALWAYS_EAGER = True  # the task runs in-process, as the worker would
    evaluation_set = new_set(cases={SQUAT: "Hold the kettlebell at your chest and sit down between the knees."})
    url = reverse("admin:review_evaluationset_run") + f"?ids={evaluation_set.pk}"
    assert "Offline mode" in trainer_client.get(url).content.decode()

    with django_capture_on_commit_callbacks(execute=True):
        started = trainer_client.post(url, {"model": "", "prompt_version": "", "judge_model": ""})

    run = EvaluationRun.objects.get(evaluation_set=evaluation_set)
    assert started.status_code == 302 and started["Location"].endswith(f"?ids={run.pk}")
    page = trainer_client.get(started["Location"]).content.decode()
    result = run.results.get()
    assert run.status == Status.DONE and SQUAT in page and "Hold the kettlebell at your chest" in page
    assert result.answer.splitlines()[0] in page and f"similarity {result.similarity:.2f}" in page


def test_the_runs_list_shows_a_running_runs_progress_and_compares_selected_runs(trainer_client):
    evaluation_set = new_set(cases={SQUAT: "Sit down.", PLANK: "Brace."})
    running = EvaluationRun.objects.create(evaluation_set=evaluation_set, status=Status.RUNNING, total=2, done=1)
    done = EvaluationRun.objects.create(evaluation_set=evaluation_set, status=Status.DONE, total=2, done=2,
                                        scores={"similarity": 0.81234, "faithfulness": 0.5, "overall": 0.66,
                                                "answered": 2, "failed": 0})
    listing = trainer_client.get(reverse("admin:review_evaluationrun_changelist")).content.decode()
    assert f'data-run="{running.pk}" data-status="running" max="2" value="1"' in listing and "0.81" in listing
    assert "/progress/" in listing  # the script that moves the bar

    progress = trainer_client.get(reverse("admin:review_evaluationrun_progress"), {"ids": f"{running.pk}"}).json()
    assert progress == {"runs": [{"id": running.pk, "status": "running", "done": 1, "total": 2, "scores": {}}]}

    chosen = trainer_client.post(reverse("admin:review_evaluationrun_changelist"), {
        "action": "compare_selected", "_selected_action": [running.pk, done.pk]})
    page = trainer_client.get(chosen["Location"]).content.decode()
    assert f"Run {running.pk}" in page and f"Run {done.pk}" in page and SQUAT in page and PLANK in page
    assert "not answered yet" in page and "0.81" in page and "/progress/" in page


@pytest.mark.django_db(transaction=True)
@needs_chromium
def test_a_running_runs_progress_bar_moves_and_its_scores_appear_when_it_ends(browser, live_asgi, kb):
    DemoSetup()._groups()
    TrainerFactory.create(username="coach")
    evaluation_set = new_set(cases={SQUAT: "Hold the kettlebell at your chest and sit down between the knees.",
                                    PLANK: "Elbows under the shoulders, a straight line from head to heels."})
    finished = [run_now(evaluation_set), run_now(evaluation_set)]
    run = EvaluationRun.objects.create(evaluation_set=evaluation_set, status=Status.RUNNING, total=2, done=0)
    page = browser.new_page(viewport={"width": 1500, "height": 900})
    page.goto(live_asgi.url + "/admin/login/")
    page.fill("#id_username", "coach")
    page.fill("#id_password", "trainer-password")
    page.click("input[type=submit]")
    page.goto(live_asgi.url + reverse("admin:review_evaluationrun_changelist"))
    bar = page.locator(f'progress[data-run="{run.pk}"]')
    expect(bar).to_have_js_property("value", 0)

    EvaluationRun.objects.filter(pk=run.pk).update(done=1)
    expect(bar).to_have_js_property("value", 1, timeout=8000)
    expect(page.locator(f'[data-run-count="{run.pk}"]')).to_have_text("1 / 2")
    page.screenshot(path=f"{SHOTS}/admin-evaluation-runs.png")
    EvaluationRun.objects.filter(pk=run.pk).update(done=2, status=Status.DONE, scores={"overall": 0.4321})
    expect(page.locator("#result_list")).to_contain_text("0.43", timeout=8000)

    page.goto(live_asgi.url + evaluation_compare_url(finished))
    expect(page.locator("#evaluation-cases")).to_contain_text("Hold the kettlebell at your chest")
    page.screenshot(path=f"{SHOTS}/admin-evaluation-compare.png", full_page=True)


def evaluation_compare_url(runs: list[EvaluationRun]) -> str:
    return reverse("admin:review_evaluationrun_compare") + "?ids=" + ",".join(str(run.pk) for run in runs)


def test_the_case_list_reads_the_approved_answers_in_the_same_query(trainer_client):
    evaluation_set = new_set()
    listing = reverse("admin:review_evaluationcase_changelist")

    def queries(cases: int) -> int:
        for n in range(evaluation_set.cases.count(), cases):
            answer = ApprovedAnswerFactory.create(question=f"How long do I hold plank {n}?")
            EvaluationCase.objects.create(evaluation_set=evaluation_set, question=answer.question,
                                          reference="Thirty seconds.", approved_answer=answer)
        with CaptureQueriesContext(connection) as captured:
            assert trainer_client.get(listing).status_code == 200
        return len(captured)

    assert queries(1) == queries(4)


def test_a_running_run_or_one_a_fine_tuning_gate_compared_cannot_be_deleted(trainer_client):
    evaluation_set = new_set(cases={SQUAT: "Sit down."})
    running, compared, spare = (EvaluationRun.objects.create(evaluation_set=evaluation_set, status=s)
                                for s in ("running", "done", "done"))
    FineTuneRun.objects.create(trigger=FineTuneRun.Trigger.MANUAL, status=FineTuneRun.Status.REFUSED,
                               base_model="fake-model", baseline_run=compared)

    for run in (running, compared):
        assert trainer_client.get(reverse("admin:review_evaluationrun_delete", args=[run.pk])).status_code == 403
    bulk = trainer_client.post(reverse("admin:review_evaluationrun_changelist"), {
        "action": "delete_selected", "_selected_action": [running.pk, spare.pk], "post": "yes"})
    set_delete = trainer_client.post(reverse("admin:review_evaluationset_delete", args=[evaluation_set.pk]),
                                     {"post": "yes"})

    assert bulk.status_code == set_delete.status_code == 403
    assert EvaluationRun.objects.count() == 3 and EvaluationSet.objects.filter(pk=evaluation_set.pk).exists()
    assert trainer_client.get(reverse("admin:review_evaluationrun_delete", args=[spare.pk])).status_code == 200


def test_a_trainer_syncs_the_held_out_set_from_the_set_list(trainer_client):
    for n in range(30):
        ApprovedAnswerFactory.create(question=f"How far apart are my feet in stance {n}?", answer=f"{n} cm.")

    response = trainer_client.post(reverse("admin:review_evaluationset_held_out"))

    held_out = EvaluationSet.objects.get(name=django_settings.EVALUATION_SET_NAME + " — held out")
    assert response.status_code == 302 and held_out.cases.count() == len(training_data_build().evaluation)


def test_a_judges_reply_is_read_from_json_inside_prose_or_a_code_fence():
    assert parse_judgement('```json\n{"score": 1.4, "reason": "Same advice."}\n```') == Judgement(1.0, "Same advice.")
    with pytest.raises(JudgeError):
        parse_judgement('{"reason": "no score"}')
