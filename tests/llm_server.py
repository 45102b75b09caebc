"""A local OpenAI-compatible server for tests and benchmarks.

It speaks the real wire protocol (JSON and server-sent events, `stream_options.include_usage`,
multipart uploads, cursor pages, OpenAI's error bodies), so the real `openai` client is exercised
end to end. Behaviour is scripted:

- answers: a queue of answer texts (the default answer when empty)
- model_answers: an answer that always comes from one model name (to tell a base model from its
  fine-tuned one in an evaluation)
- ttft / tokens_per_s: time to first token and streaming rate
- tokens_per_write: token events sent in one write (as a server does that produced several
  tokens before the client read; a client that falls behind sees the same)
- faults: a queue of faults consumed one per chat request: "429", "500", "timeout" (never
  answers), "cut" (streams a few tokens, then drops the connection), "error_event" (a 200
  stream whose first event is an error, as OpenAI sends when a model fails mid-request)
- model_faults: a fault that always applies to one model name (to test fallbacks)
- flag_words: moderation (/v1/moderations) flags an input that contains one of these words (case
  ignored) with the categories given, {"punch": ["violence"]}; moderation_faults: a queue of faults
  consumed one per moderation request ("500", "timeout"); moderation_requests: what was asked
- fine_tune_outcomes: a queue of what the next created fine-tuning jobs do, one per job:
  "succeed", "fail" or "slow", or a FineTuneOutcome for the details (fine_tune_default when empty);
  finish_fine_tune(job_id) ends a job (a slow one above all) at its next look

Files (/v1/files) and fine-tuning jobs (/v1/fine_tuning/jobs) are kept in memory (script.files,
script.fine_tune_jobs). A job walks validating_files → queued → running, one step per retrieve of
the job by default, then ends as its outcome says; a succeeded job's `fine_tuned_model` answers
chat completions like any other model.

In-process: `with LLMServer() as server: server.script.answers.append(...)`.
Out of process (benchmarks): `python -m tests.llm_server --port 8765 --ttft-ms 200 --tokens-per-s 50`;
POST /_control with JSON fields of Script changes the script ({"finish_fine_tune": {"job_id": …}}
calls that method).
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import hashlib
import inspect
import json
import math
import re
import socket
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any
from urllib.parse import parse_qsl

import uvicorn

DEFAULT_ANSWER = "Keep your back straight and push through your heels [1]."
ORGANIZATION = "org-spotter-tests"
MODERATION_CATEGORIES = (
    "harassment", "harassment/threatening", "hate", "hate/threatening", "illicit", "illicit/violent",
    "self-harm", "self-harm/instructions", "self-harm/intent", "sexual", "sexual/minors", "violence",
    "violence/graphic",
)


class ApiError(Exception):
    """An error reply in OpenAI's shape; a handler raises it and the app sends it with its status."""

    def __init__(self, status: int, message: str, *, param: str | None = None, code: str | None = None,
                 kind: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.status = status
        self.body = {"error": {"message": message, "type": kind, "param": param, "code": code}}


# --- fine-tuning: what a job does, and the records the server keeps -------------------------------

FINE_TUNE_KINDS = ("succeed", "fail", "slow")
_STEPS = ("validating_files", "queued", "running")
_ENDED = ("succeeded", "failed", "cancelled")
_STEP_MESSAGES = {"queued": "Files validated, moving job to queued state", "running": "Fine-tuning job started"}
# What OpenAI fills in for "auto" once a job runs (it reports "auto" until then).
_AUTO_HYPERPARAMETERS = {"n_epochs": 3, "batch_size": 1, "learning_rate_multiplier": 2.0}


@dataclass
class FineTuneOutcome:
    """What one fine-tuning job does. It walks validating_files → queued → running and then ends as
    `kind` says: "succeed", "fail" (with the error below) or "slow" (stays running until
    Script.finish_fine_tune; for a job that is merely long, give `seconds` instead)."""

    kind: str = "succeed"
    polls: int = 3  # retrieves of the job until it ends, its steps spread over them
    seconds: float | None = None  # when set, the job ends this long after creation instead, polled or not
    error_code: str = "invalid_n_examples"
    error_message: str = "Training file has too few examples: at least 10 are required."
    error_param: str | None = "training_file"

    def __post_init__(self) -> None:
        if self.kind not in FINE_TUNE_KINDS:
            raise ValueError(f"fine-tune outcome {self.kind!r} is not one of {FINE_TUNE_KINDS}")

    @classmethod
    def of(cls, value: FineTuneOutcome | str | dict[str, Any]) -> FineTuneOutcome:
        """Accepts the shorthands tests and /_control use: a kind name or a dict of fields."""
        if isinstance(value, cls):
            return value
        return cls(kind=value) if isinstance(value, str) else cls(**value)

    def progress(self, polls: int, elapsed: float) -> float:
        """How far along the job is, 1.0 and beyond meaning its end."""
        if self.seconds is not None:
            return elapsed / self.seconds if self.seconds > 0 else 1.0
        return polls / self.polls if self.polls > 0 else 1.0


@dataclass
class StoredFile:
    info: dict[str, Any]  # the wire object
    content: bytes


@dataclass
class FineTuneJob:
    info: dict[str, Any]  # the wire object
    outcome: FineTuneOutcome
    training_tokens: int
    started: float = field(default_factory=time.monotonic)
    polls: int = 0
    release: str | None = None  # set by Script.finish_fine_tune: end this way at the next look
    events: list[dict[str, Any]] = field(default_factory=list)  # oldest first

    @property
    def status(self) -> str:
        return self.info["status"]


@dataclass
class Script:
    answers: deque[str] = field(default_factory=deque)
    default_answer: str = DEFAULT_ANSWER
    model_answers: dict[str, str] = field(default_factory=dict)
    ttft: float = 0.0
    tokens_per_s: float = 0.0  # 0: as fast as possible
    tokens_per_write: int = 1
    faults: deque[str] = field(default_factory=deque)
    model_faults: dict[str, str] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)
    clients: list[tuple[str, int]] = field(default_factory=list)  # (host, port) per chat request
    fine_tune_outcomes: deque[FineTuneOutcome | str | dict[str, Any]] = field(default_factory=deque)
    flag_words: dict[str, list[str]] = field(default_factory=dict)
    moderation_faults: deque[str] = field(default_factory=deque)
    moderation_requests: list[dict[str, Any]] = field(default_factory=list)
    arrivals: list[str] = field(default_factory=list)  # "chat" and "moderation" requests, in the order they came
    fine_tune_default: FineTuneOutcome = field(default_factory=FineTuneOutcome)
    files: dict[str, StoredFile] = field(default_factory=dict)
    fine_tune_jobs: dict[str, FineTuneJob] = field(default_factory=dict)

    def next_answer(self, model: str = "") -> str:
        if model in self.model_answers:
            return self.model_answers[model]
        return self.answers.popleft() if self.answers else self.default_answer

    def next_fault(self, model: str) -> str | None:
        if model in self.model_faults:
            return self.model_faults[model]
        return self.faults.popleft() if self.faults else None

    def next_fine_tune_outcome(self) -> FineTuneOutcome:
        return FineTuneOutcome.of(self.fine_tune_outcomes.popleft() if self.fine_tune_outcomes
                                  else self.fine_tune_default)

    def finish_fine_tune(self, job_id: str | None = None, outcome: str = "succeed") -> None:
        """End a job ("succeed" or "fail") at its next look; every unfinished job when job_id is None.
        The way to let a "slow" job finish; it also cuts any other job short."""
        if outcome not in ("succeed", "fail"):
            raise ValueError(f"a job ends with 'succeed' or 'fail', not {outcome!r}")
        jobs = [self.fine_tune_jobs[job_id]] if job_id else list(self.fine_tune_jobs.values())
        for job in jobs:
            job.release = outcome


