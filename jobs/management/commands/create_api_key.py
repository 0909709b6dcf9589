"""``python manage.py create_api_key --user NAME``: the new key, alone on the last line."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from jobs.auth import api_key_create


class Command(BaseCommand):
    help = "Create an API key for a user (created if needed); prints the key once."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--user", required=True, help="Username (created if missing).")
        parser.add_argument("--name", default="", help="A label for the key.")

    def handle(self, *args: Any, **options: Any) -> None:
        user, created = get_user_model().objects.get_or_create(username=options["user"])
        if created:
            user.set_unusable_password()
            user.save(update_fields=["password"])
            self.stderr.write(f"Created user {user.username}")
        api_key, key = api_key_create(user=user, name=options["name"])
        self.stderr.write(
            f"API key jsk_{api_key.prefix}… for {user.username}; it is shown only now:"
        )
        self.stdout.write(key)
