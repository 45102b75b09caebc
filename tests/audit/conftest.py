"""Fixtures of the audit-log tests: the roles' real groups, staff signed in, and the entries for an object."""

from __future__ import annotations

import pytest
from auditlog.models import LogEntry
from django.contrib.auth.models import Permission, User
from django.db.models import Model
from django.test import Client

from chat.management.commands.demo_setup import Command as DemoSetup
from tests.factories import OperatorFactory, TrainerFactory


def entries(obj: Model) -> list[LogEntry]:
    """The audit entries of one object, oldest first."""
    return list(LogEntry.objects.get_for_object(obj).select_related("actor").order_by("timestamp", "pk"))


def signed_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def roles(db) -> None:
    DemoSetup()._groups()  # the Trainers and Operators groups with their real permissions


@pytest.fixture
def operator(roles) -> User:
    return OperatorFactory.create(username="ops")


@pytest.fixture
def trainer(roles) -> User:
    return TrainerFactory.create(username="coach")


@pytest.fixture
def auditor(roles) -> User:
    """An operator who may also read the audit log."""
    user = OperatorFactory.create(username="auditor")
    user.user_permissions.add(Permission.objects.get(codename="view_logentry", content_type__app_label="auditlog"))
    return user
