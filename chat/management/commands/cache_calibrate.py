"""Calibrate the answer cache's precision guard for a target precision.

    manage.py cache_calibrate --file labelled.csv --target 0.99   # CSV: text,category
    manage.py cache_calibrate --target 0.99                       # from approved answers and the cache

The newest calibration is what the cache uses (within 30 s in every process).
"""

import csv
from pathlib import Path

import numpy as np
from django.core.management.base import BaseCommand, CommandError

from chat.models import CacheCalibration, CacheEntry
from chat.reuse.calibration import calibrate, leave_one_out
from knowledge.embeddings import embed_texts
from review.models import ApprovedAnswer

MIN_LABELLED = 50


class Command(BaseCommand):
    help = "Compute the precision guard's thresholds from labelled questions (leave-one-out)."

    def add_arguments(self, parser):
        parser.add_argument("--file", type=Path, help="CSV with columns text,category")
        parser.add_argument("--target", type=float, default=0.99, help="precision to reach (default 0.99)")
        parser.add_argument("--dry-run", action="store_true", help="print, do not store")

    def handle(self, *args, file=None, target=0.99, dry_run=False, **options):
        if not 0.5 <= target < 1:
            raise CommandError("--target must be at least 0.5 and below 1")
        questions, answers, source = self._from_file(file) if file else self._from_database()
        if len(questions) < MIN_LABELLED:
            raise CommandError(f"{len(questions)} labelled questions; at least {MIN_LABELLED} are needed")
        vectors = np.array(embed_texts(questions), dtype=np.float32)
        try:
            result = calibrate(leave_one_out(vectors, questions, answers), target)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            f"{result.labelled} questions from {source}: precision {result.precision:.4f} at hit rate "
            f"{result.hit_rate:.3f} with {result.params.as_dict()}"
        )
        if not dry_run:
            CacheCalibration.objects.create(
                params=result.params.as_dict(), target_precision=target, precision=result.precision,
                hit_rate=result.hit_rate, labelled=result.labelled, source=source[:300],
            )
            self.stdout.write(self.style.SUCCESS("stored; the cache uses it from now on"))

    def _from_file(self, path: Path) -> tuple[list[str], list[str], str]:
        try:
            with path.open(newline="", encoding="utf-8-sig") as handle:
                rows = list(csv.DictReader(handle))
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            raise CommandError(f"cannot read {path}: {exc}") from exc
        if not rows or not {"text", "category"} <= set(rows[0]):
            raise CommandError(f"{path}: a CSV with the columns text,category is needed")
        rows = [r for r in rows if r["text"].strip() and r["category"].strip()]
        return [r["text"] for r in rows], [r["category"] for r in rows], str(path)

    def _from_database(self) -> tuple[list[str], list[str], str]:
        """Approved answers (each its own answer) and cache entries not blocked (grouped by answer)."""
        approved = list(ApprovedAnswer.objects.filter(is_active=True).values_list("question", "pk"))
        cached = list(CacheEntry.objects.filter(blocked_at__isnull=True).values_list("question", "answer_key"))
        pairs = [(q, f"approved:{pk}") for q, pk in approved] + [(q, f"cache:{key}") for q, key in cached]
        return [q for q, _ in pairs], [a for _, a in pairs], "approved answers and cache entries"
