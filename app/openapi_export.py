"""Write the OpenAPI document: ``python -m app.openapi_export openapi.json`` (``make openapi``).

The committed ``openapi.json`` is what the frontend generates its TypeScript client
from; a test fails when it no longer matches the code.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from app.config import load_settings
from app.main import create_app


def openapi_document() -> dict[str, Any]:
    # In-memory SQLite: building the document opens no connection and writes no file.
    app = create_app(load_settings({}, database_url="sqlite+aiosqlite:///:memory:", log_level="WARNING"))
    document: dict[str, Any] = app.openapi_schema.to_schema()
    return document


def render(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    target = Path(argv[1] if len(argv) > 1 else "openapi.json")
    target.write_text(render(openapi_document()), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
