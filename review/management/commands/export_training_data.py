"""Write the fine-tuning files: train.jsonl, validation.jsonl and eval.jsonl."""

from collections import Counter
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from review.export import PARTS, TrainingExport, jsonl_lines, training_data_build

FILES = {"train": "train.jsonl", "validation": "validation.jsonl", "eval": "eval.jsonl"}


class Command(BaseCommand):
    help = "Export approved answers as chat-format JSONL for fine-tuning, split, with the evaluation set."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--out", required=True, type=Path, help="directory for the three files")
        parser.add_argument("--validation-share", type=float, default=0.1, help="share held out (default 0.1)")
        parser.add_argument("--seed", type=int, default=0, help="changes which cases are held out")

    def handle(self, *args: Any, out: Path, validation_share: float, seed: int, **options: Any) -> None:
        try:
            export = training_data_build(validation_share=validation_share, seed=seed)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        out.mkdir(parents=True, exist_ok=True)
        for part in PARTS:
            path = out / FILES[part]
            path.write_text("".join(jsonl_lines(lines=export.part(part))), encoding="utf-8")
            self.stdout.write(f"{len(export.part(part)):>6} lines  {path}")
        self._report_skipped(export)

    def _report_skipped(self, export: TrainingExport) -> None:
        reasons = Counter(skip.reason for skip in export.skipped)
        self.stdout.write(f"{len(export.skipped):>6} approved answers skipped")
        for reason, count in reasons.most_common():
            ids = [s.approved_answer_id for s in export.skipped if s.reason == reason]
            self.stdout.write(f"{count:>6}  {reason} (approved answers {', '.join(map(str, ids[:20]))}"
                              f"{', ...' if len(ids) > 20 else ''})")
