"""The local OpenAI-compatible server's files and fine-tuning API, driven through the real `openai`
client so that what the fine-tuning loop will see is OpenAI's wire format."""

from __future__ import annotations

import json
import time
import urllib.request

import openai
import pytest

from tests.llm_server import FineTuneOutcome, LLMServer


def _jsonl(*examples: object) -> bytes:
    return "".join(json.dumps(example) + "\n" for example in examples).encode()


def _example(question: str = "How deep should I squat?", answer: str = "Thighs parallel [1].") -> dict:
    return {"messages": [{"role": "system", "content": "You are Spotter."},
                         {"role": "user", "content": question},
                         {"role": "assistant", "content": answer}]}


TRAINING = _jsonl(_example(), _example("Sets for a beginner?", "Three sets of eight [1]."))


@pytest.fixture
def client(llm_server: LLMServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=llm_server.base_url, api_key="x", max_retries=0)


def _upload(client: openai.OpenAI, content: bytes = TRAINING, name: str = "train.jsonl",
            purpose: str = "fine-tune"):
    return client.files.create(file=(name, content), purpose=purpose)


def _start(client: openai.OpenAI, **options):
    return client.fine_tuning.jobs.create(model="fake-model", training_file=_upload(client).id, **options)


def _poll(client: openai.OpenAI, job_id: str, times: int) -> list[str]:
    return [client.fine_tuning.jobs.retrieve(job_id).status for _ in range(times)]


def test_a_training_file_is_uploaded_listed_read_and_deleted(client):
    uploaded = _upload(client)
    other = _upload(client, b"not jsonl at all", name="notes.txt", purpose="user_data")

    assert (uploaded.object, uploaded.purpose, uploaded.status) == ("file", "fine-tune", "processed")
    assert uploaded.id.startswith("file-") and uploaded.filename == "train.jsonl"
    assert uploaded.bytes == len(TRAINING) and uploaded.created_at <= time.time()
    assert client.files.retrieve(uploaded.id) == uploaded
    assert [f.id for f in client.files.list()] == [other.id, uploaded.id]  # newest first
    assert [f.id for f in client.files.list(purpose="fine-tune")] == [uploaded.id]
    assert [f.id for f in client.files.list(order="asc", limit=1)] == [uploaded.id, other.id]  # page by page
    assert client.files.content(uploaded.id).content == TRAINING

    deleted = client.files.delete(uploaded.id)
    assert (deleted.id, deleted.deleted) == (uploaded.id, True)
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(uploaded.id)
    assert [f.id for f in client.files.list()] == [other.id]


@pytest.mark.parametrize(("name", "content", "complaint"), [
    ("train.csv", TRAINING, "Must be .jsonl"),
    ("train.jsonl", b"", "empty"),
    ("train.jsonl", TRAINING + b"{not json\n", "Line 3: not valid JSON"),
    ("train.jsonl", _jsonl({"prompt": "a", "completion": "b"}), 'only the key "messages"'),
    ("train.jsonl", _jsonl({**_example(), "extra": 1}), 'only the key "messages"'),
    ("train.jsonl", _jsonl({"messages": []}), "non-empty list"),
    ("train.jsonl", _jsonl({"messages": [{"role": "robot", "content": "hi"}]}), "message 1: unrecognized role"),
    ("train.jsonl", _jsonl({"messages": [{"role": "user", "content": None}]}), '"content" must be a string'),
    ("train.jsonl", _jsonl(_example(), {"messages": [{"role": "user", "content": "hi"}]}),
     "Line 2: no assistant message"),
])
def test_a_file_that_is_not_chat_fine_tuning_jsonl_is_refused_with_openais_error_body(client, name, content,
                                                                                      complaint):
    with pytest.raises(openai.BadRequestError) as refused:
        _upload(client, content, name=name)

    assert refused.value.status_code == 400
    assert refused.value.body["type"] == "invalid_request_error"
    assert (refused.value.param, refused.value.code) == ("file", "invalid_file_format")
    assert complaint in refused.value.body["message"]
    assert list(client.files.list()) == []


