"""Fine-tuning with a quality gate: when enough new examples were approved (or visitors rate too many
answers down), the training export is uploaded and a fine-tuning job created through the OpenAI API; the
job is followed; the model it makes is evaluated against the served one on the held-out set and served
only if it is not worse. Every promotion and rollback is a `ModelPromotion` row: the newest names the
model answers use when their prompt version names none (`served_model`).

Provider calls are never made inside a transaction. Each state change of a run is a guarded update from
the states that allow it; changes of the served model take one advisory lock, so they happen in turn. A run
left exporting or evaluating by a worker that stopped is failed after REVIEW_STALE_RUN_MINUTES, so that it
does not block every later run.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import cachetools.func
import openai
from django.apps import apps
from django.conf import settings
from django.contrib.auth.models import User
from django.db import connection, transaction
from django.db.models import Count, Q, Value
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone
from openai.types.fine_tuning import FineTuningJob

from . import evaluation
from .export import Line, TrainingExport, jsonl_lines, training_data_build
from .models import ApprovedAnswer, EvaluationRun, FineTuneRun, ModelPromotion
from .signals import served_model_changed

logger = logging.getLogger(__name__)
Status, Trigger, Action = FineTuneRun.Status, FineTuneRun.Trigger, ModelPromotion.Action

UNFINISHED = (Status.EXPORTING, Status.TRAINING, Status.EVALUATING)
STALLABLE = (Status.EXPORTING, Status.EVALUATING)  # worked on by one worker, unlike TRAINING (the provider's)
PROMOTABLE = (Status.READY, Status.ROLLED_BACK)  # by hand; the gate promotes from EVALUATING
MIN_TRAINING_EXAMPLES = 10  # OpenAI refuses a chat fine-tuning file with fewer
JOB_FAILED = ("failed", "cancelled")
NO_LLM = "no LLM configured"
# An upload of the whole export takes far longer than a chat request (LLM_TIMEOUT_SECONDS).
API_TIMEOUT_SECONDS = 120.0
# Every change to runs' and the served model's state takes this lock, so a beat job and an operator's
# click cannot both start a run or both move the served model.
_LOCK_KEY = 0x5F7E_F17E
# Read for every answer, so kept per process this long: a promotion made in this process is seen at once
# (forget_served_model), one made in another process within this time.
SERVED_MODEL_CACHE_SECONDS = 2.0


class FineTuneConflict(Exception):
    """The run's state, or another run's, does not allow the action; the message says why."""


# --- the served model -------------------------------------------------------------------------------


@cachetools.func.ttl_cache(maxsize=1, ttl=SERVED_MODEL_CACHE_SECONDS)
def served_model() -> str:
    """The promoted model answers use when their prompt version names none; "" = the configured one."""
    return served_model_now()


def served_model_now() -> str:
    """As `served_model`, read from the database rather than the process's cache."""
    newest = ModelPromotion.objects.order_by("-at", "-pk").values_list("model_after", flat=True).first()
    return newest or ""


def forget_served_model() -> None:
    served_model.cache_clear()


def base_model() -> str:
    return settings.FINETUNE_BASE_MODEL or settings.LLM_MODEL


def llm_configured() -> bool:
    """As chat's gateway decides it (review does not import chat)."""
    return bool(settings.OPENAI_API_KEY or settings.OPENAI_BASE_URL)


# --- when a run is due ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ratings:
    total: int
    down: int

    @property
    def down_share(self) -> float:
        return self.down / self.total if self.total else 0.0


def new_examples_count() -> int:
    """Approved answers created since the last run started (any run: a failed one is retried by hand,
    not every hour), all of them before the first run."""
    last = FineTuneRun.objects.order_by("-created_at", "-pk").values_list("created_at", flat=True).first()
    answers = ApprovedAnswer.objects.filter(is_active=True)
    return (answers.filter(created_at__gt=last) if last else answers).count()


def recent_ratings(*, since: datetime) -> Ratings:
    """Visitors' thumbs given or changed since then; chat's feedback read by model name (review sits below
    chat, as monitoring's confidence labels do)."""
    feedback = apps.get_model("chat", "Feedback")._default_manager.filter(updated_at__gte=since)
    counts = feedback.aggregate(total=Count("pk"), down=Count("pk", filter=Q(value="down")))
    return Ratings(total=counts["total"], down=counts["down"])


