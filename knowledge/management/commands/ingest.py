import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from knowledge.services import IngestError, json_file_ingest


class Command(BaseCommand):
    help = "Ingest JSON records into the knowledge base (unchanged documents are skipped)."

    def add_arguments(self, parser):
        parser.add_argument("path", type=Path)
        parser.add_argument("--mapping", type=Path, required=True, help="JSON field mapping file")
        parser.add_argument("--source", help="source name (default: the file name)")

    def handle(self, *args, path: Path, mapping: Path, source: str | None, **options):
        try:
            field_mapping = json.loads(mapping.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise CommandError(f"cannot read mapping {mapping}: {exc}") from exc
        bar = tqdm(desc=f"ingest {path.name}", unit="doc", disable=options["verbosity"] == 0)
        try:
            report = json_file_ingest(
                path=path, mapping=field_mapping, source_name=source or path.name, progress=bar.update
            )
        except IngestError as exc:
            raise CommandError(str(exc)) from exc
        finally:
            bar.close()
        self.stdout.write(
            f"{path.name}: {report.created} created, {report.updated} updated, "
            f"{report.unchanged} unchanged, {report.chunks_written} chunks written"
        )