# --- helpers ----------------------------------------------------------------------------------------


def _tokens(text: str) -> list[str]:
    return re.findall(r"\S+\s*", text) or [text]


def _fake_embedding(text: str, dimensions: int) -> list[float]:
    """Hashed bag of words: texts that share words are near each other, as with a real model."""
    raw = [0.0] * dimensions
    for word in re.findall(r"[a-z0-9]+", text.lower()):
        digest = hashlib.sha256(word.encode()).digest()
        raw[int.from_bytes(digest[:4], "big") % dimensions] += 1.0 if digest[4] % 2 else -1.0
    norm = math.sqrt(sum(v * v for v in raw)) or 1.0
    return [v / norm for v in raw] if any(raw) else [1.0 / math.sqrt(dimensions)] * dimensions


def _new_id(prefix: str) -> str:
    return prefix + uuid.uuid4().hex[:24]


def _page(items: list[dict[str, Any]], after: str | None, limit: int) -> dict[str, Any]:
    """One cursor page as OpenAI lists objects: at most `limit` items following the one whose id is
    `after` (the SDK's auto-pagination passes the last id it saw)."""
    start = 0
    if after:
        ids = [item["id"] for item in items]
        # A cursor that is gone (a deleted file) ends the listing rather than restarting it.
        start = ids.index(after) + 1 if after in ids else len(items)
    data = items[start:start + limit]
    return {"object": "list", "data": data, "has_more": start + limit < len(items)}


