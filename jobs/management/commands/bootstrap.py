"""First start of the embedded default: an admin user and an API key, written once to
``var/credentials.txt`` (mode 600) so later starts can point to them."""

from __future__ import annotations

import secrets
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from jobs.services import api_key_create


class Command(BaseCommand):
    help = "Create the admin user and its API key on first start (embedded default)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--username", default="admin")

    def handle(self, *args: Any, **options: Any) -> None:
        path = settings.VAR_DIR / "credentials.txt"
        User = get_user_model()
        if User.objects.filter(is_superuser=True).exists():
            if path.exists():
                self.stdout.write(path.read_text())
            else:
                self.stdout.write(
                    "Admin user exists. New API key: python manage.py create_api_key --user NAME\n"
                )
            return
        password = secrets.token_urlsafe(12)
        user = User.objects.create_superuser(options["username"], "", password)
        _, key = api_key_create(user=user, name="first start")
        text = f"Admin user:  {user.username}\nPassword:    {password}\nAPI key:     {key}\n"
        path.write_text(text)
        path.chmod(0o600)
        self.stdout.write(text)
