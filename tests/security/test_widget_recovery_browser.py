"""The widget in headless Chromium: a question lost to a dropped socket is sent again and answered
once, Send never stays disabled, the socket opens with a ticket, and only http(s) sources are links."""

import pytest
from playwright.sync_api import expect

from chat.models import Conversation, Message
from tests.chat.test_widget import ask, page, wait_for_frame  # noqa: F401  (page: the browser fixture)

# Drops, once, what the test asks for: the question on its way out, or its `start` on the way back
# (unseen by the widget), closing the socket as a network drop would.
DROPPING = """
  window.__drop = null;
  const Recording = window.WebSocket;
  window.WebSocket = function (url, protocols) {
    const ws = new Recording(url, protocols);
    ws.addEventListener('message', (e) => {
      if (window.__drop === 'start' && JSON.parse(e.data).type === 'start') {
        window.__drop = null; e.stopImmediatePropagation(); ws.close();
      }
    });
    const send = ws.send.bind(ws);
    ws.send = (data) => {
      if (window.__drop !== 'question' || JSON.parse(data).type !== 'message') { send(data); return; }
      window.__drop = null; ws.close();
    };
    return ws;
  };
  window.WebSocket.prototype = Recording.prototype;
  window.WebSocket.OPEN = Recording.OPEN;
"""


@pytest.fixture
def dropping(page):  # noqa: F811
    page.add_init_script(DROPPING)
    page.reload()
    expect(page.locator("#spotter-widget .status")).to_have_text("")  # connected
    return page


@pytest.mark.parametrize("lost", ["question", "start"])
def test_a_question_cut_off_by_a_dropped_socket_is_answered_once_after_the_reconnect(dropping, kb, lost):
    dropping.wait_for_function("window.__sockets.length >= 1 && window.__sockets[0].readyState === 1")
    dropping.evaluate(f"window.__drop = '{lost}'")
    ask(dropping, "How do I do a plank?")
    wait_for_frame(dropping, "end", timeout=20)
    assert dropping.evaluate("window.__sockets.length") >= 2  # it reconnected
    expect(dropping.locator(".msg.assistant").last).to_contain_text("Plank")
    expect(dropping.locator(".msg.user")).to_have_count(1)
    expect(dropping.locator(".msg.user.pending")).to_have_count(0)
    expect(dropping.locator("button.send")).to_be_enabled()
    assert Conversation.objects.count() == 1 and Message.objects.filter(role="user").count() == 1


def test_the_socket_opens_with_a_ticket_never_the_token(page, kb):  # noqa: F811
    page.wait_for_function("window.__sockets.length >= 1")
    urls = page.evaluate("window.__sockets.map((s) => s.url)")
    assert all("ticket=" in url and "token=" not in url for url in urls)


def test_a_source_link_is_made_only_of_an_http_url(page, kb):  # noqa: F811
    page.wait_for_function("window.__sockets.length >= 1 && window.__sockets[0].readyState === 1")
    page.evaluate("""() => {
      const ws = window.__sockets[window.__sockets.length - 1];
      const emit = (f) => ws.dispatchEvent(new MessageEvent('message', {data: JSON.stringify(f)}));
      const id = 'f0e1d2c3-0000-4000-8000-000000000001';
      emit({type: 'start', conversation_id: 'f0e1d2c3-0000-4000-8000-000000000002', message_id: id});
      emit({type: 'token', message_id: id, seq: 1, text: 'See the sources.'});
      emit({type: 'end', message_id: id, confidence: 0.9, reuse: 'none', latency_ms: 5, sources: [
        {title: 'Script source', url: 'javascript:window.__pwned=1', chunk_id: 1, score: 1},
        {title: 'Data source', url: 'data:text/html,<script>window.__pwned=2</script>', chunk_id: 2, score: 1},
        {title: 'Web source', url: 'https://example.com/doc', chunk_id: 3, score: 1}]});
    }""")
    sources = page.locator(".msg.assistant").last.locator(".sources li")
    expect(sources).to_have_count(3)
    links = page.locator(".msg.assistant").last.get_by_role("link")
    expect(links).to_have_count(1)
    assert links.first.get_attribute("href") == "https://example.com/doc"
    sources.filter(has_text="Script source").click()
    assert page.evaluate("window.__pwned") is None
