"""The dashboard's static files without a browser: all there, every module import and page
reference resolves, and nothing is fetched from anywhere but the app itself."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from metercom.web import STATIC_FILES, static_dir

STATIC = static_dir()
ASSETS = sorted(p for p in STATIC.rglob("*") if p.is_file())
STATIC_IMPORT = re.compile(r"""^(?:import|export)\b[^;]*?\bfrom\s*["']([^"']+)["']""", re.MULTILINE)
DYNAMIC_IMPORT = re.compile(r"""\bimport\(\s*["'`]([^"'`]+)["'`]""")


def test_every_listed_file_is_there_and_nothing_else() -> None:
    present = {p.relative_to(STATIC).as_posix() for p in ASSETS}
    assert present == set(STATIC_FILES)


@pytest.mark.parametrize("path", [p for p in ASSETS if p.suffix == ".js"], ids=lambda p: p.name)
def test_module_imports_resolve(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    targets = STATIC_IMPORT.findall(text) + DYNAMIC_IMPORT.findall(text)
    assert targets or path.name in {"api.js", "format.js", "charts.js"}  # the leaves import nothing
    for target in targets:
        if "${" in target:  # the router's page modules: ./pages/<name>.js, checked below
            continue
        assert target.startswith("."), f"{path.name}: bare or absolute import {target!r}"
        assert (path.parent / target).resolve().is_file(), f"{path.name}: {target} does not exist"


def test_every_routed_page_exists() -> None:
    app = (STATIC / "js" / "app.js").read_text(encoding="utf-8")
    pages = set(re.findall(r'page: "(\w+)"', app))
    assert pages == {"login", "fleet", "meter", "prepaid", "alarms", "consumer"}
    for page in pages:
        assert (STATIC / "js" / "pages" / f"{page}.js").is_file()


def test_index_references_resolve() -> None:
    index = (STATIC / "index.html").read_text(encoding="utf-8")
    refs = re.findall(r'(?:src|href)="([^"#][^"]*)"', index)
    assert {"css/app.css", "js/app.js", "favicon.svg"} <= set(refs)
    for ref in refs:
        assert (STATIC / ref).is_file(), ref


@pytest.mark.parametrize("path", ASSETS, ids=lambda p: p.relative_to(STATIC).as_posix())
def test_nothing_comes_from_elsewhere(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    # The only absolute URL allowed is the SVG namespace (an identifier, never fetched).
    urls = set(re.findall(r"(?:https?:)?//[A-Za-z0-9.-]+\.[A-Za-z]{2,}[^\s\"'`)]*", text))
    assert urls <= {"http://www.w3.org/2000/svg"}, urls
    assert "@import" not in text
    assert "cdn" not in text.lower()


def test_no_inline_script_or_style_for_the_csp() -> None:
    """The API sends ``script-src 'self'; style-src 'self'``: inline code would be blocked."""
    index = (STATIC / "index.html").read_text(encoding="utf-8")
    assert "<style" not in index
    assert " style=" not in index
    assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", index) == []
    assert not re.search(r"\son\w+=", index), "inline event handlers"
    for path in ASSETS:
        if path.suffix == ".js":
            text = path.read_text(encoding="utf-8")
            assert 'setAttribute("style"' not in text, path.name
            assert "innerHTML" not in text, f"{path.name}: build nodes, never parse strings"
