"""factory_boy factories for the rows tests build by hand most often.

Rows only: nothing here embeds, calls a service or fires the pipeline. A test that needs a row
embedded (an approved answer served, a document searchable) calls the service that does it, so
the test exercises the real path.
"""

from __future__ import annotations

import hashlib

import factory
from django.contrib.auth.models import User
from factory.django import DjangoModelFactory

from chat.models import CacheEntry, Conversation, Feedback, Message
from chat.roles import OPERATORS, TRAINERS, role_group
from experiments.models import PromptVersion
from knowledge.models import Chunk, Document, Source
from review.models import ApprovedAnswer, ReviewItem


def _join_trainers(user: User, create: bool, extracted: object, **kwargs: object) -> None:
    if create:
        user.groups.add(role_group(TRAINERS))


def _join_operators(user: User, create: bool, extracted: object, **kwargs: object) -> None:
    if create:
        user.groups.add(role_group(OPERATORS))


class TrainerFactory(DjangoModelFactory[User]):
    """A staff user in the "Trainers" group, with the role's permissions (chat/roles.py)."""

    class Meta:
        model = User
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"trainer{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    is_staff = True
    password = factory.django.Password("trainer-password")
    trainers_group = factory.PostGeneration(_join_trainers)


class OperatorFactory(DjangoModelFactory[User]):
    """A staff user in the "Operators" group, with the role's permissions (chat/roles.py)."""

    class Meta:
        model = User
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"operator{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    is_staff = True
    password = factory.django.Password("operator-password")
    operators_group = factory.PostGeneration(_join_operators)


class ConversationFactory(DjangoModelFactory[Conversation]):
    class Meta:
        model = Conversation

    visitor_id = factory.Sequence(lambda n: f"visitor-{n}")
    language = "en"


class QuestionFactory(DjangoModelFactory[Message]):
    """A visitor's message."""

    class Meta:
        model = Message

    conversation = factory.SubFactory(ConversationFactory)
    # Unique across the test, so unique inside any conversation (message_sequence_unique).
    sequence = factory.Sequence(lambda n: 2 * n + 1)
    role = Message.Role.USER
    text = "How do I do a plank?"
    status = Message.Status.COMPLETE


class AnswerFactory(DjangoModelFactory[Message]):
    """The assistant's complete answer to a question in the same conversation."""

    class Meta:
        model = Message

    conversation = factory.SubFactory(ConversationFactory)
    reply_to = factory.SubFactory(QuestionFactory, conversation=factory.SelfAttribute("..conversation"))
    sequence = factory.LazyAttribute(lambda m: m.reply_to.sequence + 1 if m.reply_to else 2)
    role = Message.Role.ASSISTANT
    status = Message.Status.COMPLETE
    text = "Hold a straight line from head to heels, elbows under the shoulders [1]."
    model = "offline-extractive"
    confidence = 0.4
    sources = factory.LazyFunction(lambda: [{"n": 1, "title": "Plank"}])


class FeedbackFactory(DjangoModelFactory[Feedback]):
    class Meta:
        model = Feedback

    message = factory.SubFactory(AnswerFactory)
    value = Feedback.Value.DOWN
    reason = "wrong"


class CacheEntryFactory(DjangoModelFactory[CacheEntry]):
    """A stored answer in the cache. The embedding is a placeholder of the default size: a test that
    looks entries up by meaning stores them through the cache's own service instead."""

    class Meta:
        model = CacheEntry

    question = factory.Sequence(lambda n: f"how do I do exercise {n}")
    question_hash = factory.LazyAttribute(lambda e: hashlib.sha256(e.question.encode()).hexdigest())
    answer = "Hold a straight line."
    answer_key = factory.LazyAttribute(lambda e: hashlib.sha256(e.answer.encode()).hexdigest())
    space_id = 1
    embedding = factory.LazyFunction(lambda: [1.0] + [0.0] * 383)
    kb_version = 1
    language = "en"


class ReviewItemFactory(DjangoModelFactory[ReviewItem]):
    class Meta:
        model = ReviewItem

    message = factory.SubFactory(AnswerFactory)
    priority = 0.6
    reason = "low confidence"
    reasons = factory.LazyFunction(lambda: [ReviewItem.Reason.LOW_CONFIDENCE])
    learning_value = factory.SelfAttribute("priority")


class ApprovedAnswerFactory(DjangoModelFactory[ApprovedAnswer]):
    """Not embedded: `approved_answer_save` or `approved_answers_embed` puts it in the active space."""

    class Meta:
        model = ApprovedAnswer

    question = factory.Sequence(lambda n: f"How do I do exercise number {n}?")
    answer = "Hold a straight line from head to heels."
    language = "en"


class SourceFactory(DjangoModelFactory[Source]):
    class Meta:
        model = Source
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"source-{n}")
    status = Source.Status.READY


class DocumentFactory(DjangoModelFactory[Document]):
    """A document row without chunks: not searchable (`documents_sync` chunks and embeds)."""

    class Meta:
        model = Document

    source = factory.SubFactory(SourceFactory)
    external_id = factory.Sequence(lambda n: f"doc-{n}")
    title = factory.Sequence(lambda n: f"Document {n}")
    content = "Hold a straight line from head to heels."
    content_hash = factory.LazyAttribute(lambda d: hashlib.sha256(d.content.encode()).hexdigest())


class PromptVersionFactory(DjangoModelFactory[PromptVersion]):
    """A version with no label: deploying one is `prompt_label_move`'s job."""

    class Meta:
        model = PromptVersion

    name = "coach"
    version = factory.Sequence(lambda n: n + 1)
    system_prompt = factory.Sequence(lambda n: f"You are a strength coach (version {n}). Cite excerpts like [1].")


class ChunkFactory(DjangoModelFactory[Chunk]):
    """A chunk row without a vector or search vector: enough to be cited, not to be found."""

    class Meta:
        model = Chunk

    document = factory.SubFactory(DocumentFactory)
    ordinal = factory.Sequence(lambda n: n)
    heading = "Form"
    text = factory.Sequence(lambda n: f"Step {n}: keep the hips level with the shoulders.")
    token_count = 12
