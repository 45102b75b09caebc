"""Take the README's screenshots in headless Chromium against a running `make run`.

    CHAT_VISITOR_MESSAGE_LIMIT=100 CHAT_SOCKET_MESSAGE_LIMIT=100 make run &   # wait until it prints the URLs
    .venv/bin/python docs/screenshots.py [http://127.0.0.1:8000 [widget admin ...]]   # all, or the ones named

The dashboard's thirty questions come from one visitor on one socket within a minute: more than one person
is let ask (20 a minute per visitor, 10 per socket), hence the higher limits for this run.
"""

import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

BASE = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8000"
OUT = Path(__file__).resolve().parent
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]


def admin_page(browser, username="admin"):
    """A page logged in to admin as a demo login (the admin unless told)."""
    page = browser.new_page(viewport={"width": 1300, "height": 800})
    page.goto(BASE + "/admin/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", "spotter-demo")
    page.click("input[type=submit]")
    return page


def widget(browser) -> None:
    """Two turns: the follow-up names no exercise and is answered from the squat all the same."""
    page = browser.new_page(viewport={"width": 1100, "height": 900})
    page.goto(BASE + "/")
    box = page.get_by_label("Your message")
    for turn, question in enumerate(["How do I do a barbell squat?", "What muscles does it work?"], start=1):
        box.fill(question)
        box.press("Enter")
        page.locator(".msg.assistant .confidence").nth(turn - 1).wait_for(timeout=30000)
    page.screenshot(path=OUT / "widget.png")


def admin(browser) -> None:
    page = admin_page(browser)
    page.set_viewport_size({"width": 1700, "height": 820})
    page.goto(BASE + "/admin/chat/conversation/")
    page.locator("#result_list tbody th a").first.click()
    page.locator("#toggle-nav-sidebar").click()  # the messages need the width
    page.locator(".inline-group").first.scroll_into_view_if_needed()
    page.evaluate("document.querySelector('.inline-group').scrollIntoView()")
    page.screenshot(path=OUT / "admin-conversation.png", full_page=False)
    page.set_viewport_size({"width": 1300, "height": 800})
    page.goto(BASE + "/admin/knowledge/source/retrieval-test/?q=how+do+I+do+a+barbell+squat&k=5")
    page.screenshot(path=OUT / "retrieval-test.png", full_page=False)


def reuse(browser) -> None:
    """A trainer approves an answer in admin; a visitor gets it marked verified; the costs page."""
    page = admin_page(browser)
    page.goto(BASE + "/admin/review/approvedanswer/add/")
    page.fill("#id_question", "How long should I hold a plank?")
    page.fill("#id_answer", "Start with 3 holds of 20-30 seconds with a straight line from head to heels; "
                            "add 10 seconds a week while your form stays clean. [Plank]")
    page.click("input[name=_save]")

    visitor = browser.new_page(viewport={"width": 1100, "height": 760})
    visitor.goto(BASE + "/")
    box = visitor.get_by_label("Your message")
    box.fill("I have a bad left knee. Is the goblet squat OK for me?")
    box.press("Enter")
    visitor.locator(".msg.assistant .confidence").first.wait_for(timeout=30000)
    box.fill("How long should I hold a plank?")
    box.press("Enter")
    visitor.locator(".msg.assistant .verified").wait_for(timeout=30000)
    visitor.screenshot(path=OUT / "widget-verified.png")
    visitor.get_by_role("button", name="My profile").click()
    visitor.get_by_role("region", name="What the assistant remembers about you").wait_for()
    visitor.screenshot(path=OUT / "widget-profile.png")

    page.goto(BASE + "/admin/monitoring/answerfact/costs/")
    page.screenshot(path=OUT / "admin-costs.png", full_page=False)
    page.goto(BASE + "/admin/chat/cacheentry/")
    page.screenshot(path=OUT / "admin-cache.png", full_page=False)


def review_queue(browser) -> None:
    """A visitor's thumbs-down queues an answer; the trainer's queue and the item page, claimed with
    the keyboard and released afterwards so the demo queue is left as it was."""
    visitor = browser.new_page(viewport={"width": 1100, "height": 760})
    visitor.goto(BASE + "/")
    box = visitor.get_by_label("Your message")
    box.fill("How do I do a plank?")
    box.press("Enter")
    answer = visitor.locator(".msg.assistant").last
    answer.locator(".confidence, .verified").first.wait_for(timeout=30000)
    answer.get_by_role("button", name="Not helpful").click()
    visitor.wait_for_timeout(1000)  # the vote is stored over the socket

    page = admin_page(browser, "trainer")
    page.set_viewport_size({"width": 1500, "height": 900})  # the queue list has six columns
    page.goto(BASE + "/admin/review/reviewitem/")
    page.screenshot(path=OUT / "admin-review-queue.png", full_page=False)
    page.locator("#result_list tbody tr").first.get_by_role("link").first.click()
    page.keyboard.press("c")
    page.locator(".messagelist").wait_for()
    page.screenshot(path=OUT / "admin-review-item.png", full_page=True)
    page.get_by_role("button", name="Release").click()


DASHBOARD_QUESTIONS = [
    "How do I do a {}?", "What muscles does the {} work?", "Any tips for the {}?",
]
DASHBOARD_EXERCISES = ["barbell squat", "push-up", "plank", "deadlift", "lunge", "pull-up", "bench press",
                       "kettlebell swing", "bicycle crunch", "calf raise"]


def dashboard(browser) -> None:
    """Thirty visitor questions (a few rated) so the charts have something to show, then the operator's
    admin home page: the monitoring dashboard."""
    visitor = browser.new_page(viewport={"width": 1100, "height": 760})
    visitor.goto(BASE + "/")
    box = visitor.get_by_label("Your message")
    for n, exercise in enumerate(DASHBOARD_EXERCISES * 3):
        box.fill(DASHBOARD_QUESTIONS[n % 3].format(exercise))
        box.press("Enter")
        visitor.locator(".msg.assistant .confidence, .msg.assistant .verified").nth(n).wait_for(timeout=30000)
        if n % 4 == 0:
            vote = "Helpful" if n % 8 else "Not helpful"
            visitor.locator(".msg.assistant").last.get_by_role("button", name=vote, exact=True).click()
    page = admin_page(browser, "operator")
    page.set_viewport_size({"width": 1500, "height": 1100})
    page.locator("#dashboard .chart canvas").first.wait_for()
    page.wait_for_timeout(6000)  # one poll: the charts as the page keeps them
    page.screenshot(path=OUT / "admin-dashboard.png", full_page=True)


def budget(browser) -> None:
    """The operator's LLM budget page: today's spend against the limits, which they can change."""
    page = admin_page(browser, "operator")
    page.set_viewport_size({"width": 1200, "height": 620})
    page.goto(BASE + "/admin/chat/llmbudget/")
    page.screenshot(path=OUT / "admin-llm-budget.png", full_page=False)


SHOTS = [widget, admin, reuse, review_queue, dashboard, budget]
CHOSEN = [shot for shot in SHOTS if shot.__name__ in sys.argv[2:]] or SHOTS

with sync_playwright() as p:
    chromium = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=ARGS)
    for shot in CHOSEN:
        shot(chromium)
    chromium.close()
print("wrote the screenshots in", OUT)
