"""The firmware sees only what the probe reads and its own configuration."""

import ast
from pathlib import Path

FIRMWARE = Path(__file__).resolve().parents[1] / "firmware_model"


def imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_firmware_imports_neither_simpy_nor_twin():
    files = sorted(FIRMWARE.rglob("*.py"))
    assert len(files) >= 4
    for path in files:
        forbidden = imported_modules(path) & {"simpy", "twin", "torch"}
        assert not forbidden, f"{path.name} imports {forbidden}"
