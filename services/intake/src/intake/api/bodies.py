"""OpenAPI request bodies of the routes that read their own body (JSON or multipart)."""

from typing import Any

_FILES = {
    "type": "array",
    "items": {"type": "string", "format": "binary"},
    "description": "Screenshots (PNG, JPEG, GIF, WebP), PDFs, logs.",
}

TICKET_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/TicketCreate"}},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["ticket"],
                    "properties": {
                        "ticket": {
                            "type": "string",
                            "description": "The ticket as JSON (TicketCreate).",
                        },
                        "attachments": _FILES,
                    },
                }
            },
        },
    }
}

FILES_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["attachments"],
                    "properties": {"attachments": {**_FILES, "minItems": 1}},
                }
            }
        },
    }
}
