"""Take the README's screenshots in headless Chromium against a running `make run`.

    make run &            # wait until it prints the URLs
    .venv/bin/python docs/screenshots.py [http://127.0.0.1:8000]
"""

import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

BASE = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8000"
OUT = Path(__file__).resolve().parent
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]


def widget(browser) -> None:
    page = browser.new_page(viewport={"width": 1100, "height": 760})
    page.goto(BASE + "/")
    box = page.get_by_label("Your message")
    box.fill("How do I do a barbell squat?")
    box.press("Enter")
    page.locator(".msg.assistant .confidence").wait_for(timeout=30000)
    page.screenshot(path=OUT / "widget.png")


def admin(browser) -> None:
    page = browser.new_page(viewport={"width": 1300, "height": 800})
    page.goto(BASE + "/admin/login/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", "spotter-demo")
    page.click("input[type=submit]")
    page.goto(BASE + "/admin/chat/conversation/")
    page.locator("#result_list tbody th a").first.click()
    page.screenshot(path=OUT / "admin-conversation.png", full_page=False)
    page.goto(BASE + "/admin/knowledge/source/retrieval-test/?q=how+do+I+do+a+barbell+squat&k=5")
    page.screenshot(path=OUT / "retrieval-test.png", full_page=False)


with sync_playwright() as p:
    chromium = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=ARGS)
    widget(chromium)
    admin(chromium)
    chromium.close()
print("wrote", OUT / "widget.png", OUT / "admin-conversation.png", OUT / "retrieval-test.png")
