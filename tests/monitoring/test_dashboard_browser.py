"""The dashboard in a real headless Chromium against the real ASGI server: an operator's admin home page
draws its charts from the vendored Chart.js, and a visitor's answer moves them without a reload."""

import os
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from playwright.sync_api import expect

from chat.management.commands.demo_setup import Command as DemoSetup
from monitoring.alerts import alert_raise
from monitoring.drift import drift_check_run, drift_span
from monitoring.models import TopicCluster
from tests.browser import needs_chromium
from tests.factories import TrainerFactory
from tests.monitoring.test_alerts import webhook
from tests.monitoring.test_drift import CANCELLING, NOW, fitness, questions_at
from tests.review.test_trainer_flow import visitor_asks

pytestmark = [
    pytest.mark.django_db(transaction=True),
    needs_chromium,
]
SHOTS = os.environ.get("REVIEW_SHOTS_DIR", "/tmp")


def log_in(browser, url, username):
    page = browser.new_page(viewport={"width": 1500, "height": 1100})
    page.goto(url + "/admin/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", "trainer-password")
    page.click("input[type=submit]")
    return page


def test_an_operators_dashboard_draws_its_charts_and_a_new_answer_moves_them_live(browser, live_asgi, kb):
    DemoSetup()._groups()
    operator = TrainerFactory.create(username="ops")
    operator.groups.set([Group.objects.get(name="Operators")])
    visitor_asks(browser, live_asgi.url, "How do I do a push-up?")

    page = log_in(browser, live_asgi.url, "ops")
    expect(page.locator("#dashboard .chart canvas")).to_have_count(9)
    expect(page.locator('[data-tile="alerts"] .v')).to_have_text("0")
    answers = page.locator('[data-tile="answers"] .v')
    expect(answers).to_have_text("1")
    page.evaluate("window.notReloaded = true")
    drawn = page.evaluate("Chart.getChart('chart-answers').data.datasets[0].data.reduce((a, b) => a + b, 0)")
    assert drawn == 1

    visitor_asks(browser, live_asgi.url, "How do I do a plank?")

    expect(answers).to_have_text("2", timeout=15000)
    assert page.evaluate("window.notReloaded") is True
    assert page.evaluate("Chart.getChart('chart-answers').data.datasets[0].data.reduce((a, b) => a + b, 0)") == 2
    page.screenshot(path=f"{SHOTS}/admin-dashboard.png", full_page=True)


def test_a_trainer_without_monitoring_keeps_the_list_of_apps(browser, live_asgi):
    DemoSetup()._groups()
    trainer = TrainerFactory.create(username="coach")
    trainer.groups.set([Group.objects.get(name="Trainers")])

    page = log_in(browser, live_asgi.url, "coach")

    expect(page.locator("#content-main")).to_contain_text("Review")
    expect(page.locator("#dashboard")).to_have_count(0)


def test_an_operator_follows_an_open_alert_from_the_dashboard_and_acknowledges_it(browser, live_asgi, settings,
                                                                                   receiver_with):
    settings.CELERY_TASK_ALWAYS_EAGER = True  # delivery runs in-process, as the worker would run it
    DemoSetup()._groups()
    operator = TrainerFactory.create(username="ops")
    operator.groups.set([Group.objects.get(name="Operators")])
    receiver = receiver_with(fail_first=1)
    webhook(receiver)
    alert_raise(key="anomaly:error_rate", kind="anomaly", severity="warning",
                title="Unusually high error rate: 0.3 (usually 0.01)",
                detail="error rate in the hour from Wed 03:00 UTC was 0.3", data={"score": 14.2})

    page = log_in(browser, live_asgi.url, "ops")
    expect(page.locator('[data-tile="alerts"] .v')).to_have_text("1")
    page.locator('[data-tile="alerts"]').click()
    page.get_by_role("link", name="Unusually high error rate").click()
    expect(page.locator(".inline-group")).to_contain_text("500")  # the refused delivery, then its retry
    page.screenshot(path=f"{SHOTS}/admin-alert.png", full_page=True)
    page.get_by_role("button", name="Acknowledge").click()

    expect(page.locator(".messagelist")).to_contain_text("cknowledged")
    assert [d["valid"] for d in receiver.deliveries] == [True, True]


def test_an_operator_reads_the_drift_report_and_sends_a_new_topic_to_the_review_queue(browser, live_asgi, embedded,
                                                                                     reference):
    later = NOW + timedelta(hours=1)
    questions_at(drift_span(now=NOW).start, fitness([4]) + CANCELLING, embedded)
    questions_at(drift_span(now=later).start, fitness([5]) + CANCELLING, embedded)
    drift_check_run(now=NOW)
    drift_check_run(now=later)  # what the beat job does each hour
    DemoSetup()._groups()
    operator = TrainerFactory.create(username="ops")
    operator.groups.set([Group.objects.get(name="Operators")])

    page = log_in(browser, live_asgi.url, "ops")
    page.get_by_role("link", name="Drift and new topics").click()
    expect(page.locator("#content")).to_contain_text("cancel")  # an emerging topic's example questions
    page.screenshot(path=f"{SHOTS}/admin-drift-report.png", full_page=True)
    page.get_by_role("button", name="Send to review queue").first.click()

    expect(page.locator(".messagelist")).to_be_visible()
    assert TopicCluster.objects.filter(status=TopicCluster.Status.SENT_TO_REVIEW).exists()
