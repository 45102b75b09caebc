"""The queue ranks by what a decision teaches: dense clusters of unresolved questions first, one item per
cluster (what an approval or a higher item covers no longer counts), near-duplicates grouped under one
item whose decision covers them. On real embeddings (the packaged MiniLM model)."""

from __future__ import annotations

import pytest

from chat.management.commands.demo_setup import Command as DemoSetup
from chat.reuse.scope import Scope
from chat.reuse.selectors import ReuseQuery, reuse_find
from knowledge.embeddings import embed_query
from knowledge.services import embedding_space_ensure
from review.evaluation import evaluation_set_for_approved
from review.learning import learning_values_recompute
from review.models import ApprovedAnswer, ReviewDecision, ReviewItem
from review.selectors import review_queue
from review.services import (
    ReviewConflict,
    approved_answer_save,
    review_item_approve,
    review_item_claim,
    review_item_enqueue,
    review_item_reject,
    review_item_ungroup,
)
from tests.factories import AnswerFactory, ApprovedAnswerFactory, ReviewItemFactory, TrainerFactory

pytestmark = pytest.mark.django_db

Status = ReviewItem.Status
SQUAT_PARAPHRASES = [
    "How do I do a barbell squat?", "How do I do a barbell squat correctly?", "how to do a barbell squat",
    "Squat technique with a barbell, any tips?", "barbell squat form tips",
]
SQUAT_TOPIC = ["How do I do a barbell squat?", "What muscles does a squat work?", "How do I do a goblet squat?",
               "How do I do a deadlift?"]
LONE = "How long should I rest between sets?"


@pytest.fixture(autouse=True)
def _space():
    embedding_space_ensure()


def queued(question: str, *, confidence: float = 0.4, reasons=("low_confidence",)) -> ReviewItem:
    """An answer to `question`, in a conversation of its own, queued for review."""
    answer = AnswerFactory.create(reply_to__text=question, confidence=confidence)
    return ReviewItemFactory.create(message=answer, priority=1 - confidence, reasons=list(reasons))


def conflict(action, **kwargs) -> str:
    with pytest.raises(ReviewConflict) as refused:
        action(**kwargs)
    return refused.value.code


def fresh(item: ReviewItem) -> ReviewItem:
    return ReviewItem.objects.get(pk=item.pk)


def queue_questions() -> list[str]:
    return [item.message.reply_to.text for item in review_queue(user=None).select_related("message__reply_to")]


# --- density and diversity ----------------------------------------------------------------------------------


def test_a_cluster_of_related_questions_outranks_a_lone_more_uncertain_one_but_only_once():
    cluster = [queued(q, confidence=0.5) for q in SQUAT_TOPIC]
    lone = queued(LONE, confidence=0.1)

    learning_values_recompute()

    order = queue_questions()
    assert order[0] in SQUAT_TOPIC and order[1] == LONE  # one of the cluster, then the lone question
    top = fresh(next(i for i in cluster if i.message.reply_to.text == order[0]))
    assert top.density == 3 and top.value_terms["density"] == pytest.approx(2.0)
    others = [fresh(i) for i in cluster if i.pk != top.pk]
    # what the top item covers no longer counts for its neighbours: they fall below the lone question
    assert all(o.density == 0 and o.learning_value < fresh(lone).learning_value for o in others)
    total = top.value_terms
    assert top.learning_value == pytest.approx(total["uncertainty"] + total["signals"] + total["density"])


def test_questions_an_approved_answer_already_covers_add_no_density():
    approved_answer_save(answer=ApprovedAnswerFactory.build(question="How do I squat with a barbell?"))
    cluster = [queued(q, confidence=0.5) for q in SQUAT_TOPIC]
    queued(LONE, confidence=0.1)

    learning_values_recompute()

    assert queue_questions()[0] == LONE
    assert max(fresh(i).density for i in cluster) < 3


# --- grouping -------------------------------------------------------------------------------------------------