def _limit(query: dict[str, str], default: int) -> int:
    try:
        limit = int(query.get("limit", default))
    except ValueError:
        limit = 0
    if limit < 1:
        raise ApiError(400, f"Invalid limit: {query.get('limit')!r}. It must be a positive integer.", param="limit")
    return limit


def _required(body: dict[str, Any], name: str) -> Any:
    if not body.get(name):
        raise ApiError(400, f"Missing required parameter: '{name}'.", param=name, code="missing_required_parameter")
    return body[name]


# --- the chat fine-tuning file format --------------------------------------------------------------

_ROLES = ("system", "user", "assistant")
_MESSAGE_KEYS = {"role", "content", "name", "weight"}


def fine_tune_file_problem(filename: str, content: bytes) -> str | None:
    """Why OpenAI would refuse this file for chat fine-tuning, or None when it is fine: JSONL whose
    every line is {"messages": [...]} with system/user/assistant messages, one assistant at least."""
    if not filename.endswith(".jsonl"):
        return "Invalid file format for Fine-Tuning API. Must be .jsonl"
    try:
        lines = content.decode("utf-8").split("\n")
    except UnicodeDecodeError:
        return "Invalid file format for Fine-Tuning API. The file is not UTF-8 text."
    if lines[-1] == "":
        lines.pop()  # the newline that ends the last line
    if not lines:
        return "Invalid file format for Fine-Tuning API. The file is empty."
    for number, line in enumerate(lines, 1):
        problem = _example_problem(line)
        if problem:
            return f"Invalid file format. Line {number}: {problem}"
    return None


def _example_problem(line: str) -> str | None:
    try:
        example = json.loads(line)
    except json.JSONDecodeError:
        return "not valid JSON."
    if not isinstance(example, dict) or set(example) != {"messages"}:
        return 'each line must be an object with only the key "messages".'
    messages = example["messages"]
    if not isinstance(messages, list) or not messages:
        return '"messages" must be a non-empty list.'
    for index, message in enumerate(messages, 1):
        problem = _message_problem(message)
        if problem:
            return f"message {index}: {problem}"
    if not any(message["role"] == "assistant" for message in messages):
        return "no assistant message: an example must have one to learn from."
    return None


def _message_problem(message: Any) -> str | None:
    if not isinstance(message, dict):
        return "not an object."
    if message.get("role") not in _ROLES:
        return f"unrecognized role {message.get('role')!r}, expected one of {', '.join(_ROLES)}."
    if not isinstance(message.get("content"), str):
        return '"content" must be a string.'
    if set(message) - _MESSAGE_KEYS:
        return f"unexpected keys {sorted(set(message) - _MESSAGE_KEYS)}."
    if "weight" in message and message["weight"] not in (0, 1):
        return '"weight" must be 0 or 1.'
    return None


