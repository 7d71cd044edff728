"""Where each key of a TOML document stands: key paths to line numbers.

:mod:`tomllib` parses a document but does not say where a value came from, and a validation
message is only useful when it points at the line at fault. This module does a light second
pass over text that :mod:`tomllib` has already accepted: it follows table headers
(``[a.b]``, ``[[a]]`` with the index of each array-of-tables entry), keys (bare, quoted and
dotted), strings (so nothing inside a multi-line string is mistaken for a key), arrays
(recording the line of each element) and inline tables. It does not interpret values.

A key path is a tuple of table keys and array indices, as a consumer of the parsed document
walks it: ``("meters", 3, "address", "client")`` for the ``client`` key of the inline
``address`` table of the fourth ``[[meters]]`` entry. :meth:`Positions.line_of` returns the
line of the longest recorded prefix, so a problem with a missing key points at its table.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["KeyPath", "Positions", "format_path", "scan_positions"]

KeyPath = tuple[str | int, ...]

_BARE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
_ESCAPES = {"b": "\b", "t": "\t", "n": "\n", "f": "\f", "r": "\r", '"': '"', "\\": "\\", "e": "\x1b"}


class Positions:
    """Line numbers (1-based) of the key paths of one document."""

    def __init__(self, lines: Mapping[KeyPath, int]) -> None:
        self._lines = dict(lines)

    def line_of(self, path: KeyPath) -> int | None:
        """The line of ``path``, else of its longest recorded prefix, else ``None``."""
        for end in range(len(path), 0, -1):
            line = self._lines.get(path[:end])
            if line is not None:
                return line
        return None

    def __contains__(self, path: object) -> bool:
        return path in self._lines

    def __len__(self) -> int:
        return len(self._lines)


def format_path(path: KeyPath) -> str:
    """``meters[3].address.client``; keys that are not bare are quoted."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            text = part if part and all(c in _BARE for c in part) else '"' + part.replace('"', '\\"') + '"'
            out += f".{text}" if out else text
    return out


def scan_positions(text: str) -> Positions:
    """Scan ``text`` (a document :mod:`tomllib` accepts) and record where each key path is."""
    scanner = _Scanner(text)
    scanner.run()
    return Positions(scanner.lines)


