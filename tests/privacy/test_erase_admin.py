"""Staff export and erase a visitor's data from admin, each with its own permission; erasure records are
append-only there."""

import json

import pytest
from django.contrib.auth.models import Permission, User

from chat.models import Conversation, ErasureRecord, VisitorProfile
from chat.privacy import visitor_hash
from tests.factories import AnswerFactory, ConversationFactory, OperatorFactory

pytestmark = pytest.mark.django_db
PAGE = "/admin/chat/erasurerecord/visitor-data/"


def staff_with(*codenames: str) -> User:
    user = User.objects.create_user(f"staff-{'-'.join(codenames) or 'none'}", password="pw", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(content_type__app_label="chat", codename__in=codenames))
    return user


@pytest.fixture
def visitor_data():
    conversation = ConversationFactory(visitor_id="v-admin")
    AnswerFactory(conversation=conversation)
    VisitorProfile.objects.create(visitor_id="v-admin", language="en")
    return conversation


def test_a_permitted_user_sees_what_is_stored_and_downloads_the_json(client, visitor_data):
    client.force_login(staff_with("export_visitor_data"))

    page = client.get(PAGE, {"visitor_id": "v-admin"})
    assert page.status_code == 200
    assert b"1 conversation" in page.content and b"2 messages" in page.content
    assert b"Download JSON" in page.content and b"Erase everything" not in page.content

    response = client.get(PAGE + "export/", {"visitor_id": "v-admin"})
    assert response.status_code == 200 and "attachment" in response["Content-Disposition"]
    data = json.loads(response.content)
    assert [c["id"] for c in data["conversations"]] == [str(visitor_data.pk)]
    assert len(data["messages"]) == 2 and data["profile"]["visitor_id"] == "v-admin"


def test_a_permitted_user_erases_after_a_confirmation(client, visitor_data):
    user = staff_with("erase_visitor_data")
    client.force_login(user)

    confirm = client.get(PAGE + "erase/", {"visitor_id": "v-admin"})
    assert confirm.status_code == 200 and b"Yes, erase everything" in confirm.content
    assert Conversation.objects.exists()  # nothing goes before the confirmation

    response = client.post(PAGE + "erase/", {"visitor_id": "v-admin"})
    record = ErasureRecord.objects.get()
    assert response.status_code == 302 and str(record.pk) in response["Location"]
    assert not Conversation.objects.exists() and not VisitorProfile.objects.exists()
    assert record.requested_by == ErasureRecord.Requester.STAFF and record.staff_user == user
    assert record.visitor_hash == visitor_hash("v-admin") and record.counts["chat.Message"] == 2


@pytest.mark.parametrize("request_", [("get", PAGE), ("get", PAGE + "export/"), ("get", PAGE + "erase/"),
                                      ("post", PAGE + "erase/")])
def test_staff_without_the_permission_are_refused(client, visitor_data, request_):
    client.force_login(OperatorFactory())  # operators run the system; they do not handle visitors' data
    method, url = request_

    assert getattr(client, method)(url, {"visitor_id": "v-admin"}).status_code == 403
    assert Conversation.objects.exists() and not ErasureRecord.objects.exists()


def test_exporting_does_not_allow_erasing(client, visitor_data):
    client.force_login(staff_with("export_visitor_data"))

    assert client.post(PAGE + "erase/", {"visitor_id": "v-admin"}).status_code == 403
    assert Conversation.objects.exists()


def test_erasure_records_cannot_be_added_changed_or_deleted_in_admin(client):
    record = ErasureRecord.objects.create(requested_by=ErasureRecord.Requester.RETENTION, counts={"chat.Message": 3})
    superuser = User.objects.create_superuser("root", password="pw")
    client.force_login(superuser)
    base = "/admin/chat/erasurerecord/"

    assert client.get(base).status_code == 200
    assert client.get(f"{base}add/").status_code == 403
    assert client.get(f"{base}{record.pk}/delete/").status_code == 403
    client.post(f"{base}{record.pk}/change/", {"counts": "{}"})
    record.refresh_from_db()
    assert record.counts == {"chat.Message": 3}
