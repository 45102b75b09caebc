"""The widget in a real headless Chromium against the real ASGI server (HTTP + websocket)."""

import time

import pytest
from playwright.sync_api import expect

from chat.models import Feedback, Message
from tests.browser import needs_chromium

pytestmark = [
    pytest.mark.django_db(transaction=True),
    needs_chromium,
]


@pytest.fixture
def page(browser, live_asgi):
    page = browser.new_page(viewport={"width": 1100, "height": 760})
    page.add_init_script("""
        window.__frames = [];
        window.__sockets = [];
        const Native = window.WebSocket;
        window.WebSocket = function (url, protocols) {
          const ws = new Native(url, protocols);
          window.__sockets.push(ws);
          ws.addEventListener('message', (e) => window.__frames.push(JSON.parse(e.data)));
          return ws;
        };
        window.WebSocket.prototype = Native.prototype;
        window.WebSocket.OPEN = Native.OPEN;
    """)
    page.goto(live_asgi.url + "/")
    return page


def ask(page, text):
    box = page.get_by_label("Your message")
    box.fill(text)
    box.press("Enter")


def wait_for_frame(page, kind, timeout=15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        frames = page.evaluate("window.__frames")
        if any(f["type"] == kind for f in frames):
            return frames
        page.wait_for_timeout(50)
    raise AssertionError(f"no {kind} frame; got {page.evaluate('window.__frames')}")


def test_a_visitor_asks_sees_the_answer_stream_with_sources_and_badge_and_votes_down(page, kb):
    expect(page.get_by_text("offline mode", exact=True)).to_be_visible()
    ask(page, "How do I do a barbell squat?")
    frames = wait_for_frame(page, "end")
    tokens = [f for f in frames if f["type"] == "token"]
    assert len(tokens) > 10  # it streamed token by token
    answer = page.locator(".msg.assistant").last
    expect(answer).to_contain_text("Squat")
    expect(answer.locator(".confidence")).to_have_text("High confidence")
    links = answer.get_by_role("link")
    expect(links.first).to_be_visible()
    assert "Squat" in links.first.inner_text() and "/kb/documents/" in links.first.get_attribute("href")

    answer.get_by_role("button", name="Not helpful").click()
    expect(answer.get_by_role("button", name="Not helpful")).to_have_attribute("aria-pressed", "true")
    message_id = frames[-1]["message_id"]
    deadline = time.monotonic() + 5
    while not Feedback.objects.filter(message_id=message_id, value="down").exists():
        assert time.monotonic() < deadline, "thumbs-down was not stored"
        time.sleep(0.05)


def test_an_answer_containing_script_is_shown_as_text(page, kb, online):
    online.script.answers.append(
        'Try this: <script>window.__pwned = 1</script><img src=x onerror="window.__pwned=2"> [1]'
    )
    page.reload()
    ask(page, "How do I do a barbell squat?")
    wait_for_frame(page, "end")
    answer = page.locator(".msg.assistant").last
    expect(answer).to_contain_text("<script>window.__pwned = 1</script>")
    assert page.evaluate("window.__pwned") is None
    assert answer.locator("script, img").count() == 0


def test_the_widget_survives_host_page_css_and_works_from_the_keyboard(page, kb):
    page.add_style_tag(content="button, textarea, section, ol, .msg { display: none !important; } "
                                "div { font-size: 60px !important; color: red !important; }")
    page.keyboard.press("Escape")  # the panel closes; the launcher gets focus
    launcher = page.get_by_role("button", name="Chat with us")
    expect(launcher).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.get_by_label("Your message")).to_be_focused()
    page.keyboard.type("How do I do a plank?")
    page.keyboard.press("Enter")
    wait_for_frame(page, "end")
    expect(page.locator(".msg.assistant").last).to_contain_text("Plank")


def test_the_conversation_comes_back_after_a_reload(page, kb):
    ask(page, "How do I do a plank?")
    wait_for_frame(page, "end")
    page.reload()
    expect(page.locator(".msg.user")).to_have_text("How do I do a plank?")
    expect(page.locator(".msg.assistant").last.locator(".confidence")).to_be_visible()
    assert Message.objects.filter(role="user").count() == 1


def test_it_fits_a_phone_screen(page, kb):
    page.set_viewport_size({"width": 375, "height": 667})
    box = page.locator(".panel").bounding_box()
    assert box["width"] == 375 and box["height"] == 667


def test_the_widget_reconnects_and_resumes_an_answer_cut_off_mid_stream(page, kb, online):
    words = [f"step{i}" for i in range(40)]
    online.script.answers.append(" ".join(words) + " [1]")
    online.script.tokens_per_s = 25
    page.reload()
    ask(page, "How do I do a barbell squat?")
    wait_for_frame(page, "token")
    page.evaluate("window.__sockets[window.__sockets.length - 1].close()")  # the network drops
    wait_for_frame(page, "end", timeout=20)
    answer = page.locator(".msg.assistant .text").last
    expect(answer).to_have_text(" ".join(words) + " [1]")  # every token once, in order
    assert page.evaluate("window.__sockets.length") >= 2
    expect(page.locator(".msg.assistant").last.locator(".confidence")).to_be_visible()


def test_a_verified_answer_says_so(page, kb):
    from review.models import ApprovedAnswer
    from review.services import approved_answer_save

    approved_answer_save(answer=ApprovedAnswer(question="How do I do a plank?", answer="Hold a straight line. (coach)"))
    ask(page, "How do I do a plank?")
    wait_for_frame(page, "end")
    answer = page.locator("#spotter-widget .assistant").last
    expect(answer).to_contain_text("Hold a straight line. (coach)")
    expect(answer.locator(".verified")).to_have_text("Verified answer")


def test_a_visitor_sees_and_deletes_what_the_assistant_remembers(page, kb):
    from chat.models import VisitorFact, VisitorProfile

    ask(page, "I have a bad left knee. How do I do a goblet squat?")
    wait_for_frame(page, "end")
    page.get_by_role("button", name="My profile").click()
    region = page.get_by_role("region", name="What the assistant remembers about you")
    expect(region).to_contain_text("I have a bad left knee.")

    region.get_by_label("Goal").fill("squat my body weight")
    region.get_by_role("button", name="Save").click()
    expect(page.locator("#spotter-widget .status").first).to_have_text("Profile saved")
    assert VisitorFact.objects.get(label="goal").value == "squat my body weight"

    region.get_by_role("button", name="Forget: I have a bad left knee.").click()
    expect(region).not_to_contain_text("I have a bad left knee.")
    assert list(VisitorFact.objects.values_list("label", flat=True)) == ["goal"]
    page.once("dialog", lambda dialog: dialog.accept())  # "Delete everything" asks first
    region.get_by_role("button", name="Delete everything").click()
    expect(page.locator("#spotter-widget .notice").last).to_contain_text("Everything was deleted")
    assert not VisitorProfile.objects.exists()
