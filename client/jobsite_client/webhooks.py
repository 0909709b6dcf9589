"""Checking that a webhook came from your Jobsite server: Standard Webhooks signatures
(``webhook-id``, ``webhook-timestamp``, ``webhook-signature``), verified by the scheme's
reference library against your secret (``GET /api/v1/webhooks/secret``)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from jobsite_client import errors


class InvalidSignature(errors.JobsiteError):
    """The body was not signed with this secret, was changed, or is too old (5 minutes)."""


class Webhooks:
    def verify(self, headers: Mapping[str, str], body: bytes | str, secret: str) -> dict[str, Any]:
        """The event, once its signature is checked: pass the request's headers and raw body
        as received (before any JSON parsing). Raises ``InvalidSignature``."""
        lowered = {k.lower(): v for k, v in headers.items()}
        payload = body.decode() if isinstance(body, bytes) else body
        try:
            Webhook(secret).verify(payload, lowered)
        except WebhookVerificationError as exc:
            raise InvalidSignature(str(exc) or "bad signature", code="invalid_signature") from None
        return json.loads(payload)
