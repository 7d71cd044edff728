"""DESIGN.md section 1: who may import whom, checked by parsing every module's imports."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "metercom"

# layer -> metercom layers it may import (besides itself)
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "clock": set(),
    "model": {"errors"},
    "codec": {"model", "errors"},
    "transport": {"errors", "clock"},
    "session": {"codec", "model", "transport", "errors", "clock"},
    "sim": {"codec", "model", "transport", "session", "errors", "clock"},
    "service": {"session", "model", "transport", "errors", "clock"},
    # api mounts the dashboard's static files (metercom.web.static_dir); web never imports api.
    "api": {"service", "model", "web", "errors", "clock"},
    "web": {"service", "model", "errors", "clock"},
    "cli": {"service", "model", "sim", "session", "transport", "api", "web", "errors", "clock"},
}
# Third-party modules each layer may use (the standard library is always allowed).
CODEC_IO = {"asyncio", "socket", "serial", "serial_asyncio_fast", "selectors", "threading", "logging.config"}


def _modules() -> list[Path]:
    return sorted(p for p in SRC.rglob("*.py"))


def _layer(path: Path) -> str:
    rel = path.relative_to(SRC)
    return rel.parts[0].removesuffix(".py")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(SRC)))
def test_layer_imports(path: Path) -> None:
    layer = _layer(path)
    if layer == "__init__":
        return
    allowed = ALLOWED.get(layer)
    assert allowed is not None, f"{path}: unknown layer {layer!r}; add it to DESIGN.md and this test"
    for name in _imports(path):
        top = name.split(".")
        if top[0] == "metercom" and len(top) > 1:
            target = top[1]
            assert target == layer or target in allowed, f"{layer} may not import metercom.{target} ({path})"
        if layer == "codec":
            assert top[0] not in CODEC_IO, f"codec must stay pure: {name} in {path}"
            assert name not in CODEC_IO, f"codec must stay pure: {name} in {path}"
            if top[0] == "cryptography":
                assert "dlms" in path.parts, f"only codec/dlms may use cryptography ({path})"
        if layer == "transport":
            assert not (top[0] == "metercom" and len(top) > 1 and top[1] == "codec")
