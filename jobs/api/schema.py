"""OpenAPI: tells drf-spectacular how our API keys authenticate, so the docs' Authorize
button works."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "jobs.auth.ApiKeyAuthentication"
    name = "ApiKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "An API key (jsk_…): `Authorization: Bearer <key>`. "
            "`X-API-Key: <key>` works too.",
        }