def _training_tokens(content: bytes) -> int:
    """Words in the examples' messages: the server's stand-in for billable tokens per epoch."""
    examples = (json.loads(line) for line in content.decode().split("\n") if line.strip())  # as validated
    return sum(len(m["content"].split()) for example in examples for m in example["messages"])


# --- files and fine-tuning jobs ---------------------------------------------------------------------

FILE_PURPOSES = ("assistants", "batch", "fine-tune", "vision", "user_data", "evals")


class _FineTuning:
    """/v1/files and /v1/fine_tuning/jobs over the script's in-memory records. Status changes happen
    when a job is looked at (retrieve, list, events, cancel), computed from its polls or its age, so
    no background task is needed and a test sees every step."""

    def __init__(self, script: Script) -> None:
        self.script = script

    # files

    def file_create(self, request: _Request) -> dict[str, Any]:
        form = request.form()
        if "file" not in form:
            raise ApiError(400, "Missing required parameter: 'file'.", param="file", code="missing_required_parameter")
        purpose = form.get("purpose", (None, b""))[1].decode()
        if purpose not in FILE_PURPOSES:
            raise ApiError(400, f"'{purpose}' is not one of {list(FILE_PURPOSES)} - 'purpose'", param="purpose")
        filename, content = form["file"]
        problem = fine_tune_file_problem(filename or "", content) if purpose == "fine-tune" else None
        if problem:
            raise ApiError(400, problem, param="file", code="invalid_file_format")
        return self._store(filename or "upload", content, purpose).info

    def file_list(self, request: _Request) -> dict[str, Any]:
        purpose = request.query.get("purpose")
        files = [f.info for f in self.script.files.values() if purpose in (None, f.info["purpose"])]
        if request.query.get("order", "desc") == "desc":
            files.reverse()
        page = _page(files, request.query.get("after"), _limit(request.query, 10_000))
        ids = [f["id"] for f in page["data"]]
        return {**page, "first_id": ids[0] if ids else None, "last_id": ids[-1] if ids else None}

    def file_retrieve(self, request: _Request, file_id: str) -> dict[str, Any]:
        return self._file(file_id).info

    def file_content(self, request: _Request, file_id: str) -> bytes:
        return self._file(file_id).content

    def file_delete(self, request: _Request, file_id: str) -> dict[str, Any]:
        self._file(file_id)
        del self.script.files[file_id]
        return {"id": file_id, "object": "file", "deleted": True}

    def _file(self, file_id: str) -> StoredFile:
        if file_id not in self.script.files:
            raise ApiError(404, f"No such File object: {file_id}", param="id")
        return self.script.files[file_id]

    def _store(self, filename: str, content: bytes, purpose: str) -> StoredFile:
        info = {"id": _new_id("file-"), "object": "file", "bytes": len(content), "created_at": int(time.time()),
                "filename": filename, "purpose": purpose, "status": "processed", "expires_at": None,
                "status_details": None}
        stored = self.script.files[info["id"]] = StoredFile(info, content)
        return stored

    # jobs

    def job_create(self, request: _Request) -> dict[str, Any]:
        body = request.json()
        model = _required(body, "model")
        training = self._fine_tune_file(_required(body, "training_file"), "training_file")
        if body.get("validation_file"):
            self._fine_tune_file(body["validation_file"], "validation_file")
        suffix = body.get("suffix")
        if suffix and len(suffix) > 64:
            raise ApiError(400, "suffix must be at most 64 characters long.", param="suffix")
        hyperparameters, method = _job_hyperparameters(body)
        info = {
            "id": _new_id("ftjob-"), "object": "fine_tuning.job", "model": model, "created_at": int(time.time()),
            "finished_at": None, "fine_tuned_model": None, "organization_id": ORGANIZATION, "result_files": [],
            "status": "validating_files", "validation_file": body.get("validation_file"),
            "training_file": training.info["id"], "hyperparameters": hyperparameters, "trained_tokens": None,
            "error": None, "user_provided_suffix": suffix, "seed": body.get("seed", 42), "estimated_finish": None,
            "integrations": body.get("integrations") or [], "metadata": body.get("metadata"), "method": method,
        }
        job = FineTuneJob(info, self.script.next_fine_tune_outcome(), _training_tokens(training.content))
        self.script.fine_tune_jobs[info["id"]] = job
        _log(job, f"Created fine-tuning job: {info['id']}")
        _log(job, f"Validating training file: {info['training_file']}")
        return info

    def job_list(self, request: _Request) -> dict[str, Any]:
        jobs = list(self.script.fine_tune_jobs.values())
        for job in jobs:
            self._advance(job)
        newest_first = [job.info for job in reversed(jobs)]
        return _page(newest_first, request.query.get("after"), _limit(request.query, 20))

    def job_retrieve(self, request: _Request, job_id: str) -> dict[str, Any]:
        return self._job(job_id, poll=True).info

    def job_events(self, request: _Request, job_id: str) -> dict[str, Any]:
        job = self._job(job_id)
        return _page(job.events[::-1], request.query.get("after"), _limit(request.query, 20))

    def job_cancel(self, request: _Request, job_id: str) -> dict[str, Any]:
        job = self._job(job_id)
        if job.status in _ENDED:
            raise ApiError(400, f"Job has already completed: {job_id}")
        job.info["status"] = "cancelled"
        _log(job, "Fine-tuning job cancelled")
        return job.info

    def fine_tuned_models(self) -> list[str]:
        return [job.info["fine_tuned_model"] for job in self.script.fine_tune_jobs.values()
                if job.info["fine_tuned_model"]]

    def _fine_tune_file(self, file_id: str, param: str) -> StoredFile:
        stored = self.script.files.get(file_id)
        if stored is None or stored.info["purpose"] != "fine-tune":
            raise ApiError(400, f"invalid {param}: {file_id}", param=param)
        return stored

    def _job(self, job_id: str, poll: bool = False) -> FineTuneJob:
        job = self.script.fine_tune_jobs.get(job_id)
        if job is None:
            raise ApiError(404, f"No fine-tuning job found with id {job_id}", param="fine_tuning_job_id",
                           code="fine_tuning_job_not_found")
        if poll:
            job.polls += 1
        self._advance(job)
        return job

    def _advance(self, job: FineTuneJob) -> None:
        """Bring the job up to date: enter every step its progress has reached, then end it when due."""
        if job.status in _ENDED:
            return
        progress = job.outcome.progress(job.polls, time.monotonic() - job.started)
        due = progress >= 1 and job.outcome.kind != "slow"
        ending = job.release or (job.outcome.kind if due else None)
        reached = len(_STEPS) - 1 if ending or progress >= 1 else int(progress * len(_STEPS))
        for step in _STEPS[_STEPS.index(job.status) + 1:reached + 1]:
            _enter(job, step)
        if ending == "succeed":
            self._succeed(job)
        elif ending == "fail":
            _fail(job)

    def _succeed(self, job: FineTuneJob) -> None:
        info, hyperparameters = job.info, job.info["hyperparameters"]
        epochs = hyperparameters["n_epochs"]
        for step in range(1, epochs + 1):
            loss = round(1.5 / step, 4)
            _log(job, f"Step {step}/{epochs}: training loss={loss:.4f}", kind="metrics",
                 data={"step": step, "train_loss": loss, "total_steps": epochs})
        metrics = "step,train_loss\n" + "".join(f"{s},{1.5 / s:.4f}\n" for s in range(1, epochs + 1))
        results = self._store("step_metrics.csv", metrics.encode(), "fine-tune-results")
        short_id = info["id"].removeprefix("ftjob-")[:8]
        info.update(status="succeeded", finished_at=int(time.time()), result_files=[results.info["id"]],
                    trained_tokens=job.training_tokens * epochs,
                    fine_tuned_model=f"ft:{info['model']}:{info['user_provided_suffix'] or 'spotter'}:{short_id}")
        _log(job, f"New fine-tuned model created: {info['fine_tuned_model']}")
        _log(job, "The job has successfully completed")


