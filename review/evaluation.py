"""Evaluation sets and runs: does a model, with a prompt version, answer the way trainers approved?

A set holds questions with reference answers. Every approved answer joins the set named
EVALUATION_SET_NAME as it is approved; the held-out set mirrors what the training export holds out
(review/export.py), so the fine-tuning gate never scores a model on what it trained on; cases also
come from CSV or JSONL files. A run answers every case of a set with one model and prompt version
through chat's pipeline (EVALUATION_ANSWERER: review does not import chat) and scores each answer:

- similarity: the cosine of the answer's and the reference's embeddings in the active embedding space
  (below 0 counts as 0: an answer about something else is not "less than unrelated");
- faithfulness: the share of the answer's sentences that some sentence of its cited excerpts supports,
  where supports means an embedding cosine of at least FAITHFUL_SIMILARITY. Cosine says what a sentence
  is about, not whether it holds: a sentence that negates its excerpt still matches it. The judge is
  what catches that, when an LLM is configured;
- judge: an LLM's grade from 0 to 1 against the reference (EVALUATION_JUDGE), when the run has a judge.

A case the gateway answered with another model than the run names (its fallback, after the named one
failed) fails: the run measures the model it names or nothing. So does a judge's grade by another model.

Slow work (answering, embedding, judging) runs outside transactions; each case's result is written as
it is scored and `done` counts up, so the admin's progress bar moves while the run works. A run left
running by a worker that stopped is failed after REVIEW_STALE_RUN_MINUTES (`evaluation_runs_fail_stale`).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol

import numpy as np
from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from django.utils.module_loading import import_string
from sklearn.preprocessing import normalize  # rows to length 1, zero rows left zero

from experiments.models import PromptVersion
from experiments.selectors import answer_prompt_version
from knowledge.chunking import split_sentences
from knowledge.embeddings import ModelSpec, NoActiveSpace, active_space_ref, configured_spec, embed_texts

from .export import training_data_build
from .models import ApprovedAnswer, EvaluationCase, EvaluationResult, EvaluationRun, EvaluationSet

logger = logging.getLogger(__name__)
Status = EvaluationRun.Status
LIVE = (Status.QUEUED, Status.RUNNING)
# all-MiniLM puts a paraphrase of a sentence above this and another claim on the same subject below it.
FAITHFUL_SIMILARITY = 0.7
METRICS = ("similarity", "faithfulness", "judge")
HELD_OUT_SUFFIX = " — held out"
# How OpenAI names the snapshot an alias answered with: gpt-4o-mini → gpt-4o-mini-2024-07-18, gpt-4 → gpt-4-0613.
_SNAPSHOT = re.compile(r"-(?:\d{4}-\d{2}-\d{2}|\d{4})")


@dataclass(frozen=True)
class CaseAnswer:
    """One case answered (EVALUATION_ANSWERER returns it)."""

    text: str
    excerpts: list[str]  # the excerpts the answer cites, each as the model was given it
    latency_ms: int
    model: str = ""  # the model that answered, as the provider names it ("": not known)


@dataclass(frozen=True)
class Judgement:
    """The LLM judge's grade of one answer (EVALUATION_JUDGE returns it)."""

    score: float  # 0 to 1
    note: str
    model: str = ""  # the model that graded, as the provider names it ("": not known)


class Answerer(Protocol):
    def __call__(self, *, question: str, language: str, model: str, prompt_version_id: int | None) -> CaseAnswer: ...


class Judge(Protocol):
    def __call__(self, *, question: str, reference: str, answer: str, model: str) -> Judgement: ...


# --- sets ---------------------------------------------------------------------------------------------


def evaluation_set_for_approved() -> EvaluationSet:
    """The set every approved answer joins (EVALUATION_SET_NAME)."""
    evaluation_set, _ = EvaluationSet.objects.get_or_create(
        name=settings.EVALUATION_SET_NAME,
        defaults={"from_approved": True, "description": "Every answer a trainer approves, as it is approved."},
    )
    return evaluation_set


def evaluation_case_add_approved(*, answer: ApprovedAnswer) -> EvaluationCase:
    """An approval joins the approved answers' set. A question approved again (edited, say) keeps its
    case, with the newer answer as the reference. No I/O besides the database: safe inside the
    approval's transaction."""
    case, _ = EvaluationCase.objects.update_or_create(
        evaluation_set=evaluation_set_for_approved(), question=answer.question.strip(),
        defaults={"reference": answer.answer, "language": answer.language, "approved_answer": answer},
    )
    return case