class _Scanner:
    def __init__(self, text: str) -> None:
        self.t = text
        self.i = 0
        self.line = 1
        self.lines: dict[KeyPath, int] = {}
        self.table: KeyPath = ()
        # Array-of-tables paths (by key names) -> index of the current entry.
        self.aot: dict[tuple[str, ...], int] = {}

    # -- characters ---------------------------------------------------------------------------

    def peek(self, ahead: int = 0) -> str:
        j = self.i + ahead
        return self.t[j] if j < len(self.t) else ""

    def advance(self, n: int = 1) -> None:
        for _ in range(n):
            if self.i < len(self.t):
                if self.t[self.i] == "\n":
                    self.line += 1
                self.i += 1

    def skip_space(self, *, newlines: bool) -> None:
        while self.i < len(self.t):
            c = self.t[self.i]
            if c in " \t" or (newlines and c in "\r\n"):
                self.advance()
            elif c == "#":
                while self.i < len(self.t) and self.t[self.i] != "\n":
                    self.i += 1
            else:
                return

    def record(self, path: KeyPath) -> None:
        self.lines.setdefault(path, self.line)

    # -- document -----------------------------------------------------------------------------

    def run(self) -> None:
        while True:
            self.skip_space(newlines=True)
            if self.i >= len(self.t):
                return
            start = self.i
            if self.peek() == "[":
                self.header()
            else:
                self.key_value(self.table)
            if self.i == start:  # never loop on something unexpected
                self.advance()

    def header(self) -> None:
        array = self.peek(1) == "["
        self.advance(2 if array else 1)
        self.skip_space(newlines=False)
        names = tuple(self.key())
        self.skip_space(newlines=False)
        self.advance(2 if array else 1)
        path = (*self.resolve(names[:-1]), names[-1]) if names else ()
        if array:
            index = self.aot.get(names, -1) + 1
            for key in [k for k in self.aot if len(k) > len(names) and k[: len(names)] == names]:
                del self.aot[key]
            self.aot[names] = index
            path = (*self.resolve(names[:-1]), names[-1], index)
            self.lines[path] = self.line
            self.record(path[:-1])
        else:
            self.record(path)
        self.table = path

    def resolve(self, names: tuple[str, ...]) -> KeyPath:
        """Key names of a header prefix -> key path, inserting current array-of-tables indices."""
        path: list[str | int] = []
        for end in range(1, len(names) + 1):
            path.append(names[end - 1])
            index = self.aot.get(names[:end])
            if index is not None:
                path.append(index)
        return tuple(path)

    def key_value(self, base: KeyPath) -> None:
        names = self.key()
        if not names:
            return
        for end in range(1, len(names) + 1):
            self.record(base + tuple(names[:end]))
        self.skip_space(newlines=False)
        if self.peek() == "=":
            self.advance()
        self.skip_space(newlines=False)
        self.value(base + tuple(names))

    def key(self) -> list[str]:
        names: list[str] = []
        while True:
            self.skip_space(newlines=False)
            c = self.peek()
            if c == '"':
                names.append(self.basic_string())
            elif c == "'":
                names.append(self.literal_string())
            elif c and c in _BARE:
                start = self.i
                while self.peek() and self.peek() in _BARE:
                    self.i += 1
                names.append(self.t[start : self.i])
            else:
                return names
            self.skip_space(newlines=False)
            if self.peek() != ".":
                return names
            self.advance()

    # -- values -------------------------------------------------------------------------------

    def value(self, path: KeyPath) -> None:
        c = self.peek()
        if self.t.startswith('"""', self.i) or self.t.startswith("'''", self.i):
            self.multiline_string(self.t[self.i : self.i + 3])
        elif c == '"':
            self.basic_string()
        elif c == "'":
            self.literal_string()
        elif c == "[":
            self.array(path)
        elif c == "{":
            self.inline_table(path)
        else:
            while self.peek() and self.peek() not in ",]}\n#":
                self.i += 1

    def array(self, path: KeyPath) -> None:
        self.advance()
        index = 0
        while self.i < len(self.t):
            self.skip_space(newlines=True)
            if self.peek() == "]":
                self.advance()
                return
            start = self.i
            self.record((*path, index))
            self.value((*path, index))
            self.skip_space(newlines=True)
            if self.peek() == ",":
                self.advance()
                index += 1
            elif self.i == start:
                self.advance()

    def inline_table(self, path: KeyPath) -> None:
        self.advance()
        while self.i < len(self.t):
            self.skip_space(newlines=True)
            c = self.peek()
            if c == "}":
                self.advance()
                return
            if c == ",":
                self.advance()
                continue
            start = self.i
            self.key_value(path)
            if self.i == start:
                self.advance()

    def basic_string(self) -> str:
        self.advance()
        out: list[str] = []
        while self.i < len(self.t):
            c = self.t[self.i]
            if c == '"':
                self.advance()
                break
            if c == "\\":
                nxt = self.peek(1)
                if nxt in ("u", "U"):
                    width = 4 if nxt == "u" else 8
                    digits = self.t[self.i + 2 : self.i + 2 + width]
                    try:
                        out.append(chr(int(digits, 16)))
                    except ValueError:
                        out.append(digits)
                    self.advance(2 + width)
                    continue
                out.append(_ESCAPES.get(nxt, nxt))
                self.advance(2)
                continue
            if c == "\n":
                break
            out.append(c)
            self.advance()
        return "".join(out)

    def literal_string(self) -> str:
        self.advance()
        start = self.i
        while self.i < len(self.t) and self.t[self.i] not in "'\n":
            self.i += 1
        text = self.t[start : self.i]
        if self.peek() == "'":
            self.advance()
        return text

    def multiline_string(self, delimiter: str) -> None:
        self.advance(3)
        while self.i < len(self.t):
            if delimiter == '"""' and self.t[self.i] == "\\":
                self.advance(2)
                continue
            if self.t.startswith(delimiter, self.i):
                # Up to two quote characters may end the content right before the delimiter.
                self.advance(3)
                while self.peek() == delimiter[0]:
                    self.advance()
                return
            self.advance()
