"""Fine-tuning with a quality gate, against the real database and the local OpenAI-compatible server
(files and fine-tuning jobs in OpenAI's wire format): when a run starts, the job followed to success,
failure or a slow finish, the gate promoting or refusing, promotion and rollback, and the admin pages."""

from __future__ import annotations

from datetime import timedelta

import pytest
from channels.db import database_sync_to_async as in_db
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from chat import pipeline
from chat.models import CacheEntry, Conversation, Feedback, Message
from chat.streams import NullSink
from experiments.services import prompt_label_move
from review import finetune, tasks
from review.finetune import FineTuneConflict, fine_tune_promote, fine_tune_rollback, gate_verdict, served_model
from review.models import ApprovedAnswer, EvaluationRun, EvaluationSet, FineTuneRun, ModelPromotion
from tests.factories import (
    ApprovedAnswerFactory,
    CacheEntryFactory,
    FeedbackFactory,
    PromptVersionFactory,
    TrainerFactory,
)

Status, Trigger = FineTuneRun.Status, FineTuneRun.Trigger
LIST = reverse("admin:review_finetunerun_changelist")
# Of these answers the export's seeded split holds out exercises 2 and 9: 12 make 10 training lines.
HELD_OUT = (2, 9)
BAD_ANSWER = "Bananas are a good source of potassium."


@pytest.fixture(autouse=True)
def _fresh_served_model():
    finetune.forget_served_model()
    yield
    finetune.forget_served_model()


@pytest.fixture
def rules(settings):
    settings.FINETUNE_MIN_NEW_EXAMPLES = 12
    settings.FINETUNE_MIN_FEEDBACK = 4
    settings.FINETUNE_THUMBS_DOWN_RATE = 0.5
    settings.FINETUNE_GATE_TOLERANCE = 0.0
    settings.FINETUNE_AUTO_PROMOTE = True
    return settings


def question(n: int) -> str:
    return f"How do I keep good form in exercise {n}?"


def approve(count: int, *, first: int = 1) -> list[ApprovedAnswer]:
    return [
        ApprovedAnswerFactory.create(
            question=question(n),
            answer=f"For exercise {n}, keep your back straight and push through your heels.",
        )
        for n in range(first, first + count)
    ]


def follow(times: int = 1) -> FineTuneRun:
    for _ in range(times):
        finetune.fine_tune_runs_follow()
    return FineTuneRun.objects.get()


def fine_tuned_name(run: FineTuneRun) -> str:
    """The model the fake server names after a job (as OpenAI does: ft:<base>:<suffix>:<id>)."""
    return f"ft:{run.base_model}:spotter:{run.job_id.removeprefix('ftjob-')[:8]}"


def ready_run(model: str = "ft:fake-model:spotter:aaaa") -> FineTuneRun:
    """A run that passed the gate and waits for a click (FINETUNE_AUTO_PROMOTE off)."""
    return FineTuneRun.objects.create(trigger=Trigger.MANUAL, status=Status.READY, base_model="fake-model",
                                      fine_tuned_model=model)


# --- when a run starts ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_nothing_starts_below_the_new_examples_threshold_or_while_a_run_is_unfinished(rules):
    approve(11)
    assert finetune.fine_tune_start_when_due() is None

    approve(1, first=12)
    FineTuneRun.objects.create(trigger=Trigger.MANUAL, status=Status.TRAINING, base_model="fake-model")
    assert finetune.fine_tune_trigger_due() is None
    with pytest.raises(FineTuneConflict, match="unfinished"):
        finetune.fine_tune_start(trigger=Trigger.MANUAL)
    assert FineTuneRun.objects.count() == 1


@pytest.mark.django_db
def test_enough_new_examples_start_a_run_and_only_examples_approved_since_count_for_the_next(rules):
    approve(12)

    run = finetune.fine_tune_start_when_due()

    assert run is not None and run.trigger == Trigger.NEW_EXAMPLES
    assert finetune.fine_tune_start_when_due() is None  # the same examples do not start another
    approve(12, first=13)
    assert finetune.fine_tune_trigger_due() == Trigger.NEW_EXAMPLES


