"""An owner's webhook secret and the signatures it makes (the Standard Webhooks scheme).

``webhook-signature`` is ``v1,`` and the base64 HMAC-SHA256 of ``id.timestamp.body``; the
``standardwebhooks`` package (the scheme's reference library) computes it, so what we
send is what its verifiers accept. After a rotation both secrets sign, space-separated,
as the scheme allows, until the grace period ends.
"""

from __future__ import annotations

import base64
import secrets
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from jobs.models import WebhookSecret

PREFIX = "whsec_"


def new_secret() -> str:
    """32 random bytes, as the scheme writes secrets."""
    return PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def secret_for(owner_id: Any) -> WebhookSecret:
    """The owner's secret, made on first use (two first uses at once agree on one)."""
    found = WebhookSecret.objects.filter(owner_id=owner_id).first()
    if found is not None:
        return found
    try:
        with transaction.atomic():
            return WebhookSecret.objects.create(owner_id=owner_id, secret=new_secret())
    except IntegrityError:
        return WebhookSecret.objects.get(owner_id=owner_id)


def rotate(owner_id: Any) -> WebhookSecret:
    """A new secret; the one it replaces keeps signing for ``JOBSITE_WEBHOOK_SECRET_GRACE``
    seconds, so receivers can switch without rejecting a delivery."""
    secret_for(owner_id)
    with transaction.atomic():
        record = WebhookSecret.objects.select_for_update().get(owner_id=owner_id)
        record.previous = record.secret
        record.previous_until = timezone.now() + timedelta(
            seconds=settings.JOBSITE_WEBHOOK_SECRET_GRACE
        )
        record.secret = new_secret()
        record.save(update_fields=["secret", "previous", "previous_until"])
    return record


def signing_secrets(record: WebhookSecret, at: datetime) -> list[str]:
    """The secrets that sign at ``at``: the current one, and the previous in its grace."""
    keys = [record.secret]
    if record.previous and record.previous_until and record.previous_until > at:
        keys.append(record.previous)
    return keys


def headers(record: WebhookSecret, message_id: str, at: datetime, body: str) -> dict[str, str]:
    """The three Standard Webhooks headers of one attempt."""
    signatures = [Webhook(key).sign(message_id, at, body) for key in signing_secrets(record, at)]
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": " ".join(signatures),
    }