def fine_tune_trigger_due() -> str | None:
    """Why a run should start now, or None. Never while a run is unfinished. A high thumbs-down rate alone
    is not enough: without a new example the same data would train the same model again."""
    if FineTuneRun.objects.filter(status__in=UNFINISHED).exists():
        return None
    new = new_examples_count()
    if new >= settings.FINETUNE_MIN_NEW_EXAMPLES:
        return Trigger.NEW_EXAMPLES
    return Trigger.THUMBS_DOWN if new and thumbs_down_high() else None


def thumbs_down_high() -> bool:
    """The last day's share of thumbs-down is over FINETUNE_THUMBS_DOWN_RATE, out of enough ratings."""
    ratings = recent_ratings(since=timezone.now() - timedelta(days=1))
    return ratings.total >= settings.FINETUNE_MIN_FEEDBACK and ratings.down_share > settings.FINETUNE_THUMBS_DOWN_RATE


def fine_tune_start_when_due() -> FineTuneRun | None:
    """The beat job: a run started when one is due, else None."""
    trigger = fine_tune_trigger_due()
    if trigger is None:
        return None
    try:
        return fine_tune_start(trigger=trigger)
    except FineTuneConflict:  # an operator started one meanwhile
        return None


# --- starting a run ---------------------------------------------------------------------------------


def fine_tune_start(*, trigger: str, user: User | None = None) -> FineTuneRun:
    """Export the training data and, with an LLM configured, upload it and create the provider's job
    (the run is then TRAINING, followed by `fine_tune_runs_follow`). Without one the export and the
    served model's evaluation still run and the run ends OFFLINE. Raises FineTuneConflict while another
    run is unfinished; any other failure ends the run FAILED with the reason."""
    run = _run_open(trigger=trigger, user=user)
    try:
        return _export_and_submit(run)
    except Exception as exc:  # a run left EXPORTING would block every later run
        logger.exception("fine-tune run %s failed", run.pk)
        return _fail(run, allowed=[Status.EXPORTING], error=f"{type(exc).__name__}: {exc}")


def fine_tune_start_manual(*, user_id: int | None) -> FineTuneRun:
    """A run an operator started in admin, in a worker (the export, uploads and an offline evaluation take
    longer than a request should). Raises FineTuneConflict when a run is unfinished, a run a second click
    started included."""
    user = User.objects.filter(pk=user_id).first() if user_id is not None else None
    return fine_tune_start(trigger=Trigger.MANUAL, user=user)


def fine_tune_start_check() -> None:
    """Raises FineTuneConflict while a run is unfinished: an operator is told at once, not by a worker's log."""
    if FineTuneRun.objects.filter(status__in=UNFINISHED).exists():
        raise FineTuneConflict("A fine-tuning run is still unfinished: wait for it to end.")


def _run_open(*, trigger: str, user: User | None) -> FineTuneRun:
    with transaction.atomic():
        _lock()
        fine_tune_start_check()
        return FineTuneRun.objects.create(trigger=trigger, base_model=base_model(), created_by=user)


def _export_and_submit(run: FineTuneRun) -> FineTuneRun:
    export = training_data_build()
    counts = {"examples": len(export.train), "validation_examples": len(export.validation)}
    run = _move(run, allowed=[Status.EXPORTING], changes=counts)
    if not llm_configured():
        return _offline(run)
    if run.examples < MIN_TRAINING_EXAMPLES:
        return _fail(run, allowed=[Status.EXPORTING], error=(
            f"Too few training examples: {run.examples} exported, the provider needs at least "
            f"{MIN_TRAINING_EXAMPLES}. Approve more answers, then start again."))
    try:
        return _submit(run, export)
    except openai.OpenAIError as exc:
        return _fail(run, allowed=[Status.EXPORTING], error=f"The provider refused the job: {exc}")


