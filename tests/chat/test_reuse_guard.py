"""The precision guard on real sentence pairs: what each check refuses and what it lets through."""

import pytest

from chat.reuse.guard import (
    GuardParams,
    Neighbour,
    decide,
    entity_mismatch,
    negation_mismatch,
    number_mismatch,
)


@pytest.mark.parametrize("a, b", [
    ("How do I gain weight?", "How do I lose weight?"),
    ("Is squatting bad for my knees?", "Is squatting not bad for my knees?"),
    ("Should I stretch before a workout?", "Should I stretch after a workout?"),
    ("Can I do this exercise with a knee injury?", "Can I do this exercise without a knee injury?"),
    ("How do I increase my bench press?", "How do I decrease my bench press?"),
])
def test_negation_and_opposite_words_are_refused(a, b):
    assert negation_mismatch(a, b) and negation_mismatch(b, a)


@pytest.mark.parametrize("a, b", [
    ("My card has not arrived yet, where is it?", "Where is my card?"),  # a paraphrase: BANKING77
    ("Why won't my card work?", "Why is my card not working?"),
    ("How do I gain weight?", "What should I eat to gain weight?"),
])
def test_paraphrases_with_negations_pass(a, b):
    assert not negation_mismatch(a, b)


@pytest.mark.parametrize("a, b, mismatch", [
    ("How long should a 5 km run take?", "How long should a 10 km run take?", True),
    ("Is 3 sets of 10 enough?", "Is three sets of ten enough?", False),
    ("My card still hasn't arrived after 2 weeks", "I still haven't received my card after two weeks", False),
    ("How many calories does a 30 minute run burn?", "How many calories does running burn?", False),
])
def test_numbers_must_agree_when_both_name_one(a, b, mismatch):
    assert number_mismatch(a, b) is mismatch


@pytest.mark.parametrize("a, b, mismatch", [
    ("Can I top up with my Visa card?", "Can I top up with my Mastercard?", True),
    ("How do I send money to Germany?", "How do I send money to France?", True),
    ("Can I change my currency from USD to EUR?", "Can you change my currency to EUR?", False),
    ("What is the delivery time to the United States?", "How long does delivery take?", False),
])
def test_names_must_agree(a, b, mismatch):
    assert entity_mismatch(a, b) is mismatch


def neighbours(*rows):
    return [Neighbour(i, q, key, sim) for i, (q, key, sim) in enumerate(rows)]


def test_agreeing_neighbours_are_served_and_a_close_different_answer_is_not():
    params = GuardParams(min_similarity=0.85, min_gap=0.05, min_support=3, near_duplicate=0.97)
    agreeing = neighbours(("where is my card", "arrival", 0.91), ("card not here", "arrival", 0.90),
                          ("card still coming?", "arrival", 0.89), ("card fee", "fees", 0.70))
    assert decide("has my card been sent", agreeing, params).accepted

    contested = neighbours(("where is my card", "arrival", 0.91), ("when will my card come", "estimate", 0.89),
                           ("card not here", "arrival", 0.88))
    refused = decide("has my card been sent", contested, params)
    assert not refused.accepted and refused.gap < 0.05


def test_a_lone_entry_needs_to_be_a_near_duplicate():
    params = GuardParams(min_similarity=0.85, min_gap=0.05, min_support=3, near_duplicate=0.97)
    assert not decide("q", neighbours(("q?", "a", 0.95)), params).accepted
    assert decide("q", neighbours(("q?", "a", 0.98)), params).accepted


def test_the_lexical_checks_overrule_a_close_neighbour():
    params = GuardParams(near_duplicate=0.9)
    decision = decide("How do I lose weight?", neighbours(("How do I gain weight?", "gain", 0.95)), params)
    assert not decision.accepted and decision.reason == "negation mismatch"
