from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.utils import timezone

from monitoring.rollups import rollups_rebuild


class Command(BaseCommand):
    help = ("Recompute the dashboard's rollups of the last DAYS days up to yesterday (UTC) from the raw answer "
            "facts (after loading facts in bulk, or for facts written before rollups existed); today's rows are "
            "the live answers' own.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--days", type=int, default=30)

    def handle(self, *args: Any, days: int, **options: Any) -> None:
        until = timezone.now()
        rollups_rebuild(since=until - timedelta(days=days), until=until)
        self.stdout.write(f"rollups of the {days} days before today rebuilt from the raw facts")
