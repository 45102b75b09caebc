from django.apps import AppConfig


class ChatConfig(AppConfig):
    name = "chat"

    def ready(self) -> None:
        from monitoring.health import register_check

        from .llm.gateway import breaker_health_check

        register_check("llm", breaker_health_check)
        from . import openapi, receivers  # noqa: F401  (the visitor-token scheme for the schema; signal receivers)
