"""``twin schema``: the JSON Schema of scenario files (twin/scenario/jsonschema.py, docs/editor.md)."""

from __future__ import annotations

import argparse
from pathlib import Path

from twin.cli.common import write_data
from twin.log import say

__all__ = ["add_schema"]


def add_schema(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    schema = sub.add_parser("schema", parents=[common],
                            help="write the JSON Schema of scenario files (for editors and validators)",
                            description="Write the JSON Schema (draft 2020-12) of scenario files as users write "
                                        "them (quantities as unit strings) to stdout, or to a file with -o "
                                        "(docs/editor.md).")
    schema.add_argument("-o", "--out", type=Path, metavar="FILE",
                        help="write the schema to FILE (atomically) instead of stdout")
    schema.add_argument("--force", action="store_true", help="overwrite FILE if it exists")
    schema.set_defaults(handler=_schema)


def _schema(args: argparse.Namespace) -> int:
    from twin.atomic import OutputExistsError, atomic_write_text
    from twin.scenario.jsonschema import schema_text
    text = schema_text()
    if args.out is None:
        write_data(text)
        return 0
    if args.out.is_dir():
        raise OutputExistsError(f"--out {args.out} is a folder; name the schema file, e.g. {args.out / 'scenario.schema.json'}")
    if args.out.exists() and not args.force:
        raise OutputExistsError(f"{args.out} exists; pass --force to overwrite it or choose another --out")
    atomic_write_text(args.out, text)
    say(f"schema: {args.out}", event="results", path=str(args.out))
    return 0
