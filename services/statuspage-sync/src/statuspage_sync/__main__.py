"""``python -m statuspage_sync serve|migrate|provision|create-api-key|export``."""

import argparse
import asyncio
import json
import sys
from pathlib import Path

from servicekit.cli import ServiceDefinition, main
from statuspage_sync.api import SCOPES
from statuspage_sync.app import create_app
from statuspage_sync.export import export_all
from statuspage_sync.settings import Settings

SERVICE = ServiceDefinition(
    name="statuspage_sync",
    load_settings=Settings,
    create_app=create_app,
    migrations=Path(__file__).parent / "migrations",
    scopes=SCOPES,
)


def export(argv: list[str]) -> None:
    """``export --output DIR``: write every status page as static files."""
    parser = argparse.ArgumentParser(prog="statuspage_sync export")
    parser.add_argument("--output", required=True, type=Path)
    args = parser.parse_args(argv)
    written = asyncio.run(export_all(Settings(), args.output))
    print(json.dumps({"exported": written, "directory": str(args.output)}))


if __name__ == "__main__":
    if sys.argv[1:2] == ["export"]:
        export(sys.argv[2:])
    else:
        main(SERVICE)
