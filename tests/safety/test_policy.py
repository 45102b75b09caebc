"""The safety policy: the settings' defaults, each value an operator sets in admin, and its admin page."""

import pytest

from chat.models import ContentSafetyPolicy
from chat.safety.policy import forget_safety_policy, safety_policy

pytestmark = pytest.mark.django_db


def test_without_a_row_the_settings_decide(settings):
    settings.SAFETY_INJECTION_POLICY = "refuse"
    settings.SAFETY_QUESTION_MODERATION_POLICY = "flag"
    settings.SAFETY_ANSWER_MODERATION_POLICY = "refuse"
    policy = safety_policy()
    assert (policy.injection, policy.question_moderation, policy.answer_moderation) == ("refuse", "flag", "refuse")
    assert policy.injection_threshold is None and policy.moderation_threshold is None


@pytest.mark.parametrize(("field", "value"), [
    ("injection", "refuse"), ("injection", "reminder"), ("injection", "review"),
    ("question_moderation", "refuse"), ("question_moderation", "review"), ("question_moderation", "flag"),
    ("answer_moderation", "refuse"), ("answer_moderation", "review"), ("answer_moderation", "flag"),
    ("injection_threshold", 0.8), ("moderation_threshold", 0.3),
])
def test_each_value_set_in_admin_is_in_force(field, value):
    ContentSafetyPolicy.objects.create(**{field: value})
    assert getattr(safety_policy(), field) == value


def test_a_blank_field_goes_back_to_the_setting(settings):
    settings.SAFETY_INJECTION_POLICY = "review"
    ContentSafetyPolicy.objects.create(injection="", question_moderation="flag")
    policy = safety_policy()
    assert policy.injection == "review" and policy.question_moderation == "flag"


def test_the_policy_is_cached_a_few_seconds_without_a_query(settings, django_assert_num_queries):
    settings.SAFETY_INJECTION_POLICY = "reminder"
    safety_policy()
    ContentSafetyPolicy.objects.create(injection="refuse")
    with django_assert_num_queries(0):
        assert safety_policy().injection == "reminder"
    forget_safety_policy()  # what saving in admin does
    assert safety_policy().injection == "refuse"


def test_the_admin_list_is_the_one_policy_page_and_saving_applies_at_once(admin_client):
    response = admin_client.get("/admin/chat/contentsafetypolicy/")
    assert response.status_code == 302
    page = admin_client.get(response["Location"])
    content = page.content.decode().lower()
    assert page.status_code == 200 and "suspected prompt injection" in content and "in force" in content

    saved = admin_client.post(response["Location"], {
        "injection": "review", "question_moderation": "refuse", "answer_moderation": "flag",
        "injection_threshold": "0.7", "moderation_threshold": "",
    })
    assert saved.status_code == 302
    assert ContentSafetyPolicy.objects.count() == 1
    policy = safety_policy()
    assert (policy.injection, policy.question_moderation, policy.answer_moderation) == ("review", "refuse", "flag")
    assert policy.injection_threshold == 0.7


def test_the_policy_cannot_be_added_twice_or_deleted(admin_client):
    policy = ContentSafetyPolicy.objects.create()
    assert admin_client.get("/admin/chat/contentsafetypolicy/add/").status_code == 403
    assert admin_client.get(f"/admin/chat/contentsafetypolicy/{policy.pk}/delete/").status_code == 403
