"""First start of the embedded default: an admin user and an API key, written once to
``var/credentials.txt`` (mode 600) so later starts can point to them.

The file also holds what Flower's basic auth needs (user ``admin``): the admin's password
from the first start, or, when the file was lost while the admin user exists (its password is
then unknown), a password of Flower's own, made here and kept in a new file.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from jobs.auth import api_key_create

FLOWER_USER = "admin"
FLOWER_LINE = "Flower password"  # its line in credentials.txt, when it has its own


def credentials_path() -> Path:
    return settings.VAR_DIR / "credentials.txt"


def flower_password(text: str) -> str | None:
    """Flower's password in the text of credentials.txt: its own line, else the admin's."""
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    fields = {name.strip(): value.strip() for name, value in fields.items()}
    return fields.get(FLOWER_LINE) or fields.get("Password") or None


def write_private(path: Path, text: str) -> None:
    """Replace the file with text, readable by its owner only from its first byte on."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(text)
    tmp.chmod(0o600)  # a leftover tmp file keeps its mode through O_CREAT
    tmp.replace(path)


class Command(BaseCommand):
    help = "Create the admin user and its API key on first start (embedded default)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--username", default="admin")

    def handle(self, *args: Any, **options: Any) -> None:
        path = credentials_path()
        User = get_user_model()
        if not User.objects.filter(is_superuser=True).exists():
            password = secrets.token_urlsafe(12)
            user = User.objects.create_superuser(options["username"], "", password)
            _, key = api_key_create(user=user, name="first start")
            text = f"Admin user:  {user.username}\nPassword:    {password}\nAPI key:     {key}\n"
            write_private(path, text)
            self.stdout.write(text)
            return
        if path.exists():
            text = path.read_text()
            path.chmod(0o600)
        else:
            text = (
                "Admin user exists; its password is not kept here "
                "(python manage.py changepassword NAME to set one).\n"
                "New API key: python manage.py create_api_key --user NAME\n"
            )
        if flower_password(text) is None:
            # Flower never starts open: without a known password, it gets one of its own.
            text += f"{FLOWER_LINE}: {secrets.token_urlsafe(12)}\n"
            write_private(path, text)
        self.stdout.write(text)