def test_a_job_walks_to_success_one_step_per_poll_and_its_model_answers_chats(llm_server, client):
    job = _start(client, suffix="squats", seed=7)
    assert (job.object, job.status, job.model, job.seed) == ("fine_tuning.job", "validating_files", "fake-model", 7)
    assert job.id.startswith("ftjob-") and job.fine_tuned_model is None and job.finished_at is None
    assert job.hyperparameters.n_epochs == "auto"  # as OpenAI reports it until the job runs

    assert _poll(client, job.id, 3) == ["queued", "running", "succeeded"]

    done = client.fine_tuning.jobs.retrieve(job.id)
    assert done.fine_tuned_model == f"ft:fake-model:squats:{job.id.removeprefix('ftjob-')[:8]}"
    assert done.finished_at and done.trained_tokens and done.error is None
    assert done.hyperparameters.n_epochs == 3 and done.method.supervised.hyperparameters.n_epochs == 3
    assert client.files.content(done.result_files[0]).content.startswith(b"step,train_loss")
    messages = [event.message for event in client.fine_tuning.jobs.list_events(job.id)]
    assert messages[0] == "The job has successfully completed" and messages[-1].startswith("Created fine-tuning job")
    assert done.fine_tuned_model in [model.id for model in client.models.list()]

    # An evaluation compares the two models: each can be given its own answer.
    llm_server.script.model_answers[done.fine_tuned_model] = "Sit back until your thighs are parallel [1]."
    ask = [{"role": "user", "content": "How deep should I squat?"}]
    tuned = client.chat.completions.create(model=done.fine_tuned_model, messages=ask)
    base = client.chat.completions.create(model="fake-model", messages=ask)
    assert tuned.choices[0].message.content == "Sit back until your thighs are parallel [1]."
    assert base.choices[0].message.content == llm_server.script.default_answer


def test_a_job_scripted_to_fail_ends_with_openais_error_object(llm_server, client):
    llm_server.script.fine_tune_outcomes.extend([
        "fail", FineTuneOutcome("fail", polls=1, error_code="invalid_training_file", error_message="Bad rows.")])
    default_failure, custom_failure = _start(client), _start(client)

    assert _poll(client, default_failure.id, 3) == ["queued", "running", "failed"]
    assert _poll(client, custom_failure.id, 1) == ["failed"]

    failed = client.fine_tuning.jobs.retrieve(default_failure.id)
    assert failed.error.code == "invalid_n_examples" and failed.error.param == "training_file"
    assert failed.fine_tuned_model is None and failed.finished_at
    custom = client.fine_tuning.jobs.retrieve(custom_failure.id).error
    assert (custom.code, custom.message) == ("invalid_training_file", "Bad rows.")
    assert next(iter(client.fine_tuning.jobs.list_events(custom_failure.id))).level == "error"


def test_a_slow_job_keeps_running_until_the_script_lets_it_finish(llm_server, client):
    llm_server.script.fine_tune_outcomes.append("slow")
    job = _start(client)

    assert _poll(client, job.id, 10)[-8:] == ["running"] * 8

    llm_server.script.finish_fine_tune(job.id)
    assert client.fine_tuning.jobs.retrieve(job.id).status == "succeeded"


def test_a_job_can_move_on_elapsed_time_instead_of_polls(llm_server, client):
    llm_server.script.fine_tune_outcomes.append(FineTuneOutcome(seconds=0.3))
    job = _start(client)

    assert client.fine_tuning.jobs.retrieve(job.id).status in ("validating_files", "queued")
    time.sleep(0.35)
    assert client.fine_tuning.jobs.retrieve(job.id).status == "succeeded"


