from django.apps import AppConfig


class ExperimentsConfig(AppConfig):
    name = "experiments"

    def ready(self) -> None:
        from . import services  # noqa: F401  (connects the receivers that forget the cached prompt)
