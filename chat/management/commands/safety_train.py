"""Retrain the offline injection detector and moderation classifier into chat/safety/trained/."""

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from chat.safety import train


class Command(BaseCommand):
    help = "Train the offline safety classifiers (seeded: the same data gives the same artefacts)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--data", type=Path, default=train.DATA, help="the shared data folder")
        parser.add_argument("--out", type=Path, default=train.TRAINED)

    def handle(self, *args: Any, data: Path, out: Path, **options: Any) -> None:
        for name, path in train.train_all(data, out).items():
            self.stdout.write(f"{name}: {path}.json, {path}.npz")
