"""Staff sign-ins are throttled with lockout (django-axes): the admin login and HTTP Basic auth on the staff
APIs count failures together, a locked-out client is refused even with the right password, until the
cool-off has passed."""

from __future__ import annotations

import base64

import httpx
import pytest
from axes.models import AccessAttempt
from django.test import Client

from tests.factories import OperatorFactory

pytestmark = pytest.mark.django_db

PASSWORD = "operator-password"
SOURCES = "/api/v1/knowledge/sources/"


@pytest.fixture(autouse=True)
def _three_failures(settings):
    settings.AXES_FAILURE_LIMIT = 3


@pytest.fixture
def operator():
    return OperatorFactory.create(username="ops")


def sign_in(client: Client, password: str):
    return client.post("/admin/login/?next=/admin/", {"username": "ops", "password": password})


def basic(client: Client, password: str):
    credentials = base64.b64encode(f"ops:{password}".encode()).decode()
    return client.get(SOURCES, HTTP_AUTHORIZATION=f"Basic {credentials}")


def cool_off_passes(settings) -> None:
    AccessAttempt.objects.update(attempt_time=AccessAttempt.objects.get().attempt_time - settings.AXES_COOLOFF_TIME)


def test_the_admin_login_locks_out_after_the_failure_limit_until_the_cool_off(client, operator, settings):
    failures = [sign_in(client, "wrong").status_code for _ in range(3)]

    assert failures == [200, 200, 429]  # the login form again, then the lockout page
    assert sign_in(client, PASSWORD).status_code == 429
    assert client.get("/admin/").status_code == 302  # still signed out

    cool_off_passes(settings)
    assert sign_in(client, PASSWORD).status_code == 302
    assert client.get("/admin/").status_code == 200


def test_basic_auth_locks_out_after_the_failure_limit_with_a_retry_after(client, operator, settings):
    assert basic(client, PASSWORD).status_code == 200

    failures = [basic(client, "wrong").status_code for _ in range(3)]
    refused = basic(client, PASSWORD)

    assert failures[0] == failures[1] == 403 and failures[2] == 429  # 403: the API's first scheme is the session
    cool_off = settings.AXES_COOLOFF_TIME.total_seconds()
    assert refused.status_code == 429 and refused.json()["retry_after"] == int(refused["Retry-After"]) == cool_off
    cool_off_passes(settings)
    assert basic(client, PASSWORD).status_code == 200


def test_failures_on_the_api_and_the_admin_login_count_together(client, operator):
    basic(client, "wrong")
    basic(client, "wrong")

    assert sign_in(client, "wrong").status_code == 429
    assert sign_in(client, PASSWORD).status_code == 429


def test_a_success_before_the_limit_starts_the_count_again(client, operator):
    sign_in(client, "wrong")
    sign_in(client, "wrong")
    assert sign_in(client, PASSWORD).status_code == 302
    client.logout()

    assert [sign_in(client, "wrong").status_code for _ in range(2)] == [200, 200]


@pytest.mark.django_db(transaction=True)
def test_the_lockout_holds_on_the_real_asgi_server(live_asgi, settings):
    settings.AXES_FAILURE_LIMIT = 2
    OperatorFactory.create(username="ops")

    with httpx.Client(base_url=live_asgi.url) as browser:
        def sign_in_over_http(password: str) -> int:
            browser.get("/admin/login/")
            form = {"username": "ops", "password": password, "csrfmiddlewaretoken": browser.cookies["csrftoken"]}
            return browser.post("/admin/login/?next=/admin/", data=form).status_code

        assert [sign_in_over_http("wrong") for _ in range(2)] == [200, 429]
        assert sign_in_over_http(PASSWORD) == 429