def _job_hyperparameters(body: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The job's hyperparameters and method: `method.<type>.hyperparameters` or the deprecated top-level
    `hyperparameters`, "auto" where not given. Both places hold the same dict, as both report the same
    values once "auto" is resolved."""
    method = copy.deepcopy(body.get("method") or {"type": "supervised"})
    section = method.get(method.get("type", "supervised")) or {}
    given = section.get("hyperparameters") or body.get("hyperparameters") or {}
    hyperparameters = {"batch_size": "auto", "learning_rate_multiplier": "auto", "n_epochs": "auto", **given}
    section["hyperparameters"] = hyperparameters
    method[method.get("type", "supervised")] = section
    return hyperparameters, method


def _log(job: FineTuneJob, message: str, level: str = "info", kind: str = "message",
         data: dict[str, Any] | None = None) -> None:
    job.events.append({"id": _new_id("ftevent-"), "object": "fine_tuning.job.event", "created_at": int(time.time()),
                       "level": level, "message": message, "data": data or {}, "type": kind})


def _enter(job: FineTuneJob, step: str) -> None:
    job.info["status"] = step
    if step == "running":
        hyperparameters = job.info["hyperparameters"]
        for name, value in _AUTO_HYPERPARAMETERS.items():
            if hyperparameters.get(name, "auto") == "auto":
                hyperparameters[name] = value
    _log(job, _STEP_MESSAGES[step])


def _fail(job: FineTuneJob) -> None:
    outcome = job.outcome
    error = {"code": outcome.error_code, "message": outcome.error_message, "param": outcome.error_param}
    job.info.update(status="failed", finished_at=int(time.time()), error=error)
    _log(job, f"The job failed: {outcome.error_message}", level="error")


# --- the ASGI app -----------------------------------------------------------------------------------


@dataclass
class _Request:
    method: str
    path: str
    headers: dict[str, str]
    query: dict[str, str]
    body: bytes
    client: tuple[str, int]

    def json(self) -> dict[str, Any]:
        try:
            return json.loads(self.body) if self.body else {}
        except json.JSONDecodeError:
            raise ApiError(400, "We could not parse the JSON body of your request.") from None

    def form(self) -> dict[str, tuple[str | None, bytes]]:
        """multipart/form-data fields as name -> (filename, content); the stdlib's MIME parser reads them."""
        content_type = self.headers.get("content-type", "")
        if not content_type.startswith("multipart/form-data"):
            raise ApiError(400, "Expected a multipart/form-data body.")
        message = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + content_type.encode() + b"\r\n\r\n"
                                                      + self.body)
        fields: dict[str, tuple[str | None, bytes]] = {}
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            fields[str(name)] = (part.get_filename(), part.get_payload(decode=True) or b"")
        return fields