def held_out_set() -> EvaluationSet:
    """The cases the training export holds out (its seeded hash split), synced into their own set.

    Cases that are no longer held out (their approved answer deactivated or expired) leave the set with
    their per-case results; past runs keep their means in `scores`. While a run on the set is queued or
    running the set stays as it is: that run answers and scores its cases."""
    evaluation_set, _ = EvaluationSet.objects.get_or_create(
        name=settings.EVALUATION_SET_NAME + HELD_OUT_SUFFIX,
        defaults={"description": "The approved answers the training export holds out of fine-tuning."},
    )
    if _in_use(evaluation_set):
        return evaluation_set
    wanted: dict[str, dict[str, Any]] = {}
    for line in training_data_build().evaluation:  # newest first: the newest approval is the reference
        wanted.setdefault(line["question"], line)
    cases = [
        EvaluationCase(question=question, reference=line["reference_answer"], language=line["language"],
                       approved_answer_id=line["approved_answer_id"])
        for question, line in wanted.items()
    ]
    with transaction.atomic():
        # Row-locked, so that two syncs take turns; checked again, as a run may have started meanwhile.
        EvaluationSet.objects.select_for_update().filter(pk=evaluation_set.pk).first()
        if _in_use(evaluation_set):
            return evaluation_set
        evaluation_set.cases.exclude(question__in=list(wanted)).delete()
        _cases_upsert(evaluation_set, cases, fields=["reference", "language", "approved_answer"])
    return evaluation_set


def _in_use(evaluation_set: EvaluationSet) -> bool:
    if not evaluation_set.runs.filter(status__in=LIVE).exists():
        return False
    logger.info("%s not synced: a run on it is queued or running", evaluation_set)
    return True


def _cases_upsert(evaluation_set: EvaluationSet, cases: list[EvaluationCase], *, fields: list[str]) -> None:
    """One INSERT ... ON CONFLICT: every case or none; a question the set holds takes the new values."""
    for case in cases:
        case.evaluation_set = evaluation_set
    EvaluationCase.objects.bulk_create(
        cases, update_conflicts=True, unique_fields=["evaluation_set", "question"], update_fields=fields,
    )


# --- importing cases ----------------------------------------------------------------------------------


class EvaluationImportError(ValueError):
    """The file does not hold evaluation cases; nothing was imported. `line`: where, from 1."""

    def __init__(self, message: str, *, line: int | None = None) -> None:
        super().__init__(f"line {line}: {message}" if line else message)
        self.line = line


