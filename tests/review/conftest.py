"""Fixtures of the review tests."""

import pytest
from django.test import Client

from chat.management.commands.demo_setup import Command as DemoSetup
from tests.factories import TrainerFactory


@pytest.fixture
def trainer_client() -> Client:
    DemoSetup()._groups()  # the Trainers group's real permissions
    client = Client()
    client.force_login(TrainerFactory.create())
    return client
