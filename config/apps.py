from django.contrib.admin.apps import AdminConfig


class SpotterAdminConfig(AdminConfig):
    """Django's admin app with Spotter's site (config/admin.py), loaded once the models are."""

    default_site = "config.admin.SpotterAdminSite"

    def ready(self) -> None:
        super().ready()
        from . import admin_audit, audit  # the audit log: what it records, and its read-only admin

        audit.audit_register_models()
        admin_audit.register()