def test_near_duplicate_questions_are_grouped_under_one_item_that_represents_them():
    items = [queued(q) for q in SQUAT_PARAPHRASES]
    lone = queued(LONE)

    learning_values_recompute()

    assert sorted(queue_questions()) == sorted([LONE, next(q for q in queue_questions() if q != LONE)])
    leader = ReviewItem.objects.get(status=Status.PENDING, represents=len(SQUAT_PARAPHRASES))
    members = ReviewItem.objects.filter(status=Status.GROUPED)
    assert set(members.values_list("representative", flat=True)) == {leader.pk}
    assert {leader.pk, *members.values_list("pk", flat=True)} == {i.pk for i in items}
    assert fresh(lone).represents == 1
    # asked again in other conversations: the group's leader says so
    assert ReviewItem.Reason.REPEATED_QUESTION in leader.reasons


def test_approving_a_grouped_item_covers_every_question_it_represents():
    [queued(q) for q in SQUAT_PARAPHRASES]
    learning_values_recompute()
    leader = ReviewItem.objects.get(status=Status.PENDING)
    trainer = TrainerFactory.create()

    review_item_claim(item=leader, user=trainer)
    review_item_approve(item=leader, reviewer=trainer, text="Brace, sit back, knees out.")

    assert set(ReviewItem.objects.values_list("status", flat=True)) == {Status.EDITED}
    covered = ReviewDecision.objects.filter(action=ReviewDecision.Action.COVER)
    assert covered.count() == len(SQUAT_PARAPHRASES) - 1 and {d.user for d in covered} == {trainer}
    served = ApprovedAnswer.objects.filter(is_active=True)
    assert set(served.values_list("question", flat=True)) == set(SQUAT_PARAPHRASES)
    assert set(served.values_list("answer", flat=True)) == {"Brace, sit back, knees out."}
    assert set(served.values_list("source_message", flat=True)) == {leader.message_id}  # what the export reads
    assert not review_queue(user=None).exists()
    # one evaluation case for the group: its paraphrases would count the same answer several times
    case = evaluation_set_for_approved().cases.get()
    assert (case.question, case.reference) == (leader.message.reply_to.text, "Brace, sit back, knees out.")


def test_rejecting_a_grouped_item_returns_the_questions_it_represented_to_the_queue():
    [queued(q) for q in SQUAT_PARAPHRASES]
    learning_values_recompute()
    leader = ReviewItem.objects.get(status=Status.PENDING)

    review_item_reject(item=leader, reviewer=TrainerFactory.create(), reason="wrong")

    assert ReviewItem.objects.filter(status=Status.PENDING, representative=None).count() == len(SQUAT_PARAPHRASES) - 1
    learning_values_recompute()  # grouped anew under one of them
    assert ReviewItem.objects.filter(status=Status.PENDING).count() == 1


def test_a_trainer_takes_a_question_out_of_a_group_and_it_is_not_grouped_there_again():
    [queued(q) for q in SQUAT_PARAPHRASES]
    learning_values_recompute()
    leader = ReviewItem.objects.get(status=Status.PENDING)
    member = ReviewItem.objects.filter(status=Status.GROUPED).first()
    trainer = TrainerFactory.create()
    assert conflict(review_item_ungroup, item=leader, member_id=member.pk, reviewer=trainer) == "not_claimed"
    review_item_claim(item=leader, user=trainer)

    after = review_item_ungroup(item=leader, member_id=member.pk, reviewer=trainer)

    assert after.represents == len(SQUAT_PARAPHRASES) - 1
    assert (fresh(member).status, fresh(member).representative) == (Status.PENDING, None)
    assert member.decisions.get().action == ReviewDecision.Action.UNGROUP
    assert conflict(review_item_ungroup, item=leader, member_id=member.pk, reviewer=trainer) == "not_in_group"
    learning_values_recompute()
    assert fresh(member).representative is None and fresh(member).status == Status.PENDING
    review_item_approve(item=leader, reviewer=trainer)
    assert fresh(member).status == Status.PENDING  # not covered by the decision it was taken out of
    assert not ApprovedAnswer.objects.filter(question=member.message.reply_to.text).exists()


