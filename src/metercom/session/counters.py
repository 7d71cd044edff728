"""Durable invocation counters for DLMS ciphering (a :class:`CounterStore` on disk).

Rule: an own invocation counter value is never used twice with the same key. Reusing one
repeats an AES-GCM nonce (which leaks the authentication key) and a meter refuses the frame as
a replay. The codec asks the store to save a ceiling before it hands out counters below it;
this store makes that ceiling durable (write to a temporary file, fsync, rename, fsync the
directory) before ``save`` returns, so a crash at any point leaves the old or the new value and
a restart resumes above every counter that may have reached the wire.

One file holds one association's counters (ours and the peer's last accepted), keyed by the
names the security context uses. :func:`default_counter_path` names the file after our
system title and the meter, under ``$XDG_STATE_HOME/metercom`` (``~/.local/state/metercom``).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from metercom.errors import StoreError

__all__ = ["FileCounterStore", "default_counter_path"]


def default_counter_path(system_title: bytes, meter: str) -> Path:
    """``~/.local/state/metercom/dlms-counters/<system title>@<meter>.json``."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", meter).strip("_")[:120] or "meter"
    return Path(base) / "metercom" / "dlms-counters" / f"{system_title.hex()}@{safe}.json"


class FileCounterStore:
    """A crash-safe JSON file of counters; see the module docstring."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._values = self._read()

    def _read(self) -> dict[str, int]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise StoreError(f"cannot read invocation counters from {self.path}: {exc}") from exc
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise StoreError(f"invocation counter file {self.path} is corrupt: {exc}") from exc
        if not isinstance(data, dict) or not all(
            isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool) and v >= 0
            for k, v in data.items()
        ):
            raise StoreError(f"invocation counter file {self.path} is not a map of names to counters")
        return data

    def load(self, name: str) -> int | None:
        return self._values.get(name)

    def save(self, name: str, value: int) -> None:
        values = {**self._values, name: value}
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with tmp.open("w", encoding="utf-8") as file:
                json.dump(values, file, sort_keys=True)
                file.flush()
                os.fsync(file.fileno())
            tmp.replace(self.path)
            directory = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)
        except OSError as exc:
            raise StoreError(f"cannot save invocation counter to {self.path}: {exc}") from exc
        self._values = values