def test_a_running_job_is_cancelled_once(llm_server, client):
    llm_server.script.fine_tune_outcomes.append("slow")
    job = _start(client)
    _poll(client, job.id, 3)

    cancelled = client.fine_tuning.jobs.cancel(job.id)

    assert cancelled.status == "cancelled" and cancelled.fine_tuned_model is None
    with pytest.raises(openai.BadRequestError, match="already completed"):
        client.fine_tuning.jobs.cancel(job.id)
    llm_server.script.finish_fine_tune(job.id)  # too late: a cancelled job stays cancelled
    assert client.fine_tuning.jobs.retrieve(job.id).status == "cancelled"


def test_jobs_and_their_events_are_listed_newest_first_page_by_page(client):
    jobs = [_start(client, suffix=f"run{i}") for i in range(3)]
    newest_first = [job.id for job in reversed(jobs)]

    first_page = client.fine_tuning.jobs.list(limit=2)
    assert [job.id for job in first_page.data] == newest_first[:2] and first_page.has_more
    assert [job.id for job in client.fine_tuning.jobs.list(after=newest_first[0])] == newest_first[1:]
    assert [job.id for job in client.fine_tuning.jobs.list(limit=1)] == newest_first  # the SDK follows the pages

    _poll(client, jobs[0].id, 3)
    events = list(client.fine_tuning.jobs.list_events(jobs[0].id, limit=2))  # page by page, all of them
    assert [e.object for e in events] == ["fine_tuning.job.event"] * len(events)
    assert events[0].message == "The job has successfully completed"
    assert any(e.type == "metrics" and e.data["step"] == 1 for e in events)
    assert len({e.id for e in events}) == len(events) == len(client.fine_tuning.jobs.list_events(jobs[0].id).data)


def test_hyperparameters_given_by_method_are_kept_and_autos_resolved(client):
    job = _start(client, method={"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 2}}},
                 validation_file=_upload(client).id)
    _poll(client, job.id, 3)

    done = client.fine_tuning.jobs.retrieve(job.id)
    assert done.method.type == "supervised" and done.validation_file == job.validation_file
    assert (done.hyperparameters.n_epochs, done.hyperparameters.batch_size) == (2, 1)
    assert done.fine_tuned_model.startswith("ft:fake-model:spotter:")
    assert sum(e.type == "metrics" for e in client.fine_tuning.jobs.list_events(job.id)) == 2


def test_a_job_refuses_files_it_cannot_train_on_and_unknown_jobs_are_not_found(client):
    notes = _upload(client, b"free text", name="notes.txt", purpose="user_data")

    with pytest.raises(openai.BadRequestError) as unknown:
        client.fine_tuning.jobs.create(model="fake-model", training_file="file-missing")
    assert unknown.value.param == "training_file"
    with pytest.raises(openai.BadRequestError) as wrong_purpose:
        client.fine_tuning.jobs.create(model="fake-model", training_file=_upload(client).id,
                                       validation_file=notes.id)
    assert wrong_purpose.value.param == "validation_file"
    with pytest.raises(openai.NotFoundError):
        client.fine_tuning.jobs.retrieve("ftjob-missing")
    assert list(client.fine_tuning.jobs.list()) == []


def test_an_out_of_process_server_is_steered_over_http(llm_server, client):
    def control(fields: dict) -> None:
        url = llm_server.base_url.removesuffix("/v1") + "/_control"
        request = urllib.request.Request(url, json.dumps(fields).encode(), {"Content-Type": "application/json"})
        urllib.request.urlopen(request, timeout=5).close()

    control({"fine_tune_outcomes": ["slow", {"kind": "fail", "polls": 1}]})
    slow, failing = _start(client), _start(client)
    _poll(client, slow.id, 5)
    control({"finish_fine_tune": {"job_id": slow.id, "outcome": "fail"}})

    assert _poll(client, slow.id, 1) == ["failed"]
    assert _poll(client, failing.id, 1) == ["failed"]