@pytest.mark.django_db
def test_a_high_thumbs_down_rate_of_the_last_day_starts_a_run_when_there_is_something_new(rules):
    FeedbackFactory.create_batch(3, value="down")
    FeedbackFactory.create(value="up")
    assert finetune.fine_tune_trigger_due() is None  # nothing new to learn from

    approve(1)
    assert finetune.fine_tune_trigger_due() == Trigger.THUMBS_DOWN


@pytest.mark.django_db
def test_the_thumbs_down_rate_needs_enough_recent_ratings_over_the_threshold(rules):
    approve(1)
    FeedbackFactory.create_batch(3, value="down")
    assert finetune.fine_tune_trigger_due() is None  # 3 ratings, 4 needed

    FeedbackFactory.create_batch(2, value="up")
    old = FeedbackFactory.create_batch(3, value="down")
    Feedback.objects.filter(pk__in=[f.pk for f in old]).update(updated_at=timezone.now() - timedelta(days=2))
    assert finetune.recent_ratings(since=timezone.now() - timedelta(days=1)).total == 5
    rules.FINETUNE_THUMBS_DOWN_RATE = 0.6  # 3 of 5 is not over it
    assert finetune.fine_tune_trigger_due() is None
    rules.FINETUNE_THUMBS_DOWN_RATE = 0.5
    assert finetune.fine_tune_trigger_due() == Trigger.THUMBS_DOWN


# --- offline ----------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_offline_the_export_and_the_evaluation_run_and_the_job_step_says_no_llm_is_configured(rules, llm_server):
    approve(12)

    run = finetune.fine_tune_start(trigger=Trigger.MANUAL)

    assert run.status == Status.OFFLINE and (run.examples, run.validation_examples) == (10, 2)
    assert run.job_status == "no LLM configured" and "No LLM is configured" in run.error
    assert run.job_id == run.training_file_id == "" and llm_server.script.files == {}
    assert run.baseline_run is not None and run.baseline_run.status == "done"
    held_out = run.baseline_run.evaluation_set.cases.order_by("question").values_list("question", flat=True)
    assert list(held_out) == [question(n) for n in HELD_OUT]
    assert run.finished_at is not None
    assert finetune.fine_tune_runs_follow() == 0


# --- the job, online --------------------------------------------------------------------------------


@pytest.mark.django_db
def test_it_uploads_training_and_validation_files_and_creates_the_job_on_the_base_model(rules, online):
    rules.FINETUNE_BASE_MODEL = "base-model"
    approve(12)

    run = finetune.fine_tune_start(trigger=Trigger.MANUAL)

    assert run.status == Status.TRAINING and run.job_status == "validating_files"
    job = online.script.fine_tune_jobs[run.job_id].info
    assert (job["model"], job["training_file"], job["validation_file"]) == (
        "base-model", run.training_file_id, run.validation_file_id)
    training = online.script.files[run.training_file_id]
    assert training.info["purpose"] == "fine-tune" and len(training.content.decode().splitlines()) == 10
    assert len(online.script.files[run.validation_file_id].content.decode().splitlines()) == 2


@pytest.mark.django_db
def test_too_few_examples_fail_the_run_with_a_clear_reason_before_anything_is_uploaded(rules, online):
    approve(11)  # 9 training lines

    run = finetune.fine_tune_start(trigger=Trigger.MANUAL)

    assert run.status == Status.FAILED and run.examples == 9
    assert "Too few training examples: 9 exported" in run.error and online.script.files == {}


@pytest.mark.django_db
def test_a_failed_job_fails_the_run_with_the_providers_error(rules, online):
    online.script.fine_tune_outcomes.append("fail")
    approve(12)
    finetune.fine_tune_start(trigger=Trigger.MANUAL)

    run = follow(3)

    assert run.status == Status.FAILED and run.job_status == "failed" and run.finished_at
    assert run.error == "Training file has too few examples: at least 10 are required. (invalid_n_examples)"
    assert run.baseline_run is None and not ModelPromotion.objects.exists()


