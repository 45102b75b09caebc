import json
import os

from django.conf import settings
from django.contrib.auth.models import User
from django.core.management.base import BaseCommand
from tqdm import tqdm

from chat.roles import OPERATORS, TRAINERS, role_group, roles_sync
from experiments.models import PRODUCTION, PromptVersion
from experiments.services import prompt_version_create
from knowledge.services import source_ingest, source_upsert

DEMO_DIR = settings.BASE_DIR / "demo"
PROMPT_NAME = "coach"

# The roles (groups and their permissions) are chat/roles.py's, made by a migration.
DEMO_USERS = [("admin", None, True), ("trainer", TRAINERS, False), ("operator", OPERATORS, False)]
PUBLISHED_PASSWORD = "spotter-demo"  # in the README
FIRST_SUPERUSER_HINT = (
    "No superuser exists yet: create the first one with `make superuser` (or `python manage.py createsuperuser`), "
    "then sign in at /admin/ and add trainers and operators to their groups."
)


class Command(BaseCommand):
    help = "Load the demo knowledge base and prompt; in demo mode (settings.DEMO) the demo logins too (idempotent)."

    def add_arguments(self, parser):
        parser.add_argument("--skip-knowledge", action="store_true", help="logins and prompt only")

    def handle(self, *args, skip_knowledge=False, **options):
        password = os.environ.get("DEMO_PASSWORD", PUBLISHED_PASSWORD)
        if settings.DEMO:
            self._demo_logins(password)
        else:
            self._demo_logins_closed({password, PUBLISHED_PASSWORD})
        if not PromptVersion.objects.filter(name=PROMPT_NAME).exists():
            prompt_version_create(name=PROMPT_NAME, system_prompt=(DEMO_DIR / "prompt.md").read_text().strip(),
                                  labels=[PRODUCTION])
        if not skip_knowledge:
            self._knowledge()
        if not User.objects.filter(is_superuser=True, is_active=True).exists():
            self.stdout.write(self.style.WARNING(FIRST_SUPERUSER_HINT))

    def _demo_logins(self, password: str) -> None:
        for username, group, superuser in DEMO_USERS:
            self._user(username, password, group, superuser)
        self.stdout.write(f"demo logins (password '{password}'): {', '.join(u for u, _, _ in DEMO_USERS)}")

    def _demo_logins_closed(self, passwords: set[str]) -> None:
        """A server that was a demo before keeps no login anyone can look up."""
        for user in User.objects.filter(username__in=[u for u, _, _ in DEMO_USERS]):
            if any(user.check_password(p) for p in passwords):
                user.set_unusable_password()
                user.save(update_fields=["password"])
                self.stdout.write(self.style.WARNING(f"demo login '{user.username}' closed: not in demo mode"))

    def _knowledge(self) -> None:
        mapping = json.loads((DEMO_DIR / "exercises.mapping.json").read_text())
        source = source_upsert(
            name="free-exercise-db", uri=str(DEMO_DIR / "free-exercise-db" / "exercises.json"), mapping=mapping,
            tags=["exercise"],
        )
        with tqdm(desc="knowledge base", unit="doc") as bar:

            def progress(done: int, total: int) -> None:
                bar.update(done - bar.n)

            report = source_ingest(source_id=source.pk, progress=progress)
        self.stdout.write(
            f"knowledge base: {report.created} new, {report.updated} changed, {report.unchanged} unchanged"
        )

    def _groups(self) -> None:
        """The roles as chat/roles.py defines them, for tests whose database was flushed since migrating."""
        roles_sync()

    def _user(self, username: str, password: str, group: str | None, superuser: bool) -> None:
        user, created = User.objects.get_or_create(
            username=username,
            defaults={"is_staff": True, "is_superuser": superuser, "email": f"{username}@example.com"},
        )
        if created:
            user.set_password(password)
            user.save()
        if group:
            user.groups.add(role_group(group))
