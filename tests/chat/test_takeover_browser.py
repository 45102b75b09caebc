"""Takeover in a real headless Chromium against the real ASGI server: a visitor asks for a person in
the widget, the trainer's live page shows them without a reload, the trainer replies, and the
visitor's widget shows the reply as a person's."""

import threading

import pytest
from django.db import connections
from playwright.sync_api import expect

from review.models import Handoff, ReviewItem
from review.services import review_item_approve, review_item_claim
from tests.browser import needs_chromium
from tests.factories import TrainerFactory
from tests.review.test_trainer_flow import SHOTS, trainer_page, visitor_asks

pytestmark = [
    pytest.mark.django_db(transaction=True),
    needs_chromium,
]


def test_the_live_page_shows_a_waiting_visitor_live_and_the_reply_reaches_the_widget(browser, live_asgi, kb):
    trainer = trainer_page(browser, live_asgi.url)
    trainer.goto(live_asgi.url + "/admin/chat/conversation/live/")
    expect(trainer.locator("#handoffs")).to_contain_text("Nobody is waiting")

    visitor, _ = visitor_asks(browser, live_asgi.url, "How do I do a plank?")
    visitor.get_by_role("button", name="Talk to a human").click()
    expect(visitor.locator(".notice").last).to_contain_text("person")

    row = trainer.locator("#handoffs tbody tr").first
    expect(row).to_contain_text("asked for a person", timeout=10000)  # pushed over /ws/live/, no reload
    row.get_by_role("link").first.click()
    expect(trainer.locator("#thread")).to_contain_text("How do I do a plank?")
    trainer.get_by_label("Your reply").fill("Hi, I'm Sam. Keep your hips level with your shoulders.")
    trainer.get_by_role("button", name="Send").click()
    expect(trainer.locator(".messagelist .success")).to_contain_text("Sent")
    trainer.screenshot(path=f"{SHOTS}/admin-live.png", full_page=True)

    reply = visitor.locator(".msg.human").last
    expect(reply).to_contain_text("Keep your hips level", timeout=10000)
    expect(reply.locator(".agent")).to_contain_text("coach")
    visitor.screenshot(path=f"{SHOTS}/widget-human.png")
    assert Handoff.objects.get().status == Handoff.Status.TAKEN


def test_a_held_answer_shows_a_person_is_checking_then_the_approved_answer(browser, live_asgi, kb, settings):
    settings.REVIEW_HOLD_BELOW = 1.01  # every generated answer is held
    visitor = browser.new_page(viewport={"width": 1100, "height": 760})
    visitor.goto(live_asgi.url + "/")
    box = visitor.get_by_label("Your message")
    box.fill("How do I do a plank?")
    box.press("Enter")
    held = visitor.locator(".msg.assistant.held")
    expect(held).to_contain_text("A person is checking this answer", timeout=30000)

    def trainer_approves() -> None:  # as from admin: a thread of its own, not Playwright's event loop
        try:
            item = ReviewItem.objects.get()
            trainer = TrainerFactory.create()
            review_item_claim(item=item, user=trainer)
            review_item_approve(item=item, reviewer=trainer, text="Forearms down, body straight, hold 30 seconds.")
        finally:
            connections.close_all()  # this thread's pooled connection goes back

    approving = threading.Thread(target=trainer_approves)
    approving.start()
    approving.join(30)

    answer = visitor.locator(".msg.assistant").last
    expect(answer).to_contain_text("Forearms down, body straight", timeout=10000)
    expect(answer).not_to_have_class("held")
