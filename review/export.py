"""Training data from approved answers: chat-format JSONL for OpenAI fine-tuning, split into training and
validation, and the held-out cases as an evaluation set. Reads only.

Each line is what the pipeline would have seen (the system prompt of the version that answered with the
excerpts of the chunks its answer cites, then the question) and what a trainer says it should have
answered. PII is masked in every message (chat.safety.pii); duplicates are dropped; every line is checked.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from django.db.models import F, Q
from django.utils import timezone

from chat.safety.pii import pii_mask, pii_mask_answer, pii_mask_structured
from experiments.layout import language_instruction, question_with_data
from experiments.models import PromptVersion
from experiments.selectors import DEFAULT_SYSTEM_PROMPT
from experiments.templating import template_render
from knowledge.models import Chunk

from .models import ApprovedAnswer

PARTS = ("train", "validation", "eval")
ROLES = ["system", "user", "assistant"]
Line = dict[str, Any]
_CITATION = re.compile(r"\[(\d{1,2})\]")  # as chat.generation reads citations


class InvalidExample(ValueError):
    """An approved answer that cannot become a training line; the message says why."""


@dataclass(frozen=True)
class Skipped:
    approved_answer_id: int
    reason: str


@dataclass(frozen=True)
class TrainingExport:
    train: list[Line]
    validation: list[Line]
    evaluation: list[Line]
    skipped: list[Skipped]

    def part(self, name: str) -> list[Line]:
        parts = {"train": self.train, "validation": self.validation, "eval": self.evaluation}
        return parts[name]


@dataclass(frozen=True)
class _Example:
    approved_answer_id: int
    language: str
    question: str  # scrubbed, without excerpts: the evaluation case's question
    answer: str  # scrubbed, citations renumbered to the excerpts in `line`
    line: Line


# --- PII ----------------------------------------------------------------------------------------------
# The same masking as every other place (chat.safety.pii, a leaf module that imports nothing of chat's): a
# trainer's edit and imported answers never went through the guard. Excerpts are public knowledge, so only
# structured identifiers are masked there, and an answer keeps the names it repeats from them.


def pii_scrub(*, text: str, public: str = "") -> str:
    """The text with personal data replaced by typed placeholders ([EMAIL], [PERSON], ...); what it
    repeats from `public` text is kept."""
    return pii_mask_answer(text, public=public).text if public else pii_mask(text).text


# --- the build ----------------------------------------------------------------------------------------


def training_data_build(*, validation_share: float = 0.1, seed: int = 0) -> TrainingExport:
    """Every active, unexpired approved answer (approved as given, edited, or imported) as a fine-tuning
    line, newest first; duplicates and answers that cannot make a valid line are skipped with a reason."""
    if not 0 <= validation_share < 1:
        raise ValueError("validation_share is a fraction from 0 up to (not including) 1")
    rows = _exportable_rows()
    examples, skipped = _examples(rows)
    train, validation = _split(examples, validation_share=validation_share, seed=seed)
    return TrainingExport(
        train=[e.line for e in train], validation=[e.line for e in validation],
        evaluation=[_evaluation_case(e) for e in validation], skipped=skipped,
    )


def _exportable_rows() -> list[dict[str, Any]]:
    now = timezone.now()
    # `given`: the answer as the pipeline gave it, whose citation numbers the stored chunk ids follow
    rows = (
        ApprovedAnswer.objects.filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now), is_active=True)
        .annotate(prompt_version_id=F("source_message__prompt_version_id"), given=F("source_message__text"))
        .order_by("-created_at", "-pk")
        .values("pk", "question", "answer", "chunk_ids", "language", "prompt_version_id", "given")
    )
    return [dict(row) for row in rows]


def _examples(rows: list[dict[str, Any]]) -> tuple[list[_Example], list[Skipped]]:
    prompts = dict(PromptVersion.objects.filter(pk__in={r["prompt_version_id"] for r in rows if r["prompt_version_id"]})
                   .values_list("pk", "system_prompt"))
    chunks = _excerpt_parts({chunk_id for r in rows for chunk_id in r["chunk_ids"]})
    examples: list[_Example] = []
    skipped: list[Skipped] = []
    seen: set[str] = set()
    for row in rows:  # newest first: of duplicates, the newest approval is kept
        try:
            example = _example(row, prompts, chunks)
        except InvalidExample as exc:
            skipped.append(Skipped(row["pk"], str(exc)))
            continue
        key = _normalised(example.question) + "\x00" + _normalised(example.answer)
        if key in seen:
            skipped.append(Skipped(row["pk"], "duplicate of a newer approved answer"))
            continue
        seen.add(key)
        examples.append(example)
    return examples, skipped


def _excerpt_parts(chunk_ids: set[int]) -> dict[int, tuple[str, str, str]]:
    rows = Chunk.objects.filter(pk__in=chunk_ids).values_list("pk", "document__title", "heading", "text")
    return {pk: (title, heading, text) for pk, title, heading, text in rows}


def _example(row: dict[str, Any], prompts: dict[int, str], chunks: dict[int, tuple[str, str, str]]) -> _Example:
    # Laid out as the pipeline sends it (experiments/layout.py: the language line in the system message, the
    # excerpts before the question), so that a model is trained on what it will be given; a conversation's
    # profile, summary and earlier turns are left out.
    language = row["language"] or ""
    system = template_render(_system_prompt(row["prompt_version_id"], prompts), {"language": language})
    system += language_instruction(language)
    excerpts = [pii_mask_structured(excerpt).text for excerpt in _excerpts(row["chunk_ids"], chunks)]
    answer = pii_scrub(text=_renumbered(row["answer"], given=row["given"] or row["answer"]).strip(),
                       public="\n\n".join([system, *excerpts]))
    question = pii_scrub(text=row["question"].strip())
    _citations_check(answer, len(excerpts))
    user = question_with_data(question, excerpts=excerpts)
    messages = [("system", pii_mask_structured(system).text), ("user", user), ("assistant", answer)]
    line = {"messages": [{"role": role, "content": content} for role, content in messages]}
    training_line_check(line=line)
    return _Example(row["pk"], row["language"], question, answer, line)


def _system_prompt(version_id: int | None, prompts: dict[int, str]) -> str:
    """The prompt that answered. No version means none existed yet, so the default prompt answered."""
    if version_id is None:
        return DEFAULT_SYSTEM_PROMPT
    if version_id not in prompts:
        raise InvalidExample(f"the prompt version that answered ({version_id}) no longer exists")
    return prompts[version_id]


def _excerpts(chunk_ids: list[int], chunks: dict[int, tuple[str, str, str]]) -> list[str]:
    """The cited chunks numbered as the pipeline numbers excerpts ("[n] Title › Heading\\ntext")."""
    missing = [chunk_id for chunk_id in chunk_ids if chunk_id not in chunks]
    if missing:  # re-indexing replaces chunks: the answer would cite text the line no longer holds
        raise InvalidExample(f"its cited chunks {missing} no longer exist (knowledge re-indexed)")
    excerpts = []
    for number, chunk_id in enumerate(chunk_ids, start=1):
        title, heading, text = chunks[chunk_id]
        label = f"{title} › {heading}" if heading else title
        excerpts.append(f"[{number}] {label}\n{text}")
    return excerpts


def _renumbered(answer: str, *, given: str) -> str:
    """The answer citing its excerpts by their number in the line. The pipeline stored the cited chunks in
    order of first citation in the answer as given, so the n-th distinct number there is excerpt [n]."""
    numbers = dict.fromkeys(int(n) for n in _CITATION.findall(given))
    mapping = {old: new for new, old in enumerate(numbers, start=1)}
    return _CITATION.sub(lambda m: f"[{mapping.get(int(m.group(1)), int(m.group(1)))}]", answer)


def _citations_check(answer: str, excerpt_count: int) -> None:
    dangling = sorted({n for n in map(int, _CITATION.findall(answer)) if not 1 <= n <= excerpt_count})
    if dangling:
        raise InvalidExample(f"the answer cites {dangling}, which are not among its {excerpt_count} excerpts")


def training_line_check(*, line: object) -> None:
    """Raises InvalidExample unless the line is what OpenAI's chat fine-tuning takes: exactly a system,
    a user and an assistant message, each with non-empty text, surviving a JSON round trip."""
    if not isinstance(line, dict) or set(line) != {"messages"} or not isinstance(line["messages"], list):
        raise InvalidExample("a line is an object with only `messages`, a list")
    messages = line["messages"]
    if [m.get("role") if isinstance(m, dict) else None for m in messages] != ROLES:
        raise InvalidExample(f"the roles must be {ROLES}")
    for message in messages:
        if set(message) != {"role", "content"} or not isinstance(message["content"], str):
            raise InvalidExample("a message has exactly a role and a text content")
        if not message["content"].strip():
            raise InvalidExample(f"the {message['role']} message is empty (after scrubbing)")
    if json.loads(json.dumps(line, ensure_ascii=False)) != line:
        raise InvalidExample("the line does not survive a JSON round trip")


def _normalised(text: str) -> str:
    return " ".join(re.sub(r"[\W_]+", " ", text.casefold()).split())


# --- the split ----------------------------------------------------------------------------------------


def _split(examples: list[_Example], *, validation_share: float, seed: int) -> tuple[list[_Example], list[_Example]]:
    """Held out by a seeded hash of the example's group, not by position: an example stays on its side
    whatever else is exported, so a model never trains on a case an earlier export held out for its
    evaluation. Examples sharing a question or an answer (paraphrases approved with one answer) are one
    group, so a paraphrase cannot be in training while its twin is held out."""
    groups = _groups(examples)
    train: list[_Example] = []
    validation: list[_Example] = []
    for example, group in zip(examples, groups, strict=True):
        digest = hashlib.sha256(f"{seed}\x00{group}".encode()).digest()
        held_out = int.from_bytes(digest[:8], "big") / 2**64 < validation_share
        (validation if held_out else train).append(example)
    return train, validation


def _groups(examples: list[_Example]) -> list[str]:
    """Each example's group: the smallest key of its connected set, so it does not depend on the order."""
    parent: dict[str, str] = {}

    def root(key: str) -> str:
        while parent.setdefault(key, key) != key:
            key = parent[key]
        return key

    keys = [("q:" + _normalised(e.question), "a:" + _normalised(e.answer)) for e in examples]
    for question_key, answer_key in keys:
        a, b = root(question_key), root(answer_key)
        parent[max(a, b)] = min(a, b)
    return [root(question_key) for question_key, _ in keys]


def _evaluation_case(example: _Example) -> Line:
    return {"question": example.question, "reference_answer": example.answer, "language": example.language,
            "approved_answer_id": example.approved_answer_id}


# --- output -------------------------------------------------------------------------------------------


def jsonl_lines(*, lines: Iterable[Line]) -> Iterator[str]:
    """One JSON object a line, UTF-8 text kept as it is (OpenAI reads UTF-8 JSONL)."""
    for line in lines:
        yield json.dumps(line, ensure_ascii=False) + "\n"