def evaluation_cases_import(*, evaluation_set: EvaluationSet, data: bytes, filename: str) -> int:
    """Cases from CSV (a header `question,reference[,language]`; `reference_answer` is read as reference)
    or JSONL (an object a line with question, reference or reference_answer, and language: what the
    training export's eval part writes). All or nothing. A question the set holds, or that the file
    repeats, takes the (last) reference of the file. Returns how many cases were added or updated."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise EvaluationImportError(f"the file is not UTF-8 text ({exc.reason})") from exc
    rows = _jsonl_cases(text) if _is_jsonl(filename, text) else _csv_cases(text)
    if not rows:
        raise EvaluationImportError("the file holds no cases")
    unique = {case.question: case for case in rows}
    _cases_upsert(evaluation_set, list(unique.values()), fields=["reference", "language"])
    return len(unique)


def _is_jsonl(filename: str, text: str) -> bool:
    name = filename.lower()
    if name.endswith(".csv"):
        return False
    return name.endswith((".jsonl", ".ndjson", ".json")) or text.lstrip().startswith("{")


def _csv_cases(text: str) -> list[EvaluationCase]:
    reader = csv.DictReader(io.StringIO(text))
    columns = set(reader.fieldnames or [])
    reference = "reference" if "reference" in columns else "reference_answer"
    if not {"question", reference} <= columns:
        raise EvaluationImportError("the CSV needs a header with the columns question and reference", line=1)
    cases = []
    try:
        for row in reader:
            cases.append(_case(row.get("question"), row.get(reference), row.get("language"), reader.line_num))
    except csv.Error as exc:
        raise EvaluationImportError(f"not CSV ({exc})", line=reader.line_num) from exc
    return cases


def _jsonl_cases(text: str) -> list[EvaluationCase]:
    cases = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise EvaluationImportError(f"not JSON ({exc.msg})", line=number) from exc
        if not isinstance(row, dict):
            raise EvaluationImportError("each line must be a JSON object", line=number)
        reference = row.get("reference", row.get("reference_answer"))
        cases.append(_case(row.get("question"), reference, row.get("language"), number))
    return cases


def _case(question: object, reference: object, language: object, line: int) -> EvaluationCase:
    if not isinstance(question, str) or not question.strip():
        raise EvaluationImportError("the question is missing or empty", line=line)
    if not isinstance(reference, str) or not reference.strip():
        raise EvaluationImportError("the reference answer is missing or empty", line=line)
    if language is not None and not isinstance(language, str):
        raise EvaluationImportError("the language must be text, such as en", line=line)
    case = EvaluationCase(question=question.strip(), reference=reference.strip(),
                          language=(language or "").strip() or settings.CHAT_DEFAULT_LANGUAGE)
    try:  # the model's own limits (the language code's length)
        case.full_clean(exclude=["evaluation_set"], validate_unique=False, validate_constraints=False)
    except ValidationError as exc:
        problems = "; ".join(f"{name}: {' '.join(errors)}" for name, errors in exc.message_dict.items())
        raise EvaluationImportError(problems, line=line) from exc
    return case


# --- runs ---------------------------------------------------------------------------------------------


def evaluation_run_create(
    *, evaluation_set: EvaluationSet, model: str = "", prompt_version: PromptVersion | None = None,
    judge_model: str | None = None, user: User | None = None,
) -> EvaluationRun:
    """A queued run; `evaluation_run_execute` (or the task of that name) does it.

    `model` empty: the served model. `prompt_version` None: the `production` one, pinned now so the run
    says what it measured after the label moves. `judge_model` None: EVALUATION_JUDGE_MODEL, else
    LLM_MODEL; empty: no judge. With no LLM configured there is never a judge."""
    if prompt_version is None:
        prompt_version = answer_prompt_version()
    return EvaluationRun.objects.create(
        evaluation_set=evaluation_set, model=model.strip(), prompt_version=prompt_version,
        judge_model=_judge_model(judge_model), total=evaluation_set.cases.count(), created_by=user,
    )


def _judge_model(requested: str | None) -> str:
    # chat's llm_enabled(), read from the same settings: review does not import chat.
    if not (settings.OPENAI_API_KEY or settings.OPENAI_BASE_URL):
        return ""
    if requested is None:
        return str(settings.EVALUATION_JUDGE_MODEL or settings.LLM_MODEL)
    return requested.strip()


def evaluation_run_execute(*, run_id: int) -> EvaluationRun:
    """Answer and score every case of a queued run, synchronously (the Celery task calls this). A case
    that fails is recorded with its error and the run goes on; the run fails when none was answered or
    scoring itself broke. A run already started or finished is returned untouched."""
    cases = list(EvaluationCase.objects.filter(evaluation_set__runs__pk=run_id).order_by("pk"))
    started = EvaluationRun.objects.filter(pk=run_id, status=Status.QUEUED).update(
        status=Status.RUNNING, started_at=timezone.now(), total=len(cases), done=0,
    )
    run = EvaluationRun.objects.get(pk=run_id)
    if not started:
        return run
    try:
        scorer = _Scorer(run)
        for case in cases:
            scorer.result(case).save()
            if not EvaluationRun.objects.filter(pk=run_id, status=Status.RUNNING).update(done=F("done") + 1):
                return EvaluationRun.objects.get(pk=run_id)  # failed as stale meanwhile: it stays so
    except Exception as exc:
        logger.exception("evaluation run %s failed", run_id)
        return _run_finish(run, error=f"{type(exc).__name__}: {exc}")
    return _run_finish(run)


class _Scorer:
    """A run's answerer, judge and embedding space, and what they make of one case."""

    def __init__(self, run: EvaluationRun) -> None:
        self.run = run
        self.answerer: Answerer = import_string(settings.EVALUATION_ANSWERER)
        self.judge: Judge | None = import_string(settings.EVALUATION_JUDGE) if run.judge_model else None
        self.spec = _embedding_spec()

    def result(self, case: EvaluationCase) -> EvaluationResult:
        result = EvaluationResult(run=self.run, case=case)
        try:
            answer = self.answerer(question=case.question, language=case.language, model=self.run.model,
                                   prompt_version_id=self.run.prompt_version_id)
        except Exception as exc:  # the model's failure on this case, not the run's
            logger.warning("evaluation run %s: case %s failed", self.run.pk, case.pk, exc_info=True)
            result.error = f"{type(exc).__name__}: {exc}"
            return result
        result.answer, result.excerpts, result.latency_ms = answer.text, answer.excerpts, answer.latency_ms
        if not model_matches(requested=self.run.model, reported=answer.model):
            result.error = (f"answered by {answer.model}, not {self.run.model}: the gateway fell back to another "
                            f"model (LLM_FALLBACK_MODEL, or the offline provider), so the case does not measure "
                            f"{self.run.model}")
            return result
        result.similarity, result.faithfulness = answer_scores(
            answer=answer.text, reference=case.reference, excerpts=answer.excerpts, spec=self.spec)
        if self.judge is not None:
            self._judge(result, case)
        return result

    def _judge(self, result: EvaluationResult, case: EvaluationCase) -> None:
        assert self.judge is not None
        try:
            judgement = self.judge(question=case.question, reference=case.reference, answer=result.answer,
                                   model=self.run.judge_model)
        except Exception as exc:  # a judge that cannot grade leaves the answer's other scores standing
            logger.warning("evaluation run %s: judging case %s failed", self.run.pk, case.pk, exc_info=True)
            result.judge_note = f"the judge failed: {type(exc).__name__}: {exc}"
            return
        if not model_matches(requested=self.run.judge_model, reported=judgement.model):
            result.judge_note = f"the judge failed: graded by {judgement.model}, not {self.run.judge_model}"
            return
        result.judge, result.judge_note = min(1.0, max(0.0, judgement.score)), judgement.note