def _offline(run: FineTuneRun) -> FineTuneRun:
    baseline = _evaluated(model="")
    return _move(run, allowed=[Status.EXPORTING], changes={
        "status": Status.OFFLINE, "job_status": NO_LLM, "baseline_run": baseline, "finished_at": timezone.now(),
        "error": "No LLM is configured (OPENAI_API_KEY / OPENAI_BASE_URL): the training data was exported and "
                 "the served model evaluated; no fine-tuning job was started.",
    })


def _submit(run: FineTuneRun, export: TrainingExport) -> FineTuneRun:
    with _client() as client:
        training = _upload(client, name=f"spotter-{run.pk}-train.jsonl", lines=export.train)
        validation = (_upload(client, name=f"spotter-{run.pk}-validation.jsonl", lines=export.validation)
                      if export.validation else "")  # optional for the provider
        run = _move(run, allowed=[Status.EXPORTING],
                    changes={"training_file_id": training, "validation_file_id": validation})
        job = client.fine_tuning.jobs.create(
            model=run.base_model, training_file=training, validation_file=validation or openai.omit, suffix="spotter",
        )
    return _move(run, allowed=[Status.EXPORTING], changes={
        "status": Status.TRAINING, "job_id": job.id, "job_status": job.status})


def _upload(client: openai.OpenAI, *, name: str, lines: list[Line]) -> str:
    """The file's id at the provider."""
    content = "".join(jsonl_lines(lines=lines)).encode()
    return client.files.create(file=(name, content), purpose="fine-tune").id


def _client() -> openai.OpenAI:
    return openai.OpenAI(api_key=settings.OPENAI_API_KEY or "not-needed", base_url=settings.OPENAI_BASE_URL or None,
                         timeout=API_TIMEOUT_SECONDS)


# --- following the jobs -----------------------------------------------------------------------------


def fine_tune_runs_follow() -> int:
    """Fail the runs a stopped worker left exporting or evaluating, then look at every training run's job:
    record what the provider reports; a failed job fails its run, a finished one is evaluated, gated and
    promoted. Returns how many runs were failed as stale or looked at."""
    stale = fine_tune_runs_fail_stale()
    runs = list(FineTuneRun.objects.filter(status=Status.TRAINING).order_by("created_at", "pk"))
    if not runs or not llm_configured():
        return stale
    with _client() as client:
        for run in runs:
            _follow(client, run)
    return stale + len(runs)


def fine_tune_runs_fail_stale() -> int:
    """Fail the runs exporting or evaluating with no sign of work for REVIEW_STALE_RUN_MINUTES: the run's
    start, or its evaluation runs' creation and starts (an evaluating run's are created as it enters the
    state). Their worker stopped; left so, they would block every later run. Returns how many."""
    minutes = settings.REVIEW_STALE_RUN_MINUTES
    # PostgreSQL's GREATEST skips NULLs: an evaluation not started yet does not count.
    last_work = Greatest("created_at", "baseline_run__created_at", "baseline_run__started_at",
                         "candidate_run__created_at", "candidate_run__started_at")
    stale = FineTuneRun.objects.alias(last_work=last_work).filter(
        last_work__lt=timezone.now() - timedelta(minutes=minutes))
    failed = 0
    for status in STALLABLE:
        failed += stale.filter(status=status).update(status=Status.FAILED, finished_at=timezone.now(), error=(
            f"Stopped while {status}: no progress for more than {minutes} minutes (REVIEW_STALE_RUN_MINUTES), "
            "so its worker has stopped. Start a new run."))
    if failed:
        logger.warning("%s fine-tune runs failed as stale", failed)
    return failed


