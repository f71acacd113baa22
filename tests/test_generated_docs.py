"""The generated documentation pages (twin/docgen.py) are what the code generates now: a change to
the parser, the scenario models or the CSV columns without `python -m twin.docgen` fails here."""

import argparse
import subprocess
import sys

import pytest

from twin.docgen import PAGES, ROOT, generate, stale_pages, write_pages


@pytest.mark.parametrize("page", sorted(PAGES))
def test_the_checked_in_page_is_what_the_code_generates(page):
    path = ROOT / page
    assert path.is_file(), f"{page} is missing: run `python -m twin.docgen`"
    assert path.read_text(encoding="utf-8") == generate(page), f"{page} is stale: run `python -m twin.docgen`"


def test_check_lists_stale_pages_and_writing_fixes_them(tmp_path):
    assert stale_pages(tmp_path) == sorted(PAGES, key=list(PAGES).index)  # none there yet
    assert write_pages(tmp_path) == list(PAGES)
    assert stale_pages(tmp_path) == []
    page = tmp_path / "docs" / "cli.md"
    page.write_text(page.read_text() + "a hand edit\n")
    assert stale_pages(tmp_path) == ["docs/cli.md"]
    assert write_pages(tmp_path) == ["docs/cli.md"] and stale_pages(tmp_path) == []


def test_python_m_twin_docgen_check_exits_0_on_a_fresh_tree():
    proc = subprocess.run([sys.executable, "-m", "twin.docgen", "--check"], capture_output=True, text=True, cwd=ROOT)
    assert (proc.returncode, proc.stderr) == (0, "")


def test_the_cli_reference_names_every_command_and_option():
    from twin.cli import build_parser
    text = generate("docs/cli.md")
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, command in sub.choices.items():
        assert f"### `twin {name}`" in text
        section = text.split(f"### `twin {name}`", 1)[1].split("\n### ", 1)[0]
        for action in command._actions:
            for option in action.option_strings:
                assert f"`{option}`" in section, (name, option)
            if action.help:
                assert action.help.replace("|", "\\|").split("<")[0] in section, (name, action.dest)


def test_the_scenario_reference_lists_every_field_with_its_default():
    from tests.test_jsonschema import model_paths
    from twin.scenario.schema import Scenario
    text = generate("docs/scenario-reference.md")
    missing = sorted(p for p in model_paths(Scenario) if f"| `{p.replace('dead_tiles.', 'dead_tiles[].')}` |"
                     not in text)
    assert missing == []
    assert "| `duration` | duration ([units](#quantities)) | `1 y` |" in text  # a unit string, not nanoseconds
