import json
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from knowledge import services
from knowledge.parsers import EXTENSIONS, IngestError, mapping_validate
from knowledge.tasks import ingest_source


class Command(BaseCommand):
    help = (
        "Ingest files or folders into the knowledge base: text, Markdown, HTML, PDF, and CSV/JSON with "
        "--mapping. Each file is one source; unchanged documents are skipped, changed ones re-indexed."
    )

    def add_arguments(self, parser):
        parser.add_argument("paths", nargs="+", type=Path)
        parser.add_argument("--mapping", type=Path, help="JSON field mapping for CSV/JSON files")
        parser.add_argument("--source", help="source name (one file only; default: the file's path)")
        parser.add_argument("--language", default=settings.KNOWLEDGE_DEFAULT_LANGUAGE)
        parser.add_argument("--tag", action="append", default=[], dest="tags", help="tag every document (repeatable)")
        parser.add_argument("--queue", action="store_true", help="hand the work to the Celery worker and return")

    def handle(self, *args, paths, mapping, source, language, tags, queue, **options):
        files = _files(paths)
        if source and len(files) != 1:
            raise CommandError("--source names one source: give exactly one file")
        field_mapping = _read_mapping(mapping) if mapping else None
        quiet = options["verbosity"] == 0
        failures = 0
        for path, name in files:
            try:
                record = services.source_upsert(
                    name=source or name, uri=str(path.resolve()), mapping=field_mapping, language=language, tags=tags
                )
            except IngestError as exc:
                self.stderr.write(f"{name}: failed: {exc}")
                failures += 1
                continue
            if queue:
                ingest_source.delay(record.pk)
                self.stdout.write(f"{name}: queued (source {record.pk})")
                continue
            failures += not self._ingest(record, name, quiet)
        if failures:
            raise CommandError(f"{failures} of {len(files)} files failed (see above; each source row has its error)")

    def _ingest(self, record, name: str, quiet: bool) -> bool:
        bar = tqdm(desc=name[-40:], unit="doc", disable=quiet)

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.n = done
            bar.refresh()

        try:
            report = services.source_ingest(source_id=record.pk, progress=progress)
        except IngestError as exc:
            self.stderr.write(f"{name}: failed: {exc}")
            return False
        finally:
            bar.close()
        self.stdout.write(
            f"{name}: {report.created} new, {report.updated} changed, {report.unchanged} unchanged, "
            f"{report.removed} removed, {report.chunks_written} chunks written"
        )
        for warning in report.warnings:
            self.stderr.write(f"{name}: {warning}")
        return True


def _files(paths: list[Path]) -> list[tuple[Path, str]]:
    """(file, source name) for every file given, and every supported file under the folders given."""
    found: list[tuple[Path, str]] = []
    for path in paths:
        if path.is_dir():
            files = [f for f in sorted(path.rglob("*")) if f.is_file() and _supported(f)]
            found.extend((f, str(f.relative_to(path.parent))) for f in files)
        elif path.is_file():
            found.append((path, path.name))
        else:
            raise CommandError(f"{path}: no such file or folder")
    if not found:
        raise CommandError(f"no supported files found (supported: {', '.join(sorted(EXTENSIONS))})")
    return found


def _supported(path: Path) -> bool:
    return path.suffix.lower() in EXTENSIONS


def _read_mapping(path: Path) -> dict:
    try:
        return mapping_validate(json.loads(path.read_text()))
    except (OSError, json.JSONDecodeError, IngestError) as exc:
        raise CommandError(f"cannot use mapping {path}: {exc}") from exc
