"""The widget in headless Chromium: the visitor downloads all of its data as JSON, and "Delete everything"
erases all of it after a confirmation, says so, and goes on as a new visitor."""

import json
import time

from playwright.sync_api import expect

from chat.models import Conversation, ErasureRecord, Message
from chat.privacy import visitor_hash
from tests.chat.test_widget import ask, page, pytestmark, wait_for_frame  # noqa: F401  (page: the browser fixture)


def answered_once(page):  # noqa: F811
    ask(page, "How do I do a plank?")
    wait_for_frame(page, "end", timeout=20)
    return Conversation.objects.get().visitor_id


def open_profile(page):  # noqa: F811
    page.get_by_role("button", name="My profile").click()
    expect(page.get_by_role("button", name="Delete everything")).to_be_visible()


def test_the_visitor_downloads_all_of_its_data_as_json(page, kb, tmp_path):  # noqa: F811
    visitor_id = answered_once(page)
    open_profile(page)

    with page.expect_download() as download:
        page.get_by_role("button", name="Download my data").click()
    target = tmp_path / "data.json"
    download.value.save_as(target)

    data = json.loads(target.read_text())
    assert data["visitor_id"] == visitor_id
    assert {m["id"] for m in data["messages"]} == {str(pk) for pk in Message.objects.values_list("pk", flat=True)}
    assert any(m["role"] == "assistant" and m["sources"] for m in data["messages"])


def test_delete_everything_erases_it_all_after_a_confirmation_and_starts_over(page, kb):  # noqa: F811
    visitor_id = answered_once(page)
    old_token = page.evaluate("Object.entries(localStorage).find(([k]) => k.endsWith('token'))[1]")
    open_profile(page)
    page.once("dialog", lambda dialog: dialog.accept())

    page.get_by_role("button", name="Delete everything").click()

    expect(page.get_by_text("Everything was deleted", exact=False)).to_be_visible()
    assert not Conversation.objects.exists() and not Message.objects.exists()
    assert ErasureRecord.objects.get().visitor_hash == visitor_hash(visitor_id)
    expect(page.locator(".msg")).to_have_count(0)
    ask(page, "How do I do a pushup?")  # a new visitor, with a new token
    deadline = time.monotonic() + 20
    while not Conversation.objects.exists():
        assert time.monotonic() < deadline, "the new visitor's question was not stored"
        time.sleep(0.05)
    assert Conversation.objects.get().visitor_id != visitor_id
    assert page.evaluate("Object.entries(localStorage).find(([k]) => k.endsWith('token'))[1]") != old_token


def test_nothing_is_deleted_when_the_visitor_does_not_confirm(page, kb):  # noqa: F811
    answered_once(page)
    open_profile(page)
    page.once("dialog", lambda dialog: dialog.dismiss())

    page.get_by_role("button", name="Delete everything").click()

    page.wait_for_timeout(300)
    assert Conversation.objects.count() == 1 and not ErasureRecord.objects.exists()
    expect(page.locator(".msg.user")).to_have_count(1)
