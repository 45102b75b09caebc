import os
import subprocess
import sys

import pytest


@pytest.mark.parametrize(("name", "value", "message"), [
    ("DATABASE_URL", "sqlite:///db.sqlite3", "must point at PostgreSQL"),
    ("EMBEDDING_BACKEND", "magic", "EMBEDDING_BACKEND must be"),
    ("REDIS_URL", "http://nope", "REDIS_URL must be"),
    ("LLM_MAX_RETRIES", "many", "invalid literal"),
])
def test_settings_fail_loudly_on_bad_values(name, value, message):
    env = dict(os.environ, **{name: value})
    result = subprocess.run([sys.executable, "-c", "import django; from django.conf import settings; settings.DEBUG"],
                            env=env, capture_output=True, text=True)
    assert result.returncode != 0 and message in result.stderr
