"""The visitor's profile: which facts a message adds, under which label, as the deployment's
configuration (CHAT_PROFILE_CONFIG) says, and how the model reads them."""

import factory
import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from chat import memory
from chat.models import Conversation, Message, VisitorFact

pytestmark = pytest.mark.django_db

BANK = """
[notes]
keep = false

[[fields]]
label = "account"
title = "Accounts held"
many = true

[[statements]]
label = "account"
pattern = '\\b(?:savings|checking|joint) account\\b'
"""


class ConversationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Conversation

    visitor_id = "dana"


class MessageFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Message

    conversation = factory.SubFactory(ConversationFactory)
    sequence = factory.Sequence(lambda n: n + 1)
    role = Message.Role.USER


def remembered(visitor_id: str = "dana") -> list[tuple[str, str]]:
    return list(VisitorFact.objects.filter(profile__visitor_id=visitor_id).values_list("label", "value"))


@pytest.fixture
def config_file(settings, tmp_path):
    def use(text: str) -> None:
        path = tmp_path / "profile.toml"
        path.write_text(text)
        settings.CHAT_PROFILE_CONFIG = str(path)

    return use


def test_it_remembers_what_the_visitor_says_about_themselves_and_from_which_message():
    message = MessageFactory.create(text="I have a bad left knee. How do I do a barbell squat?")
    profile = memory.profile_remember(visitor_id="dana", text=message.text, message_id=message.id)

    fact = VisitorFact.objects.get()
    assert (fact.label, fact.value, fact.message_id) == ("limits", "I have a bad left knee.", message.id)
    assert memory.profile_text(profile) == "Injuries or limits: I have a bad left knee."
    assert profile is not None and profile.language == ""


def test_it_leaves_out_questions_and_what_is_not_about_the_visitor():
    questions = ("Is the squat safe for a bad knee?", "Pain in the knee is common.", "How do I do a plank?",
                 "how do I do a BARBELL squat", "can I train with a bad knee")  # no question mark
    for text in questions:
        assert memory.profile_remember(visitor_id="dana", text=text) is None
    assert remembered() == []


def test_a_newer_goal_replaces_the_old_one_while_injuries_add_up():
    for text in ("I want to run 10 km.", "I have a bad left knee.", "I want to squat my body weight.",
                 "My right shoulder hurts.", "I have a bad left knee."):
        memory.profile_remember(visitor_id="dana", text=text)

    assert sorted(remembered()) == [("goal", "I want to squat my body weight."), ("limits", "I have a bad left knee."),
                                    ("limits", "My right shoulder hurts.")]


def test_the_model_reads_facts_by_title_in_the_configured_order():
    memory.profile_remember(visitor_id="dana", text="I work night shifts. I have a bad left knee. I'm a beginner.")
    profile = memory.profile_update(visitor_id="dana", data={"language": "de"})

    assert memory.profile_text(profile).splitlines() == [
        "Preferred language: de", "Level: I'm a beginner.", "Injuries or limits: I have a bad left knee.",
        "- I work night shifts.",
    ]
    assert memory.profile_hash(profile) and memory.profile_hash(None) == memory.profile_text(None) == ""


def test_it_keeps_the_newest_facts_only(settings):
    settings.CHAT_PROFILE_MAX_FACTS = 2
    for text in ("I work night shifts.", "I live in Berlin.", "I have two kids."):
        memory.profile_remember(visitor_id="dana", text=text)
    assert [value for _, value in remembered()] == ["I live in [LOCATION].", "I have two kids."]  # places masked


def test_another_deployment_needs_only_its_own_config(config_file):
    config_file(BANK)
    memory.profile_remember(visitor_id="dana", text="I have a joint account with my wife. I work night shifts.")

    assert remembered() == [("account", "I have a joint account with my wife.")]  # notes not kept
    assert memory.profile_text(memory.profile_get(visitor_id="dana")) == (
        "Accounts held: I have a joint account with my wife.")


def test_without_a_config_self_statements_are_kept_as_notes(settings):
    settings.CHAT_PROFILE_CONFIG = ""
    profile = memory.profile_remember(visitor_id="dana", text="I have a bad left knee. What about lunges?")
    assert remembered() == [("note", "I have a bad left knee.")]
    assert memory.profile_text(profile) == "- I have a bad left knee."


@pytest.mark.parametrize("text", [
    '[[statements]]\nlabel = "shoe"\npattern = "size"',  # a label no field declares
    '[[fields]]\nlabel = "Goal"\ntitle = "Goal"',  # labels are lowercase words
    '[[statements]]\nlabel = "note"\npattern = "(unclosed"',
    "fields = [",
])
def test_a_broken_config_fails_loudly(config_file, text):
    config_file(text)
    with pytest.raises(ImproperlyConfigured):
        memory.profile_config()


def test_an_edited_fact_becomes_the_visitors_own_words():
    message = MessageFactory.create(text="I have a bad left knee.")
    memory.profile_remember(visitor_id="dana", text=message.text, message_id=message.id)
    fact = VisitorFact.objects.get()

    memory.profile_update(visitor_id="dana", data={"facts": [{"id": fact.pk, "value": "I have a bad right knee."}]})
    fact.refresh_from_db()
    assert (fact.value, fact.message_id) == ("I have a bad right knee.", None)
    with pytest.raises(memory.ProfileError):
        memory.profile_update(visitor_id="erin", data={"facts": [{"id": fact.pk, "value": ""}]})


@pytest.mark.django_db(transaction=True)
def test_the_migration_turns_old_profile_fields_into_facts_and_back():
    before = [("chat", "0003_message_approved_answer_message_context_tokens_and_more")]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    old_apps = executor.loader.project_state(before).apps
    old_apps.get_model("chat", "VisitorProfile").objects.create(
        visitor_id="dana", goal="run 10 km", limits="bad knee", language="de",
        facts=["I work night shifts.", "i work night shifts.", "I live in Berlin."],
    )
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())

    profile = memory.profile_get(visitor_id="dana")
    assert profile is not None and profile.language == "de"
    assert remembered() == [("goal", "run 10 km"), ("limits", "bad knee"), ("note", "I work night shifts."),
                            ("note", "I live in Berlin.")]
    assert all(fact.created_at == profile.updated_at and fact.message_id is None for fact in profile.facts.all())

    executor.loader.build_graph()
    executor.migrate(before)  # and back, for a rollback of the release
    old = executor.loader.project_state(before).apps.get_model("chat", "VisitorProfile").objects.get()
    assert (old.goal, old.limits, old.facts) == ("run 10 km", "bad knee", ["I work night shifts.", "I live in Berlin."])
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())


def test_emptying_a_one_value_label_forgets_it():
    memory.profile_remember(visitor_id="dana", text="I want to run 10 km. I have a bad left knee.")
    memory.profile_update(visitor_id="dana", data={"facts": [{"label": "goal", "value": ""},
                                                             {"label": "limits", "value": ""}]})
    assert remembered() == [("limits", "I have a bad left knee.")]  # one of many is forgotten by its id