def _follow(client: openai.OpenAI, run: FineTuneRun) -> None:
    try:
        job = client.fine_tuning.jobs.retrieve(run.job_id)
    except openai.NotFoundError as exc:
        _fail(run, allowed=[Status.TRAINING], error=f"The provider no longer knows job {run.job_id}: {exc}")
        return
    except openai.OpenAIError:
        logger.warning("could not look at fine-tuning job %s; next time", run.job_id, exc_info=True)
        return
    changes: dict[str, Any] = {"job_status": job.status, "trained_tokens": job.trained_tokens,
                               "fine_tuned_model": job.fine_tuned_model or ""}
    queued: list[EvaluationRun] = []
    if job.status == "succeeded":
        try:
            queued = _evaluations_queue(fine_tuned_model=job.fine_tuned_model or "")
        except Exception as exc:  # as the evaluation's own failure: the run fails rather than stays training
            logger.exception("queueing the evaluation of fine-tune run %s failed", run.pk)
            _fail(run, allowed=[Status.TRAINING], error=f"The evaluation failed: {type(exc).__name__}: {exc}")
            return
        changes.update(status=Status.EVALUATING, baseline_run=queued[0], candidate_run=queued[1])
    elif job.status in JOB_FAILED:
        changes.update(status=Status.FAILED, error=_job_error(job), finished_at=timezone.now())
    try:
        run = _move(run, allowed=[Status.TRAINING], changes=changes)
    except FineTuneConflict:  # another worker followed it meanwhile, with evaluation runs of its own
        EvaluationRun.objects.filter(pk__in=[r.pk for r in queued], status=EvaluationRun.Status.QUEUED).delete()
        return
    if run.status == Status.EVALUATING:
        _evaluate_and_gate(run)


def _job_error(job: FineTuningJob) -> str:
    if job.error is None:
        return f"The job ended {job.status}."
    return f"{job.error.message} ({job.error.code})"


# --- the gate ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    passed: bool
    note: str


def gate_verdict(*, baseline: Mapping[str, Any], candidate: Mapping[str, Any], tolerance: float) -> Verdict:
    """Pass when the candidate's overall score is at least the baseline's less the tolerance and it fails
    no more cases."""
    if baseline.get("overall") is None or candidate.get("overall") is None:
        return Verdict(False, "No overall score: the held-out set has no case to judge the model on.")
    worse = candidate["overall"] < baseline["overall"] - tolerance
    more_failures = candidate.get("failed", 0) > baseline.get("failed", 0)
    note = (f"overall {candidate['overall']:.3f} against the served model's {baseline['overall']:.3f} "
            f"(tolerance {tolerance:.3f}); failed {candidate.get('failed', 0):g} against "
            f"{baseline.get('failed', 0):g}")
    if worse or more_failures:
        return Verdict(False, f"Refused: {'worse' if worse else 'more failures'}: {note}.")
    return Verdict(True, f"Passed the gate: {note}.")


def _evaluate_and_gate(run: FineTuneRun) -> FineTuneRun:
    """The fine-tuned and the served model on the held-out set, then the gate: promoted (or READY, when
    FINETUNE_AUTO_PROMOTE is off) or REFUSED with the scores."""
    try:
        baseline = evaluation.evaluation_run_execute(run_id=_linked(run.baseline_run_id))
        candidate = evaluation.evaluation_run_execute(run_id=_linked(run.candidate_run_id))
    except Exception as exc:  # a run left EVALUATING would block every later run
        logger.exception("evaluating fine-tune run %s failed", run.pk)
        return _fail(run, allowed=[Status.EVALUATING], error=f"The evaluation failed: {type(exc).__name__}: {exc}")
    broken = [r for r in (baseline, candidate) if r.status != EvaluationRun.Status.DONE]
    if broken:
        return _fail(run, allowed=[Status.EVALUATING],
                     error=f"Evaluation run {broken[0].pk} ended {broken[0].status}: {broken[0].error}")
    verdict = gate_verdict(baseline=baseline.scores, candidate=candidate.scores,
                           tolerance=settings.FINETUNE_GATE_TOLERANCE)
    if not verdict.passed:
        return _move(run, allowed=[Status.EVALUATING], changes={
            "status": Status.REFUSED, "error": verdict.note, "finished_at": timezone.now()})
    if settings.FINETUNE_AUTO_PROMOTE:
        return _promote(run, allowed=[Status.EVALUATING], user=None, note=verdict.note).run
    return _move(run, allowed=[Status.EVALUATING], changes={"status": Status.READY, "finished_at": timezone.now()})


def _evaluations_queue(*, fine_tuned_model: str) -> list[EvaluationRun]:
    """The served (baseline) and the fine-tuned (candidate) model's runs on the held-out set, queued before
    the run enters EVALUATING with them, so that an evaluating run always has a time to be stale from."""
    held_out = evaluation.held_out_set()
    return [evaluation.evaluation_run_create(evaluation_set=held_out, model=model)
            for model in (_serving_model(), fine_tuned_model)]


