"""The audit log as a reader sees it in a real headless Chromium: an operator's budget change in the list,
and its page showing the limits before and after. Screenshots are left in AUDIT_SHOTS_DIR."""

import os

import pytest
from django.contrib.auth.models import Permission
from playwright.sync_api import expect

from chat.management.commands.demo_setup import Command as DemoSetup
from chat.models import LLMBudget
from tests.browser import needs_chromium
from tests.factories import OperatorFactory

pytestmark = [
    pytest.mark.django_db(transaction=True),
    needs_chromium,
]
SHOTS = os.environ.get("AUDIT_SHOTS_DIR", "/tmp")


def signed_in_page(browser, url, username):
    page = browser.new_page(viewport={"width": 1400, "height": 800})
    page.goto(url + "/admin/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", "operator-password")
    page.click("input[type=submit]")
    return page


def test_a_reader_finds_a_budget_change_and_sees_it_before_and_after(browser, live_asgi):
    DemoSetup()._groups()
    OperatorFactory.create(username="ops")
    reader = OperatorFactory.create(username="auditor")
    reader.user_permissions.add(Permission.objects.get(codename="view_logentry", content_type__app_label="auditlog"))
    budget = LLMBudget.objects.create(visitor_daily_tokens=5000)

    ops = signed_in_page(browser, live_asgi.url, "ops")
    ops.goto(f"{live_asgi.url}/admin/chat/llmbudget/{budget.pk}/change/")
    ops.fill("#id_visitor_daily_tokens", "800")
    ops.fill("#id_daily_spend_cap_usd", "2.5")
    ops.click("input[name=_save]")

    page = signed_in_page(browser, live_asgi.url, "auditor")
    page.goto(live_asgi.url + "/admin/auditlog/logentry/")
    row = page.locator("#result_list tbody tr").first
    expect(row).to_contain_text("LLM budget")
    expect(row).to_contain_text("ops")
    page.screenshot(path=os.path.join(SHOTS, "audit-list.png"))
    row.locator("a").first.click()
    expect(page.locator("body")).to_contain_text("5000")
    expect(page.locator("body")).to_contain_text("800")
    page.screenshot(path=os.path.join(SHOTS, "audit-entry.png"), full_page=True)