def test_a_grouped_question_is_decided_through_its_group_and_its_complaint_raises_the_group(
    django_capture_on_commit_callbacks,
):
    [queued(q) for q in SQUAT_PARAPHRASES]
    learning_values_recompute()
    leader = ReviewItem.objects.get(status=Status.PENDING)
    member = ReviewItem.objects.filter(status=Status.GROUPED).first()
    before = leader.learning_value

    assert conflict(review_item_claim, item=member, user=TrainerFactory.create()) == "grouped"
    with django_capture_on_commit_callbacks(execute=True):
        review_item_enqueue(message_id=member.message_id, reasons=["thumbs_down"], feedback_reason="wrong")

    assert fresh(member).status == Status.GROUPED
    assert ReviewItem.Reason.THUMBS_DOWN in fresh(leader).reasons and fresh(leader).learning_value > before


def test_a_claimed_item_is_never_grouped_under_another_and_decided_items_are_left_alone():
    items = [queued(q) for q in SQUAT_PARAPHRASES]
    trainer = TrainerFactory.create()
    claimed = review_item_claim(item=items[-1], user=trainer)
    review_item_reject(item=items[0], reviewer=trainer, reason="wrong")

    learning_values_recompute()

    assert fresh(claimed).status == Status.CLAIMED and fresh(claimed).representative is None
    assert fresh(claimed).represents == len(SQUAT_PARAPHRASES) - 1  # the other open paraphrases
    assert fresh(items[0]).status == Status.REJECTED and fresh(items[0]).representative is None


# --- signals only the whole queue shows --------------------------------------------------------------------


def test_a_question_just_short_of_an_approved_one_is_a_near_miss(settings):
    settings.APPROVED_MIN_SIMILARITY = 0.8  # "goblet squat" is 0.75 from "barbell squat": within the band below
    approved_answer_save(answer=ApprovedAnswerFactory.build(question="How do I do a barbell squat?"))
    near, far = queued("How do I do a goblet squat?"), queued(LONE)

    learning_values_recompute()

    assert ReviewItem.Reason.CACHE_NEAR_MISS in fresh(near).reasons
    assert ReviewItem.Reason.CACHE_NEAR_MISS not in fresh(far).reasons
    assert fresh(near).learning_value > fresh(far).learning_value


def test_the_item_page_shows_the_value_terms_and_the_questions_it_represents(client):
    [queued(q) for q in SQUAT_PARAPHRASES]
    learning_values_recompute()
    leader = ReviewItem.objects.get(status=Status.PENDING)
    DemoSetup()._groups()  # the Trainers group's real permissions
    client.force_login(TrainerFactory.create())

    page = client.get(f"/admin/review/reviewitem/{leader.pk}/review/").content.decode()
    listing = client.get("/admin/review/reviewitem/").content.decode()

    assert f"Also represents {len(SQUAT_PARAPHRASES) - 1} similar questions" in page
    others = [q for q in SQUAT_PARAPHRASES if q != leader.message.reply_to.text]
    assert all(q in page for q in others)
    assert "uncertainty" in page and "density" in page and "repeated unanswered question" in page
    assert f"represents {len(SQUAT_PARAPHRASES)} questions" in listing


# --- how far an approval reaches ------------------------------------------------------------------------------


def reused_for(question: str):
    vector = embed_query(question)
    scope = Scope(space_id=vector.space_id, dimensions=vector.dimensions, prompt_version_id=None, kb_version=0,
                  language="en")
    return reuse_find(ReuseQuery(question=question, vector=vector, scope=scope, prompt_name="", model="",
                                 system_prompt=""))


def test_an_approval_is_not_served_where_an_unreviewed_question_is_as_close():
    approved_answer_save(answer=ApprovedAnswerFactory.build(question="How do I do a barbell squat?",
                                                            answer="Brace, sit back, knees out."))
    asked = "How do I do a barbell squat correctly?"
    assert reused_for(asked).text == "Brace, sit back, knees out."

    queued("how to do a barbell squat the right way")  # nobody has verified its answer yet
    learning_values_recompute()

    assert reused_for(asked) is None


def test_a_held_answer_is_never_grouped_out_of_sight():
    [queued(q) for q in SQUAT_PARAPHRASES]
    held = queued("how to do a barbell squat?", reasons=("held",))

    learning_values_recompute()

    assert fresh(held).status == Status.PENDING and fresh(held).representative is None
    assert ReviewItem.objects.filter(status=Status.GROUPED).exists()  # its paraphrases were grouped
