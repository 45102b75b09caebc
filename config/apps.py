from django.contrib.admin.apps import AdminConfig


class SpotterAdminConfig(AdminConfig):
    """Django's admin app with Spotter's site (config/admin.py), loaded once the models are."""

    default_site = "config.admin.SpotterAdminSite"
