"""Fixtures of the experiments tests: an operator signed in with the permissions demo_setup gives."""

import pytest
from django.contrib.auth.models import Group
from django.test import Client

from chat.management.commands.demo_setup import Command as DemoSetup
from experiments.assignment import forget_running_experiments
from tests.factories import TrainerFactory


@pytest.fixture(autouse=True)
def _fresh_running_experiments():
    forget_running_experiments()
    yield
    forget_running_experiments()


@pytest.fixture
def operator(db):
    DemoSetup()._groups()
    user = TrainerFactory.create(username="ops")
    user.groups.set([Group.objects.get(name="Operators")])
    return user


@pytest.fixture
def operator_client(operator) -> Client:
    client = Client()
    client.force_login(operator)
    return client