def model_matches(*, requested: str, reported: str) -> bool:
    """Whether the model the provider reports is the one asked for: the same name or, for an alias, its
    dated snapshot. True when either is not known (nothing named, or nothing reported)."""
    if not requested or not reported or reported == requested:
        return True
    return reported.startswith(requested) and _SNAPSHOT.fullmatch(reported[len(requested):]) is not None


def _embedding_spec() -> ModelSpec:
    """The active space's model, as search reads; the configured one before anything is ingested."""
    try:
        return active_space_ref().spec
    except NoActiveSpace:
        return configured_spec()


def _run_finish(run: EvaluationRun, *, error: str = "") -> EvaluationRun:
    """Guarded: a run failed as stale meanwhile stays failed."""
    scores = evaluation_run_scores(run=run)
    if not error and run.total and not scores["answered"]:
        first = run.results.exclude(error="").values_list("error", flat=True).first()
        error = f"no case was answered; the first error: {first}"
    EvaluationRun.objects.filter(pk=run.pk, status=Status.RUNNING).update(
        scores=scores, status=Status.FAILED if error else Status.DONE, error=error, finished_at=timezone.now())
    run.refresh_from_db()
    return run


def evaluation_runs_fail_stale() -> int:
    """Fail the runs running for longer than REVIEW_STALE_RUN_MINUTES (their worker stopped), and those
    queued as long (their task was lost): left so, they would keep the held-out set from syncing. Returns
    how many."""
    minutes = settings.REVIEW_STALE_RUN_MINUTES
    cutoff = timezone.now() - timedelta(minutes=minutes)
    running = EvaluationRun.objects.filter(status=Status.RUNNING, started_at__lt=cutoff).update(
        status=Status.FAILED, finished_at=timezone.now(),
        error=f"Still running {minutes} minutes after it started (REVIEW_STALE_RUN_MINUTES): its worker "
              "stopped. Start the run again.")
    queued = EvaluationRun.objects.filter(status=Status.QUEUED, created_at__lt=cutoff).update(
        status=Status.FAILED, finished_at=timezone.now(),
        error=f"Never started in the {minutes} minutes after it was queued (REVIEW_STALE_RUN_MINUTES): its task "
              "was lost. Start the run again.")
    if running or queued:
        logger.warning("evaluation runs failed as stale: %s running, %s queued", running, queued)
    return running + queued


# --- scoring ------------------------------------------------------------------------------------------

_CITATION = re.compile(r"\[\d{1,2}\]")
_LINE_MARKUP = re.compile(r"^\s*(?:[-*•>]|#{1,6}|\d{1,2}[.)])\s+")  # list items, headings, quotes
_WORD = re.compile(r"\w{2,}")


