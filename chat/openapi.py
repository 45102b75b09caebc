"""How the visitor token appears in the OpenAPI schema (drf-spectacular finds it once this is imported)."""

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class VisitorTokenScheme(OpenApiAuthenticationExtension):
    target_class = "chat.visitors.VisitorTokenAuthentication"
    name = "visitorToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "apiKey", "in": "header", "name": "X-Visitor-Token"}