class _App:
    def __init__(self, script: Script) -> None:
        self.script = script
        self.fine_tuning = ft = _FineTuning(script)
        # A handler that is a coroutine sends its own reply (streaming); the others return the reply body:
        # a dict sent as JSON, or bytes sent as a file. Path groups are passed as keyword arguments.
        self.routes = [
            ("GET", "/v1/models", self._models),
            ("POST", "/v1/chat/completions", self._chat),
            ("POST", "/v1/embeddings", self._embeddings),
            ("POST", "/v1/moderations", self._moderations),
            ("POST", "/v1/files", ft.file_create),
            ("GET", "/v1/files", ft.file_list),
            ("GET", "/v1/files/(?P<file_id>[^/]+)", ft.file_retrieve),
            ("GET", "/v1/files/(?P<file_id>[^/]+)/content", ft.file_content),
            ("DELETE", "/v1/files/(?P<file_id>[^/]+)", ft.file_delete),
            ("POST", "/v1/fine_tuning/jobs", ft.job_create),
            ("GET", "/v1/fine_tuning/jobs", ft.job_list),
            ("GET", "/v1/fine_tuning/jobs/(?P<job_id>[^/]+)", ft.job_retrieve),
            ("GET", "/v1/fine_tuning/jobs/(?P<job_id>[^/]+)/events", ft.job_events),
            ("POST", "/v1/fine_tuning/jobs/(?P<job_id>[^/]+)/cancel", ft.job_cancel),
            ("POST", "/_control", self._control),
        ]

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        request = await self._request(scope, receive)
        try:
            handler, params = self._route(request)
            if inspect.iscoroutinefunction(handler):
                await handler(send, request, **params)
                return
            reply = handler(request, **params)
        except ApiError as error:
            await self._json(send, error.status, error.body)
            return
        if isinstance(reply, bytes):
            await self._send(send, 200, b"application/octet-stream", reply)
        else:
            await self._json(send, 200, reply)

    async def _request(self, scope, receive) -> _Request:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode() for k, v in scope.get("headers", [])}
        return _Request(method=scope["method"], path=scope["path"], headers=headers,
                        query=dict(parse_qsl(scope.get("query_string", b"").decode())), body=body,
                        client=tuple(scope.get("client") or ("", 0)))

    def _route(self, request: _Request):
        for method, pattern, handler in self.routes:
            match = re.fullmatch(pattern, request.path)
            if match and method == request.method:
                return handler, match.groupdict()
        raise ApiError(404, f"Unknown request URL: {request.method} {request.path}.", code="unknown_url")

    def _models(self, request: _Request) -> dict[str, Any]:
        models = [{"id": "fake-model", "object": "model", "created": 0, "owned_by": "spotter-tests"}]
        models += [{"id": name, "object": "model", "created": 0, "owned_by": ORGANIZATION}
                   for name in self.fine_tuning.fine_tuned_models()]
        return {"object": "list", "data": models}

    def _control(self, request: _Request) -> dict[str, Any]:
        for key, value in request.json().items():
            if key == "finish_fine_tune":
                self.script.finish_fine_tune(**value)
                continue
            current = getattr(self.script, key)
            if key == "fine_tune_default":
                value = FineTuneOutcome.of(value)
            setattr(self.script, key, deque(value) if isinstance(current, deque) else value)
        return {"ok": True}

    async def _json(self, send, status: int, data: dict[str, Any]) -> None:
        await self._send(send, status, b"application/json", json.dumps(data).encode())

    async def _send(self, send, status: int, content_type: bytes, raw: bytes) -> None:
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", content_type), (b"content-length", str(len(raw)).encode())]})
        await send({"type": "http.response.body", "body": raw})

    async def _chat(self, send, request: _Request) -> None:
        self.script.clients.append(request.client)
        payload = request.json()
        self.script.requests.append(payload)
        self.script.arrivals.append("chat")
        model = payload.get("model", "fake-model")
        fault = self.script.next_fault(model)
        if fault == "429":
            await self._json(send, 429, {"error": {"message": "rate limited", "type": "rate_limit_error"}})
            return
        if fault == "500":
            await self._json(send, 500, {"error": {"message": "server exploded", "type": "server_error"}})
            return
        if fault == "timeout":
            await asyncio.sleep(3600)
            return
        answer = self.script.next_answer(model)
        prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in payload.get("messages", []))
        if not payload.get("stream"):
            await asyncio.sleep(self.script.ttft)
            await self._json(send, 200, self._completion(model, answer, prompt_tokens))
            return
        await self._stream(send, {**payload, "_fault": fault}, model, answer, prompt_tokens, cut=fault == "cut")

    def _completion(self, model: str, answer: str, prompt_tokens: int) -> dict[str, Any]:
        return {
            "id": "chatcmpl-fake", "object": "chat.completion", "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": answer}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": len(_tokens(answer)),
                      "total_tokens": prompt_tokens + len(_tokens(answer))},
        }

    async def _stream(self, send, payload, model: str, answer: str, prompt_tokens: int, cut: bool) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]})

        unsent: list[bytes] = []

        async def event(delta: dict[str, Any], finish: str | None = None, usage: dict | None = None,
                        hold: bool = False) -> None:
            chunk = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": int(time.time()),
                     "model": model,
                     "choices": [] if usage else [{"index": 0, "delta": delta, "finish_reason": finish}]}
            if usage:
                chunk["usage"] = usage
            unsent.append(f"data: {json.dumps(chunk)}\n\n".encode())
            if not hold:
                await send({"type": "http.response.body", "body": b"".join(unsent), "more_body": True})
                unsent.clear()

        await asyncio.sleep(self.script.ttft)
        if payload.get("_fault") == "error_event":
            body = json.dumps({"error": {"message": "model overloaded", "type": "server_error"}})
            await send({"type": "http.response.body", "body": f"data: {body}\n\n".encode(), "more_body": False})
            return
        await event({"role": "assistant", "content": ""})
        tokens = _tokens(answer)
        for i, token in enumerate(tokens):
            if cut and i == max(1, len(tokens) // 2):
                raise ConnectionAbortedError("fault injected: stream cut")  # uvicorn drops the connection
            if i and self.script.tokens_per_s:
                await asyncio.sleep(1 / self.script.tokens_per_s)
            last_of_write = (i + 1) % self.script.tokens_per_write == 0 or i == len(tokens) - 1
            await event({"content": token}, hold=not last_of_write)
        await event({}, finish="stop")
        if (payload.get("stream_options") or {}).get("include_usage"):
            await event({}, usage={"prompt_tokens": prompt_tokens, "completion_tokens": len(tokens),
                                   "total_tokens": prompt_tokens + len(tokens)})
        await send({"type": "http.response.body", "body": b"data: [DONE]\n\n", "more_body": False})

    async def _embeddings(self, send, request: _Request) -> None:
        payload = request.json()
        inputs = payload.get("input", [])
        inputs = [inputs] if isinstance(inputs, str) else inputs
        dimensions = int(payload.get("dimensions") or 384)
        data = [{"object": "embedding", "index": i, "embedding": _fake_embedding(str(t), dimensions)}
                for i, t in enumerate(inputs)]
        await self._json(send, 200, {"object": "list", "data": data, "model": payload.get("model", ""),
                                     "usage": {"prompt_tokens": 0, "total_tokens": 0}})


    async def _moderations(self, send, request: _Request) -> None:
        payload = request.json()
        self.script.moderation_requests.append(payload)
        self.script.arrivals.append("moderation")
        fault = self.script.moderation_faults.popleft() if self.script.moderation_faults else None
        if fault == "timeout":
            await asyncio.sleep(3600)
        if fault == "500":
            await self._json(send, 500, {"error": {"message": "server exploded", "type": "server_error"}})
            return
        inputs = _required(payload, "input")
        inputs = [inputs] if isinstance(inputs, str) else inputs
        results = [self._moderation_result(str(text)) for text in inputs]
        await self._json(send, 200, {"id": _new_id("modr-"), "model": payload.get("model", "omni-moderation-latest"),
                                     "results": results})

    def _moderation_result(self, text: str) -> dict[str, Any]:
        """One result in OpenAI's shape: every category with a boolean, a score and its input types."""
        hits = {c for word, cats in self.script.flag_words.items() if word.lower() in text.lower() for c in cats}
        return {
            "flagged": bool(hits),
            "categories": {c: c in hits for c in MODERATION_CATEGORIES},
            "category_scores": {c: 0.97 if c in hits else 0.0004 for c in MODERATION_CATEGORIES},
            "category_applied_input_types": {c: ["text"] for c in MODERATION_CATEGORIES},
        }


class LLMServer:
    """Runs the fake server on a free loopback port in a background thread."""

    def __init__(self, script: Script | None = None, port: int = 0) -> None:
        self.script = script or Script()
        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", port))
        self.port = self._socket.getsockname()[1]
        config = uvicorn.Config(_App(self.script), log_level="warning", lifespan="off", timeout_graceful_shutdown=1)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> LLMServer:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("fake LLM server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--ttft-ms", type=float, default=0)
    parser.add_argument("--tokens-per-s", type=float, default=0)
    parser.add_argument("--answer", default=DEFAULT_ANSWER)
    args = parser.parse_args()
    script = Script(default_answer=args.answer, ttft=args.ttft_ms / 1000, tokens_per_s=args.tokens_per_s)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", args.port))
    uvicorn.Server(uvicorn.Config(_App(script), log_level="warning", lifespan="off")).run(sockets=[sock])


if __name__ == "__main__":
    main()