def answer_scores(*, answer: str, reference: str, excerpts: Sequence[str], spec: ModelSpec) -> tuple[float, float]:
    """(similarity to the reference, faithfulness to the excerpts) of one answer, from one batched
    embedding of the answer, the reference and every sentence of both the answer and the excerpts."""
    if not answer.strip():
        return 0.0, 0.0
    sentences, evidence = text_sentences(answer), [s for excerpt in excerpts for s in text_sentences(excerpt)]
    # Citation numbers are not what an answer says (a reference numbers its own excerpts).
    whole = [_CITATION.sub("", answer), _CITATION.sub("", reference)]
    vectors = normalize(np.asarray(embed_texts([*whole, *sentences, *evidence], spec), dtype=np.float64))
    similarity = max(0.0, float(vectors[0] @ vectors[1]))
    said, given = vectors[2:2 + len(sentences)], vectors[2 + len(sentences):]
    if not len(said) or not len(given):
        return round(similarity, 4), 0.0
    supported = (said @ given.T).max(axis=1) >= FAITHFUL_SIMILARITY
    return round(similarity, 4), round(float(supported.mean()), 4)


def text_sentences(text: str) -> list[str]:
    """The sentences of an answer or excerpt, line by line (answers list steps one a line), without
    citation marks and Markdown list or heading markers; fragments without a word are dropped."""
    sentences: list[str] = []
    for line in text.splitlines():
        clean = _LINE_MARKUP.sub("", _CITATION.sub("", line)).replace("**", "").strip()
        sentences.extend(s for s in split_sentences(clean) if _WORD.search(s))
    return sentences


# --- reads --------------------------------------------------------------------------------------------


def evaluation_run_scores(*, run: EvaluationRun) -> dict[str, Any]:
    """The run's means: similarity, faithfulness and (when it has a judge) judge over the answered cases;
    overall over every case, each case scoring the mean of its metrics and a failed case 0 (a model that
    fails half the cases does not score as if it had answered only the easy ones); answered and failed
    counts. A mean with nothing to average is None."""
    results = list(run.results.values(*METRICS, "error"))
    answered = [r for r in results if not r["error"]]
    scores: dict[str, Any] = {"answered": len(answered), "failed": len(results) - len(answered)}
    for metric in METRICS if run.judge_model else METRICS[:2]:
        scores[metric] = _mean([r[metric] for r in answered if r[metric] is not None])
    scores["overall"] = _mean([0.0 if r["error"] else _case_score(r) for r in results])
    return scores


def _case_score(result: dict[str, Any]) -> float:
    values = [result[metric] for metric in METRICS if result[metric] is not None]
    return sum(values) / len(values) if values else 0.0


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 4) if values else None


def evaluation_runs_progress(*, run_ids: Iterable[int]) -> list[dict[str, Any]]:
    """What the admin's progress bars poll: each run's status, done, total and (once finished) means."""
    rows = EvaluationRun.objects.filter(pk__in=list(run_ids)).values("pk", "status", "done", "total", "scores")
    return [{"id": r["pk"], "status": r["status"], "done": r["done"], "total": r["total"], "scores": r["scores"]}
            for r in rows]


@dataclass(frozen=True)
class ComparedCase:
    question: str
    reference: str
    results: list[EvaluationResult | None]  # one per run, in the comparison's order; None: not answered yet


@dataclass(frozen=True)
class Comparison:
    runs: list[EvaluationRun]  # oldest first
    cases: list[ComparedCase]


def evaluation_runs_compare(*, runs: Iterable[EvaluationRun]) -> Comparison:
    """Runs side by side: per question (runs on different sets meet on the same question), each run's
    answer with its scores; the runs' means are on the runs."""
    ordered = sorted(runs, key=lambda run: (run.created_at, run.pk))
    column = {run.pk: index for index, run in enumerate(ordered)}
    rows: dict[str, ComparedCase] = {}
    set_ids = {run.evaluation_set_id for run in ordered}
    for case in EvaluationCase.objects.filter(evaluation_set__in=set_ids).order_by("pk"):
        rows.setdefault(case.question, ComparedCase(case.question, case.reference, [None] * len(ordered)))
    results = EvaluationResult.objects.filter(run__in=list(column)).select_related("case").order_by("case_id")
    for result in results:
        row = rows.setdefault(result.case.question,
                              ComparedCase(result.case.question, result.case.reference, [None] * len(ordered)))
        row.results[column[result.run_id]] = result
    return Comparison(runs=ordered, cases=list(rows.values()))