@pytest.mark.django_db
def test_a_slow_job_stays_training_until_it_finishes_then_is_evaluated(rules, online):
    online.script.fine_tune_outcomes.append("slow")
    approve(12)
    started = finetune.fine_tune_start(trigger=Trigger.MANUAL)

    run = follow(5)
    assert run.status == Status.TRAINING and run.job_status == "running" and run.fine_tuned_model == ""

    online.script.finish_fine_tune(started.job_id)
    run = follow()
    assert run.job_status == "succeeded" and run.fine_tuned_model == fine_tuned_name(run)
    assert run.trained_tokens and run.status == Status.PROMOTED
    assert finetune.fine_tune_runs_follow() == 0  # nothing left to follow


@pytest.mark.django_db
def test_the_gate_refuses_a_model_that_answers_worse_than_the_served_one(rules, online):
    approve(12)
    run = finetune.fine_tune_start(trigger=Trigger.MANUAL)
    online.script.model_answers[fine_tuned_name(run)] = BAD_ANSWER

    run = follow(3)

    assert run.status == Status.REFUSED and run.finished_at
    baseline, candidate = run.baseline_run, run.candidate_run
    assert baseline is not None and candidate is not None
    assert (baseline.model, candidate.model) == ("fake-model", run.fine_tuned_model)
    assert candidate.scores["overall"] < baseline.scores["overall"]
    assert run.error.startswith("Refused: worse") and f"{baseline.scores['overall']:.3f}" in run.error
    assert not ModelPromotion.objects.exists() and served_model() == ""
    with pytest.raises(FineTuneConflict):
        fine_tune_promote(run=run)


@pytest.mark.django_db(transaction=True)
async def test_a_job_that_succeeds_passes_the_gate_is_promoted_and_answers_the_next_question(rules, online, kb):
    await in_db(approve)(12)
    started = await in_db(finetune.fine_tune_start_when_due)()
    assert started is not None and started.status == Status.TRAINING

    run = await in_db(follow)(2)
    assert run.status == Status.TRAINING and run.job_status == "running"
    run = await in_db(follow)()

    assert run.status == Status.PROMOTED and run.fine_tuned_model == fine_tuned_name(run)
    baseline, candidate = await in_db(lambda: (run.baseline_run, run.candidate_run))()
    assert candidate.scores["overall"] >= baseline.scores["overall"] and candidate.status == "done"
    promotion = await in_db(ModelPromotion.objects.get)()
    assert (promotion.action, promotion.model_before, promotion.model_after, promotion.user_id) == (
        "promote", "", run.fine_tuned_model, None)
    assert promotion.note.startswith("Passed the gate") and await in_db(served_model)() == run.fine_tuned_model

    online.script.model_answers[run.fine_tuned_model] = "Brace, sit back and keep the bar over mid-foot [1]."
    turn, end = await pipeline.answer(visitor_id="v1", conversation_id=None, text="How do I do a barbell squat?",
                                      client_msg_id="", channel=Conversation.Channel.API, sink=NullSink())
    answer = await in_db(Message.objects.get)(pk=turn.answer_id)
    assert end["type"] == "end" and answer.text == "Brace, sit back and keep the bar over mid-foot [1]."
    assert answer.model == run.fine_tuned_model and online.script.requests[-1]["model"] == run.fine_tuned_model


@pytest.mark.django_db(transaction=True)
async def test_a_prompt_version_that_names_a_model_keeps_it_after_a_promotion(online, kb):
    await in_db(fine_tune_promote)(run=await in_db(ready_run)("ft:fake-model:spotter:tuned"))
    pinned = await in_db(PromptVersionFactory.create)(model="pinned-model")
    await in_db(prompt_label_move)(version=pinned, label="production")

    await pipeline.answer(visitor_id="v1", conversation_id=None, text="How do I do a plank?",
                          client_msg_id="", channel=Conversation.Channel.API, sink=NullSink())

    assert online.script.requests[-1]["model"] == "pinned-model"


@pytest.mark.django_db
def test_a_model_that_passes_waits_for_a_click_when_auto_promotion_is_off(rules, online):
    rules.FINETUNE_AUTO_PROMOTE = False
    approve(12)
    finetune.fine_tune_start(trigger=Trigger.MANUAL)

    run = follow(3)

    assert run.status == Status.READY and not ModelPromotion.objects.exists() and served_model() == ""


