"""The wheel carries the package data the code loads at run time: the dashboard's static files,
the device profiles, the Alembic migrations and ``py.typed``.

Built with hatchling's API in-process (the build backend of pyproject.toml; no network, no build
isolation) into ``tmp_path``; the source tree is only read.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from hatchling.builders.wheel import WheelBuilder

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "metercom"


def _under(folder: str, *suffixes: str) -> set[str]:
    """Paths in the wheel of the files under ``src/metercom/<folder>`` (those ending so)."""
    base = PACKAGE / folder
    return {
        "metercom/" + path.relative_to(PACKAGE).as_posix()
        for path in base.rglob("*")
        if path.is_file()
        and "__pycache__" not in path.parts
        and (not suffixes or path.name.endswith(suffixes))
    }


def test_the_wheel_contains_the_package_data(tmp_path: Path) -> None:
    builder = WheelBuilder(str(ROOT))
    (wheel,) = list(builder.build(directory=str(tmp_path), versions=["standard"]))
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        assert archive.testzip() is None

    static = _under("web/static")
    profiles = _under("model/profiles", ".toml")
    migrations = _under("service/store/migrations", ".py", ".mako")
    assert static, "no dashboard files found in the source tree"
    assert {n.rsplit("/", 1)[-1] for n in static} >= {"index.html", "favicon.svg"}
    assert {"metercom/model/profiles/modbus/pmtr3.toml", "metercom/model/profiles/generic.toml"} <= profiles
    assert "metercom/service/store/migrations/env.py" in migrations
    assert "metercom/service/store/migrations/script.py.mako" in migrations
    assert any("/versions/r0001_" in n for n in migrations)
    assert sorted(static - names) == []
    assert sorted(profiles - names) == []
    assert sorted(migrations - names) == []
    assert "metercom/py.typed" in names
    assert "metercom/cli/main.py" in names
    # Nothing from outside the package (tests, docs, the venv) and no compiled caches.
    assert all(n.startswith(("metercom/", "metercom-")) for n in names), sorted(names)[:5]
    assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    with zipfile.ZipFile(wheel) as archive:
        assert "metercom = metercom.cli.main:main" in archive.read(entry_points).decode()
