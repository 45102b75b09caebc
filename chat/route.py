"""Step 3 of the pipeline: which prompt, model, language and profile a question is answered with, in
which experiment arm (sticky per visitor: experiments.assignment), and whether an LLM budget is spent."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from django.conf import settings

from experiments.assignment import LiveArm, arm_for_visitor
from experiments.selectors import PromptChoice, prompt_for_new_answer
from experiments.templating import template_render
from knowledge.embeddings import QueryVector
from knowledge.selectors import kb_version
from review.finetune import served_model

from . import memory
from .budgets import budget_spent
from .language import detect_language
from .models import Conversation
from .reuse.scope import Scope


@dataclass(frozen=True)
class Route:
    prompt: PromptChoice
    kb_version: int
    language: str
    visitor_id: str
    profile: str  # the visitor's profile as the model reads it; empty: none
    profile_hash: str
    summary: str
    summary_through: int  # the last message sequence the summary holds
    arm: LiveArm | None = None  # the experiment arm answering this visitor, if any
    budget_spent: str = ""  # which LLM budget is spent (chat/budgets.py): then the answer is composed offline

    @property
    def generation_options(self) -> Mapping[str, Any]:
        """The arm's generation settings (temperature, max_tokens…), over the configured ones; none outside one."""
        return self.arm.generation if self.arm else {}

    def scope(self, vector: QueryVector) -> Scope:
        """Where this question's answer is stored and looked up. An answer shaped by a profile is
        reused for that visitor and that profile only; one given in an experiment arm stays in that
        arm (or with control, when the arm shares reuse)."""
        personal = bool(self.profile)
        arm = self.arm
        return Scope(
            space_id=vector.space_id, dimensions=vector.dimensions,
            prompt_version_id=arm.reuse_version_id if arm else self.prompt.prompt_version_id,
            kb_version=self.kb_version, language=self.language, visitor_id=self.visitor_id if personal else "",
            profile_hash=self.profile_hash if personal else "",
            foreign_prompt_version_ids=arm.foreign_version_ids if arm else frozenset(),
        )


def route_question(
    *, conversation_id: uuid.UUID, visitor_id: str, question: str, question_id: uuid.UUID,
    opened: Conversation | None = None,
) -> Route:
    """Prompt, knowledge-base version, language, profile (with the facts this question states)
    and summary. `opened`: the conversation as this turn created it, so it is not read back."""
    profile = memory.profile_remember(visitor_id=visitor_id, text=question, message_id=question_id)
    conversation = opened or Conversation.objects.only("language", "summary", "summary_through").get(
        pk=conversation_id)
    language = _language(conversation, opened, question, profile.language if profile else "")
    if not conversation.language:
        Conversation.objects.filter(pk=conversation_id, language="").update(language=language)
    arm = arm_for_visitor(visitor_id=visitor_id, language=language)
    prompt = arm.prompt if arm is not None else prompt_for_new_answer()
    if not prompt.model:  # a version that names no model is answered by the promoted fine-tuned one, if any
        prompt = replace(prompt, model=served_model())
    prompt = rendered_prompt(prompt, language=language)
    return Route(
        prompt=prompt, kb_version=kb_version(), language=language, visitor_id=visitor_id, arm=arm,
        profile=memory.profile_text(profile), profile_hash=memory.profile_hash(profile),
        summary=conversation.summary, summary_through=conversation.summary_through,
        budget_spent=budget_spent(visitor_id),
    )


def rendered_prompt(prompt: PromptChoice, *, language: str) -> PromptChoice:
    """The prompt with its template variables (experiments.templating) filled in for this answer."""
    return replace(prompt, system_prompt=template_render(prompt.system_prompt, {"language": language}))


def _language(conversation: Conversation, opened: Conversation | None, question: str, preferred: str) -> str:
    if opened is not None and opened.language:
        return opened.language  # detected in this very question when the conversation was opened
    fallback = conversation.language or preferred or settings.CHAT_DEFAULT_LANGUAGE
    return detect_language(question, fallback)