# --- the gate, promotion and rollback ---------------------------------------------------------------


def test_the_gate_passes_within_the_tolerance_and_refuses_more_failures_or_no_scores():
    assert gate_verdict(baseline={"overall": 0.8, "failed": 0}, candidate={"overall": 0.8, "failed": 0},
                        tolerance=0).passed
    assert gate_verdict(baseline={"overall": 0.8, "failed": 0}, candidate={"overall": 0.75, "failed": 0},
                        tolerance=0.1).passed
    worse = gate_verdict(baseline={"overall": 0.8, "failed": 0}, candidate={"overall": 0.75, "failed": 0},
                         tolerance=0.01)
    assert not worse.passed and "0.750 against the served model's 0.800" in worse.note
    failing = gate_verdict(baseline={"overall": 0.5, "failed": 0}, candidate={"overall": 0.9, "failed": 0.5},
                           tolerance=0)
    assert not failing.passed and failing.note.startswith("Refused: more failures")
    assert not gate_verdict(baseline={"overall": None}, candidate={"overall": 1.0}, tolerance=0).passed


@pytest.mark.django_db
def test_promotions_and_rollbacks_are_recorded_and_each_rollback_undoes_the_latest_in_force():
    operator = TrainerFactory.create()
    first, second = ready_run("ft:fake-model:spotter:one"), ready_run("ft:fake-model:spotter:two")

    fine_tune_promote(run=first, user=operator)
    fine_tune_promote(run=second, user=operator)
    assert served_model() == "ft:fake-model:spotter:two"

    back = fine_tune_rollback(user=operator)
    assert (back.action, back.model_before, back.model_after, back.run_id) == (
        "rollback", "ft:fake-model:spotter:two", "ft:fake-model:spotter:one", second.pk)
    assert served_model() == "ft:fake-model:spotter:one"
    fine_tune_rollback(user=operator)
    assert served_model() == "" and FineTuneRun.objects.get(pk=first.pk).status == Status.ROLLED_BACK
    with pytest.raises(FineTuneConflict, match="Nothing to roll back"):
        fine_tune_rollback(user=operator)

    fine_tune_promote(run=second, user=operator)  # a rolled-back run can be served again
    assert served_model() == "ft:fake-model:spotter:two"
    assert [p.action for p in ModelPromotion.objects.order_by("at", "pk")] == [
        "promote", "promote", "rollback", "rollback", "promote"]


@pytest.mark.django_db
def test_answers_cached_from_a_model_no_longer_served_are_not_reused(settings):
    configured = CacheEntryFactory.create(model=settings.LLM_MODEL)
    other = CacheEntryFactory.create(model="some-other-model")
    run = ready_run("ft:fake-model:spotter:one")

    fine_tune_promote(run=run, user=TrainerFactory.create())
    assert CacheEntry.objects.get(pk=configured.pk).blocked_at is not None
    assert CacheEntry.objects.get(pk=other.pk).blocked_at is None

    fine_tune_rollback(user=TrainerFactory.create())
    tuned = CacheEntryFactory.create(model="ft:fake-model:spotter:one")  # cached while it was served
    assert CacheEntry.objects.get(pk=other.pk).blocked_at is None
    fine_tune_promote(run=run, user=TrainerFactory.create())
    fine_tune_rollback(user=TrainerFactory.create())
    assert CacheEntry.objects.get(pk=tuned.pk).blocked_at is not None


@pytest.mark.django_db
def test_only_a_run_that_passed_the_gate_or_was_rolled_back_can_be_promoted():
    for status in (Status.TRAINING, Status.EVALUATING, Status.REFUSED, Status.FAILED, Status.OFFLINE):
        run = FineTuneRun.objects.create(trigger=Trigger.MANUAL, status=status, base_model="fake-model",
                                         fine_tuned_model="ft:fake-model:spotter:x")
        with pytest.raises(FineTuneConflict):
            fine_tune_promote(run=run)
    promoted = ready_run()
    fine_tune_promote(run=promoted)
    with pytest.raises(FineTuneConflict):
        fine_tune_promote(run=promoted)
    assert ModelPromotion.objects.count() == 1


