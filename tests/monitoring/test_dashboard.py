"""The dashboard's JSON: what the page polls; only for staff who may read monitoring, bad input a 400."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from django.test import Client

from chat.management.commands.demo_setup import Command as DemoSetup
from tests.factories import TrainerFactory

pytestmark = pytest.mark.django_db


def logged_in(group: str) -> Client:
    DemoSetup()._groups()
    user = TrainerFactory.create()
    user.groups.set([Group.objects.get(name=group)])
    client = Client()
    client.force_login(user)
    return client


def test_an_operator_gets_the_dashboard_as_the_admin_home_and_its_data_as_json():
    client = logged_in("Operators")

    page = client.get("/admin/")
    data = client.get("/admin/dashboard/data/", {"range": "week", "language": "en"})

    assert page.status_code == 200 and b'id="dashboard"' in page.content
    assert data.status_code == 200
    assert len(data.json()["bins"]) == 168 and data.json()["filters"] == {"language": "en"}
    assert client.get("/admin/apps/").status_code == 200  # the usual list of apps stays a click away


def test_bad_ranges_and_filters_get_a_json_400():
    client = logged_in("Operators")

    assert client.get("/admin/dashboard/data/", {"range": "year"}).json()["code"] == "bad_range"
    assert client.get("/admin/dashboard/data/", {"prompt_version_id": "x"}).status_code == 400


def test_a_trainer_without_monitoring_gets_no_data():
    client = logged_in("Trainers")

    assert b'id="dashboard"' not in client.get("/admin/").content
    assert client.get("/admin/dashboard/data/").status_code == 403
