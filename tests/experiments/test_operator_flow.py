"""The operator's flow in a real headless Chromium against the real ASGI server: create an experiment with
two arms in admin, start it, and watch its results move as visitors' answers arrive, without a reload;
then compare two prompt versions as a diff."""

import os
import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.utils import timezone
from playwright.sync_api import expect

from chat.management.commands.demo_setup import Command as DemoSetup
from experiments.models import PRODUCTION, Experiment
from experiments.services import prompt_version_create
from tests.browser import needs_chromium
from tests.experiments.test_results import answers
from tests.factories import TrainerFactory
from tests.review.test_trainer_flow import visitor_asks

pytestmark = [
    pytest.mark.django_db(transaction=True),
    needs_chromium,
]
SHOTS = os.environ.get("REVIEW_SHOTS_DIR", "/tmp")
COACH = "You are a strength coach. Answer from the excerpts and cite them like [1].\nKeep answers short."
TERSE = ("You are a strength coach. Answer from the excerpts and cite them like [1].\n"
         "Answer in {language}, in three sentences at most.\nEnd with one safety tip.")


@pytest.fixture
def operator_page(browser, live_asgi):
    DemoSetup()._groups()  # the Operators group's real permissions
    operator = TrainerFactory.create(username="ops")
    operator.groups.set([Group.objects.get(name="Operators")])
    page = browser.new_page(viewport={"width": 1500, "height": 1100})
    page.goto(live_asgi.url + "/admin/login/")
    page.fill("#id_username", "ops")
    page.fill("#id_password", "trainer-password")
    page.click("input[type=submit]")
    return page


def answers_shown(page) -> int:
    cells = page.locator("#results-table tbody td.answers").all_inner_texts()
    return sum(int(c) for c in cells)


def test_an_operator_creates_starts_and_watches_an_experiment_live(operator_page, browser, live_asgi, kb):
    page = operator_page
    prompt_version_create(name="coach", system_prompt=COACH, labels=[PRODUCTION])
    prompt_version_create(name="coach", system_prompt=TERSE)

    page.goto(live_asgi.url + "/admin/experiments/experiment/add/")
    page.fill("#id_name", "terse-answers")
    page.get_by_label("thumbs-down rate").check()
    page.get_by_label("latency p95").check()
    for n, (name, version, control) in enumerate([("coach", "coach v1", True), ("terse", "coach v2", False)]):
        page.fill(f"#id_arms-{n}-name", name)
        page.select_option(f"#id_arms-{n}-prompt_version", label=version)
        if control:
            page.check(f"#id_arms-{n}-is_control")
    page.click("input[name=_continue]")
    expect(page.locator(".messagelist")).to_contain_text("was added successfully")

    page.get_by_role("button", name="Start").click()
    expect(page.locator("#experiment-status")).to_have_text("Running")
    expect(page.locator("#results-table tbody tr")).to_have_count(2)
    page.evaluate("window.notReloaded = true")
    assert answers_shown(page) == 0

    visitor_asks(browser, live_asgi.url, "How do I do a push-up?")
    page.wait_for_function("() => [...document.querySelectorAll('#results-table td.answers')]"
                           ".reduce((n, td) => n + Number(td.textContent), 0) === 1", timeout=20000)
    assert page.evaluate("window.notReloaded") is True

    # A few hundred more answers over the last hour and a half, as if the operator came back later.
    Experiment.objects.filter(name="terse-answers").update(started_at=timezone.now() - timedelta(minutes=95))
    experiment = Experiment.objects.get(name="terse-answers")
    answers(experiment, "coach", 400, up=120, down=20, spread_minutes=90)
    answers(experiment, "terse", 400, up=172, down=18, spread_minutes=90)
    expect(page.locator("#verdicts li[data-arm=terse]")).to_contain_text("winning", timeout=20000)
    expect(page.locator("#results-table tbody tr[data-arm=terse] td[data-metric=thumbs_up_rate]")).to_contain_text(
        re.compile(r"^4[23]\.\d%"))  # 172 of 400 or 401 (the visitor above may have landed here)
    assert page.evaluate("Chart.getChart('primary-chart').data.datasets.length") == 2
    assert page.evaluate("window.notReloaded") is True
    page.screenshot(path=f"{SHOTS}/admin-experiment-results.png", full_page=True)

    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Declare terse the winner").click()
    expect(page.locator(".messagelist")).to_contain_text("production is coach v2")


def test_an_operator_compares_two_versions_and_moves_production(operator_page, live_asgi):
    page = operator_page
    prompt_version_create(name="coach", system_prompt=COACH, labels=[PRODUCTION])
    v2 = prompt_version_create(name="coach", system_prompt=TERSE)

    page.goto(live_asgi.url + f"/admin/experiments/promptversion/{v2.pk}/change/")
    expect(page.locator(".prompt-diff .add").first).to_contain_text("Answer in {language}")
    expect(page.locator(".prompt-diff .remove")).to_contain_text("Keep answers short.")
    page.get_by_role("button", name="Move “production” here").click()
    expect(page.locator(".messagelist")).to_contain_text("The production label now points at coach v2")
    expect(page.locator("#prompt-history")).to_contain_text("ops")
    page.screenshot(path=f"{SHOTS}/admin-prompt-diff.png", full_page=True)