def _linked(run_id: int | None) -> int:
    if run_id is None:
        raise FineTuneConflict("The run has no evaluation run to execute.")
    return run_id


def _evaluated(*, model: str) -> EvaluationRun:
    created = evaluation.evaluation_run_create(evaluation_set=evaluation.held_out_set(), model=model)
    return evaluation.evaluation_run_execute(run_id=created.pk)


def _serving_model() -> str:
    """The model the fine-tuned one must beat, by name, so the record says what was compared."""
    return served_model_now() or settings.LLM_MODEL


# --- promotion and rollback -------------------------------------------------------------------------


def fine_tune_promote(*, run: FineTuneRun, user: User | None = None, note: str = "") -> ModelPromotion:
    """Serve the run's fine-tuned model from the next answer on: a run that passed the gate but was not
    promoted (READY), or one rolled back earlier. A refused run stays refused."""
    return _promote(run, allowed=PROMOTABLE, user=user, note=note)


def _promote(run: FineTuneRun, *, allowed: Sequence[str], user: User | None, note: str) -> ModelPromotion:
    with transaction.atomic():
        _lock()
        before = served_model_now()
        promoted = _move(run, allowed=allowed, where=~Q(fine_tuned_model=""), changes={
            "status": Status.PROMOTED, "finished_at": Coalesce("finished_at", Value(timezone.now()))})
        promotion = ModelPromotion.objects.create(run=promoted, action=Action.PROMOTE, model_before=before,
                                                  model_after=promoted.fine_tuned_model, user=user, note=note)
        served_model_changed.send(sender=ModelPromotion, model_before=before, model_after=promotion.model_after)
    _served_model_changed()
    return promotion


def fine_tune_rollback(*, user: User | None, note: str = "") -> ModelPromotion:
    """Undo the latest promotion still in force: back to the model served before it (a second rollback
    undoes the one before, down to the configured model)."""
    with transaction.atomic():
        _lock()
        undone = promotion_in_force()
        if undone is None:
            raise FineTuneConflict("Nothing to roll back: the configured model is served.")
        before = served_model_now()
        run = _move(undone.run, allowed=[Status.PROMOTED], changes={"status": Status.ROLLED_BACK})
        rollback = ModelPromotion.objects.create(run=run, action=Action.ROLLBACK, model_before=before,
                                                 model_after=undone.model_before, user=user, note=note)
        served_model_changed.send(sender=ModelPromotion, model_before=before, model_after=rollback.model_after)
    _served_model_changed()
    return rollback


def promotion_in_force() -> ModelPromotion | None:
    """The newest promotion not rolled back: its run is still PROMOTED (a rollback moves it out)."""
    promotions = ModelPromotion.objects.filter(action=Action.PROMOTE, run__status=Status.PROMOTED)
    return promotions.select_related("run").order_by("-at", "-pk").first()


# --- state changes ----------------------------------------------------------------------------------


def _move(run: FineTuneRun, *, allowed: Sequence[str], changes: dict[str, Any], where: Q | None = None) -> FineTuneRun:
    """The guarded update: only from the allowed states; the run as it is now."""
    rows = FineTuneRun.objects.filter(where or Q(), pk=run.pk, status__in=allowed)
    if not rows.update(**changes):
        current = FineTuneRun.objects.filter(pk=run.pk).first()
        state = current.get_status_display() if current else "gone"
        raise FineTuneConflict(f"Fine-tune run {run.pk} is {state}: it cannot be changed that way now.")
    return FineTuneRun.objects.get(pk=run.pk)


def _fail(run: FineTuneRun, *, allowed: Sequence[str], error: str) -> FineTuneRun:
    return _move(run, allowed=allowed, changes={"status": Status.FAILED, "error": error,
                                                "finished_at": timezone.now()})


def _served_model_changed() -> None:
    """Forget it now for this connection's next read, and again at the commit of an outer transaction,
    in case another thread re-read the old value meanwhile."""
    forget_served_model()
    transaction.on_commit(forget_served_model)


def _lock() -> None:
    """Held to the end of the caller's transaction."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_LOCK_KEY])
