import json
import os

from django.conf import settings
from django.contrib.auth.models import Group, Permission, User
from django.core.management.base import BaseCommand
from tqdm import tqdm

from experiments.models import PRODUCTION, PromptVersion
from experiments.services import prompt_version_create
from knowledge.services import source_ingest, source_upsert

DEMO_DIR = settings.BASE_DIR / "demo"
PROMPT_NAME = "coach"

# group -> app labels whose models it may manage (view for chat: trainers read conversations)
GROUP_PERMISSIONS = {
    "Trainers": {"view": ["chat"], "all": ["review"]},
    "Operators": {"view": ["chat", "review"], "all": ["knowledge", "experiments", "monitoring", "django_celery_beat"]},
}
DEMO_USERS = [("admin", None, True), ("trainer", "Trainers", False), ("operator", "Operators", False)]


class Command(BaseCommand):
    help = "Load the demo knowledge base, prompt, groups and logins (idempotent)."

    def add_arguments(self, parser):
        parser.add_argument("--skip-knowledge", action="store_true", help="logins, groups and prompt only")

    def handle(self, *args, skip_knowledge=False, **options):
        self._groups()
        password = os.environ.get("DEMO_PASSWORD", "spotter-demo")
        for username, group, superuser in DEMO_USERS:
            self._user(username, password, group, superuser)
        if not PromptVersion.objects.filter(name=PROMPT_NAME).exists():
            prompt_version_create(name=PROMPT_NAME, system_prompt=(DEMO_DIR / "prompt.md").read_text().strip(),
                                  labels=[PRODUCTION])
        if not skip_knowledge:
            self._knowledge()
        self.stdout.write(f"demo logins (password '{password}'): {', '.join(u for u, _, _ in DEMO_USERS)}")

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
        for name, rules in GROUP_PERMISSIONS.items():
            group, _ = Group.objects.get_or_create(name=name)
            perms = Permission.objects.filter(content_type__app_label__in=rules["all"])
            perms |= Permission.objects.filter(content_type__app_label__in=rules["view"], codename__startswith="view_")
            group.permissions.set(perms)

    def _user(self, username: str, password: str, group: str | None, superuser: bool) -> None:
        user, created = User.objects.get_or_create(
            username=username,
            defaults={"is_staff": True, "is_superuser": superuser, "email": f"{username}@example.com"},
        )
        if created:
            user.set_password(password)
            user.save()
        if group:
            user.groups.add(Group.objects.get(name=group))
