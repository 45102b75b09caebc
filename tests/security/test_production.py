"""Production settings: a deployment starts only with a secret key of its own, passes Django's deploy checks,
sends its cookies over HTTPS only; demo logins exist only in demo mode."""

from __future__ import annotations

import io
import os
import secrets
import subprocess
import sys

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import User
from django.core.management import call_command

from config.secret_key import PUBLISHED_KEYS, local_key

MANAGE = os.path.join(django_settings.BASE_DIR, "manage.py")
# DJANGO_ALLOW_ASYNC_UNSAFE: the browser tests set it in this process; no deployment has it.
CHOSEN = {"DEBUG", "DEMO", "HOST", "SECRET_KEY", "ALLOWED_HOSTS", "BEHIND_PROXY", "DJANGO_ALLOW_ASYNC_UNSAFE"}
PRODUCTION = {"DEBUG": "0", "DEMO": "0", "SECRET_KEY": secrets.token_urlsafe(50),
              "ALLOWED_HOSTS": "spotter.example.com", "BEHIND_PROXY": "1"}
READ_SETTINGS = ("from django.conf import settings as s; print(s.DEMO, s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE,"
                 " s.SECURE_SSL_REDIRECT, s.SECURE_HSTS_SECONDS > 0)")


def run(args: list[str], **env: str) -> subprocess.CompletedProcess:
    """A fresh process with these settings only: the test run's own (demo) choices removed."""
    base = {k: v for k, v in os.environ.items() if k not in CHOSEN}
    return subprocess.run(args, env={**base, **env}, capture_output=True, text=True, cwd=django_settings.BASE_DIR,
                          timeout=120)


def test_a_deployment_passes_djangos_deploy_checks_without_a_warning():
    result = run([sys.executable, MANAGE, "check", "--deploy", "--fail-level", "WARNING"], **PRODUCTION)

    assert result.returncode == 0, result.stderr[-3000:]
    assert "no issues" in result.stdout


@pytest.mark.parametrize(("env", "message"), [
    ({"DEMO": "0"}, "SECRET_KEY is not set"),
    ({"HOST": "0.0.0.0"}, "SECRET_KEY is not set"),
    ({"ALLOWED_HOSTS": "spotter.example.com"}, "SECRET_KEY is not set"),
    ({"DEMO": "0", "SECRET_KEY": next(iter(PUBLISHED_KEYS))}, "the key published with Spotter's code"),
])
def test_start_up_is_refused_without_a_secret_key_of_its_own_outside_demo_mode(env, message):
    result = run([sys.executable, MANAGE, "check"], DEBUG="0", **env)

    assert result.returncode != 0 and message in result.stderr


def test_a_deployment_keeps_its_cookies_to_https_and_a_demo_does_not():
    deployment = run([sys.executable, "-c", READ_SETTINGS], HOST="0.0.0.0", SECRET_KEY=PRODUCTION["SECRET_KEY"])
    demo = run([sys.executable, "-c", READ_SETTINGS])

    assert deployment.stdout.split() == ["False", "True", "True", "True", "True"], deployment.stderr[-2000:]
    assert demo.stdout.split() == ["True", "False", "False", "False", "False"], demo.stderr[-2000:]


def test_a_demo_makes_its_secret_key_once_and_keeps_it_private(tmp_path):
    path = tmp_path / "var" / "secret_key"

    first, again = local_key(path), local_key(path)

    assert first == again and len(first) >= 50 and first not in PUBLISHED_KEYS
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert [p.name for p in path.parent.iterdir()] == ["secret_key"]


@pytest.mark.django_db
def test_outside_demo_mode_no_demo_login_exists_and_the_first_superuser_is_asked_for(settings):
    settings.DEMO = False
    out = io.StringIO()

    call_command("demo_setup", "--skip-knowledge", stdout=out)

    assert not User.objects.exists()
    assert "make superuser" in out.getvalue() and "spotter-demo" not in out.getvalue()


@pytest.mark.django_db
def test_in_demo_mode_the_demo_logins_are_made(settings):
    settings.DEMO = True
    out = io.StringIO()

    call_command("demo_setup", "--skip-knowledge", stdout=out)

    assert User.objects.get(username="admin").check_password("spotter-demo")
    assert User.objects.get(username="trainer").groups.get().name == "Trainers"
    assert "make superuser" not in out.getvalue()


@pytest.mark.django_db
def test_a_server_that_was_a_demo_closes_the_demo_logins_when_it_is_not_one_any_more(settings):
    settings.DEMO = True
    call_command("demo_setup", "--skip-knowledge", stdout=io.StringIO())
    User.objects.create_superuser("owner", password="a long secret of the owner's")
    settings.DEMO = False
    out = io.StringIO()

    call_command("demo_setup", "--skip-knowledge", stdout=out)

    assert not any(user.has_usable_password() for user in User.objects.filter(username__in=["admin", "trainer"]))
    assert User.objects.get(username="owner").check_password("a long secret of the owner's")
    assert "demo login 'admin' closed" in out.getvalue() and "make superuser" not in out.getvalue()