# --- admin ------------------------------------------------------------------------------------------


@pytest.fixture
def staff() -> Client:
    client = Client()
    client.force_login(User.objects.create_superuser("ops", "ops@example.com", "pw"))
    return client


@pytest.mark.django_db
def test_the_runs_list_shows_the_served_model_scores_and_outcome(staff, settings):
    settings.LLM_MODEL = "gpt-4o-mini"
    ready_run("ft:fake-model:spotter:ready")
    held_out = EvaluationSet.objects.create(name="held out")
    baseline, candidate = (EvaluationRun.objects.create(evaluation_set=held_out, status="done", scores={"overall": s})
                           for s in (0.7, 0.4))
    refused = FineTuneRun.objects.create(trigger=Trigger.NEW_EXAMPLES, status=Status.REFUSED,
                                         base_model="fake-model", fine_tuned_model="ft:fake-model:spotter:bad",
                                         baseline_run=baseline, candidate_run=candidate,
                                         error="Refused: worse: overall 0.400 against 0.700")

    page = staff.get(LIST).content.decode()

    assert "gpt-4o-mini (the configured model)" in page and "Start fine-tuning now" in page
    assert "fake-model → ft:fake-model:spotter:ready" in page and refused.error in page
    for run, score in ((baseline, "0.700"), (candidate, "0.400")):
        link = reverse("admin:review_evaluationrun_change", args=[run.pk])
        assert f'{link}" title="evaluation run {run.pk}">{score}</a>' in page
    assert reverse("admin:review_finetunerun_promote", args=[refused.pk]) not in page
    assert staff.get(reverse("admin:review_modelpromotion_changelist")).status_code == 200


@pytest.mark.django_db
def test_the_buttons_confirm_then_start_promote_and_roll_back(staff, rules, django_capture_on_commit_callbacks):
    rules.CELERY_TASK_ALWAYS_EAGER = True  # the task runs in-process, as the worker would
    approve(12)
    start = reverse("admin:review_finetunerun_start")
    assert b"Export the approved answers" in staff.get(start).content  # asks first, does nothing
    assert not FineTuneRun.objects.exists()

    with django_capture_on_commit_callbacks(execute=True):
        assert staff.post(start).status_code == 302
    assert FineTuneRun.objects.get().status == Status.OFFLINE
    ready = ready_run("ft:fake-model:spotter:click")
    promote = reverse("admin:review_finetunerun_promote", args=[ready.pk])
    assert promote.encode() in staff.get(LIST).content
    assert b"Serve this fine-tuned model" in staff.get(promote).content
    staff.post(promote)
    assert served_model() == "ft:fake-model:spotter:click" and ModelPromotion.objects.get().user.username == "ops"
    assert b"Roll back" in staff.get(LIST).content

    confirm = staff.get(reverse("admin:review_finetunerun_rollback")).content.decode()
    assert "Back to: <code>the configured model</code>" in confirm
    staff.post(reverse("admin:review_finetunerun_rollback"))
    assert served_model() == "" and ModelPromotion.objects.latest().action == "rollback"
    response = staff.post(reverse("admin:review_finetunerun_rollback"), follow=True)
    assert b"Nothing to roll back" in response.content


@pytest.mark.django_db
def test_staff_without_the_permission_cannot_press_the_buttons():
    client = Client()
    client.force_login(User.objects.create_user("viewer", is_staff=True))
    run = ready_run()
    assert client.post(reverse("admin:review_finetunerun_promote", args=[run.pk])).status_code == 403
    assert client.post(reverse("admin:review_finetunerun_start")).status_code == 403
    assert not ModelPromotion.objects.exists() and not FineTuneRun.objects.exclude(pk=run.pk).exists()


