import pytest
from django.test import Client

from chat.llm import gateway


@pytest.mark.django_db
def test_readyz_reports_database_redis_and_llm(settings):
    response = Client().get("/readyz")
    assert response.status_code == 200
    checks = response.json()["checks"]
    assert checks["database"]["ok"] and "pgvector" in checks["database"]["detail"]
    assert checks["redis"]["ok"] and checks["llm"]["ok"]


@pytest.mark.django_db
def test_readyz_is_503_when_redis_is_down(settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    response = Client().get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["redis"]["ok"] is False


@pytest.mark.django_db
def test_readyz_is_503_while_the_llm_breaker_is_open(settings):
    settings.OPENAI_BASE_URL = "http://127.0.0.1:9/v1"
    for _ in range(settings.LLM_BREAKER_FAILURES):
        gateway._breaker.record_failure()
    response = Client().get("/readyz")
    assert response.status_code == 503 and "open" in response.json()["checks"]["llm"]["detail"]


def test_healthz_answers_without_dependencies():
    assert Client().get("/healthz").json() == {"status": "ok"}
