"""The trainer's flow in a real headless Chromium against the real ASGI server: a visitor's thumbs-down
queues an answer, a trainer claims it from the keyboard, edits and approves it, and the next visitor
asking a paraphrase is served the edited answer."""

import os
import time

import pytest
from playwright.sync_api import expect

from chat.management.commands.demo_setup import Command as DemoSetup
from chat.models import Message
from review.learning import learning_values_recompute
from review.models import ReviewItem
from tests.browser import needs_chromium
from tests.factories import TrainerFactory

pytestmark = [
    pytest.mark.django_db(transaction=True),
    needs_chromium,
]
EDITED = "Hold a plank for 3 sets of 20-30 seconds, a straight line from head to heels. (checked by a trainer)"
PLANK_QUESTIONS = ["How do I do a plank?", "How do I hold a plank?", "how to do a plank"]
SHOTS = os.environ.get("REVIEW_SHOTS_DIR", "/tmp")  # where the queue and item screenshots are left


def visitor_asks(browser, url, text):
    page = browser.new_page(viewport={"width": 1100, "height": 760})
    page.goto(url + "/")
    box = page.get_by_label("Your message")
    box.fill(text)
    box.press("Enter")
    answer = page.locator(".msg.assistant").last
    expect(answer.locator(".confidence, .verified").first).to_be_visible(timeout=30000)
    return page, answer


def wait_until(check, what, timeout=10):
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def trainer_page(browser, url):
    DemoSetup()._groups()  # the Trainers group's real permissions
    TrainerFactory.create(username="coach")
    page = browser.new_page(viewport={"width": 1500, "height": 900})  # the queue list has six columns
    page.goto(url + "/admin/login/")
    page.fill("#id_username", "coach")
    page.fill("#id_password", "trainer-password")
    page.click("input[type=submit]")
    return page


def test_a_trainer_claims_edits_and_approves_from_the_keyboard_and_the_next_visitor_gets_it(browser, live_asgi, kb):
    for question in PLANK_QUESTIONS:  # three visitors, three phrasings, three thumbs-down
        _, answer = visitor_asks(browser, live_asgi.url, question)
        answer.get_by_role("button", name="Not helpful").click()
    wait_until(lambda: ReviewItem.objects.filter(reasons__contains=["thumbs_down"]).count() == 3, "not queued")
    learning_values_recompute()  # what the beat job does

    page = trainer_page(browser, live_asgi.url)
    page.get_by_role("link", name="Review items").first.click()
    expect(page.locator("#result_list")).to_contain_text("plank")
    expect(page.locator("#result_list")).to_contain_text("thumbs down")
    expect(page.locator("#result_list")).to_contain_text("represents 3 questions")
    page.screenshot(path=f"{SHOTS}/admin-review-queue.png")
    page.locator("#result_list tbody tr").first.get_by_role("link").first.click()

    expect(page.locator("#shortcuts")).to_be_visible()
    page.keyboard.press("c")
    expect(page.locator(".messagelist .success")).to_contain_text("Claimed")
    expect(page.locator("ul.represented li")).to_have_count(2)
    page.screenshot(path=f"{SHOTS}/admin-review-item.png", full_page=True)
    page.keyboard.press("e")
    edit_box = page.get_by_label("Edited answer")
    expect(edit_box).to_be_focused()
    edit_box.fill(EDITED)
    page.get_by_role("button", name="Edit & approve").click()
    expect(page.locator(".messagelist .success")).to_contain_text("Edited and approved")

    visitor, served = visitor_asks(browser, live_asgi.url, "How do I do a plank correctly?")
    expect(served).to_contain_text("checked by a trainer")
    latest = Message.objects.filter(role=Message.Role.ASSISTANT).latest("created_at")
    assert latest.reuse == Message.Reuse.APPROVED and latest.text == EDITED
    assert set(ReviewItem.objects.values_list("status", flat=True)) == {ReviewItem.Status.EDITED}  # all covered