@pytest.mark.django_db
def test_the_start_button_hands_the_run_to_a_worker_and_says_so(staff, rules, django_capture_on_commit_callbacks):
    rules.CELERY_TASK_ALWAYS_EAGER = True
    approve(12)

    with django_capture_on_commit_callbacks() as enqueued:
        response = staff.post(reverse("admin:review_finetunerun_start"), follow=True)

    assert b"Fine-tuning started" in response.content and len(enqueued) == 1
    assert not FineTuneRun.objects.exists()  # nothing exported inside the request
    enqueued[0]()  # the worker
    run = FineTuneRun.objects.get()
    assert (run.trigger, run.status, run.created_by.username) == (Trigger.MANUAL, Status.OFFLINE, "ops")


@pytest.mark.django_db
def test_a_click_or_a_queued_start_while_a_run_is_unfinished_starts_nothing(staff, rules,
                                                                            django_capture_on_commit_callbacks):
    approve(12)
    exporting = FineTuneRun.objects.create(trigger=Trigger.MANUAL, status=Status.EXPORTING, base_model="fake-model")

    with django_capture_on_commit_callbacks() as enqueued:
        response = staff.post(reverse("admin:review_finetunerun_start"), follow=True)

    assert b"still unfinished" in response.content and enqueued == []
    with pytest.raises(FineTuneConflict, match="unfinished"):  # a second click queued before the first ran
        finetune.fine_tune_start_manual(user_id=User.objects.get().pk)
    assert list(FineTuneRun.objects.values_list("pk", flat=True)) == [exporting.pk]


@pytest.mark.django_db
def test_the_manual_start_task_starts_a_run_for_the_user_who_clicked(rules):
    approve(12)
    operator = TrainerFactory.create()

    run = FineTuneRun.objects.get(pk=tasks.fine_tune_start_manual(operator.pk))

    assert (run.trigger, run.status, run.created_by) == (Trigger.MANUAL, Status.OFFLINE, operator)


def _aged(run: FineTuneRun | EvaluationRun, *, minutes: int, fields: tuple[str, ...] = ("created_at",)) -> None:
    then = timezone.now() - timedelta(minutes=minutes)
    type(run).objects.filter(pk=run.pk).update(**{name: then for name in fields})


@pytest.mark.django_db
def test_a_run_a_stopped_worker_left_exporting_or_evaluating_fails_and_the_next_one_can_start(rules):
    rules.REVIEW_STALE_RUN_MINUTES = 60
    approve(12)
    held_out = EvaluationSet.objects.create(name="held out")
    exporting, evaluating, working = (
        FineTuneRun.objects.create(trigger=Trigger.MANUAL, status=status, base_model="fake-model")
        for status in (Status.EXPORTING, Status.EVALUATING, Status.EVALUATING))
    old_baseline = EvaluationRun.objects.create(evaluation_set=held_out, status="done")
    recent_candidate = EvaluationRun.objects.create(evaluation_set=held_out, status="running",
                                                    started_at=timezone.now() - timedelta(minutes=5))
    FineTuneRun.objects.filter(pk=evaluating.pk).update(baseline_run=old_baseline)
    FineTuneRun.objects.filter(pk=working.pk).update(baseline_run=old_baseline, candidate_run=recent_candidate)
    for run in (exporting, evaluating, working):
        _aged(run, minutes=600)  # trained for hours: the run's age alone says nothing while evaluating
    _aged(old_baseline, minutes=90, fields=("created_at", "started_at"))
    _aged(recent_candidate, minutes=30)
    with pytest.raises(FineTuneConflict):
        finetune.fine_tune_start(trigger=Trigger.MANUAL)

    assert finetune.fine_tune_runs_follow() == 2  # offline: no job to look at, the stale ones still fail

    for run, was in ((exporting, "exporting"), (evaluating, "evaluating")):
        run.refresh_from_db()
        assert run.status == Status.FAILED and run.finished_at
        assert f"Stopped while {was}: no progress for more than 60 minutes" in run.error
    working.refresh_from_db()
    assert working.status == Status.EVALUATING  # its candidate's evaluation started 5 minutes ago
    FineTuneRun.objects.filter(pk=working.pk).update(status=Status.REFUSED)
    assert finetune.fine_tune_start(trigger=Trigger.MANUAL).status == Status.OFFLINE

