"""The security control byte (SC) of a ciphered xDLMS APDU (IEC 62056-5-3 /
Green Book "Security header": the security control byte).

Rule: the SC is one octet and every one of its bits is authenticated (it is the first octet of the
additional authenticated data), so it is carried as an exact value, never normalised.

Theory of operation::

    bit 7      compression (V.44) applied before ciphering          -- not supported by metercom
    bit 6      key-set: 0 = unicast (global unicast or dedicated) key, 1 = global broadcast key
    bit 5      encryption applied (E)
    bit 4      authentication applied (A)
    bits 3..0  security suite id (0 = AES-GCM-128, 1 = AES-GCM-128 + ECC P-256, 2 = AES-GCM-256 + P-384)

``SecurityControl`` is a frozen value type around that octet; ``from_byte`` is a table look-up so
the receive path allocates nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from metercom.errors import LocalProtocolError

__all__ = ["SecurityControl"]

_COMPRESSION = 0x80
_KEY_SET = 0x40
_ENCRYPTION = 0x20
_AUTHENTICATION = 0x10
_SUITE_MASK = 0x0F


@dataclass(frozen=True, slots=True)
class SecurityControl:
    """Security control byte: suite id nibble plus the authentication, encryption, key-set and
    compression bits (IEC 62056-5-3, security header).

    Build one with :meth:`of` (named bits) or :meth:`from_byte` (a received octet).
    """

    value: int

    _TABLE: ClassVar[tuple[SecurityControl, ...]]

    def __post_init__(self) -> None:
        if not 0 <= self.value <= 0xFF:
            raise LocalProtocolError(f"security control must be one octet, got {self.value}", layer="dlms")

    @classmethod
    def of(
        cls,
        *,
        suite_id: int = 0,
        authentication: bool = True,
        encryption: bool = True,
        key_set: bool = False,
        compression: bool = False,
    ) -> SecurityControl:
        """Assemble an SC from named bits; defaults are suite 0, authenticated and encrypted (0x30)."""
        if not 0 <= suite_id <= _SUITE_MASK:
            raise LocalProtocolError(f"security suite id must be 0..15, got {suite_id}", layer="dlms")
        value = (
            suite_id
            | (_AUTHENTICATION if authentication else 0)
            | (_ENCRYPTION if encryption else 0)
            | (_KEY_SET if key_set else 0)
            | (_COMPRESSION if compression else 0)
        )
        return cls._TABLE[value]

    @classmethod
    def from_byte(cls, value: int) -> SecurityControl:
        """The SC for a received octet (``0..255``); a shared instance, no allocation."""
        return cls._TABLE[value]

    def to_bytes(self) -> bytes:
        return bytes((self.value,))

    def __int__(self) -> int:
        return self.value

    @property
    def suite_id(self) -> int:
        """Security suite id (bits 3..0)."""
        return self.value & _SUITE_MASK

    @property
    def authentication(self) -> bool:
        """Bit 4: an authentication tag is present."""
        return bool(self.value & _AUTHENTICATION)

    @property
    def encryption(self) -> bool:
        """Bit 5: the information is encrypted."""
        return bool(self.value & _ENCRYPTION)

    @property
    def key_set(self) -> bool:
        """Bit 6: ``True`` when the global broadcast key was used, ``False`` for a unicast key."""
        return bool(self.value & _KEY_SET)

    @property
    def broadcast(self) -> bool:
        """Alias of :attr:`key_set`."""
        return self.key_set

    @property
    def compression(self) -> bool:
        """Bit 7: the information was compressed before ciphering."""
        return bool(self.value & _COMPRESSION)

    def replace(
        self,
        *,
        suite_id: int | None = None,
        authentication: bool | None = None,
        encryption: bool | None = None,
        key_set: bool | None = None,
        compression: bool | None = None,
    ) -> SecurityControl:
        """A copy with the named bits changed."""
        return SecurityControl.of(
            suite_id=self.suite_id if suite_id is None else suite_id,
            authentication=self.authentication if authentication is None else authentication,
            encryption=self.encryption if encryption is None else encryption,
            key_set=self.key_set if key_set is None else key_set,
            compression=self.compression if compression is None else compression,
        )

    def __repr__(self) -> str:
        bits = [f"suite {self.suite_id}"]
        if self.authentication:
            bits.append("authenticated")
        if self.encryption:
            bits.append("encrypted")
        if self.key_set:
            bits.append("broadcast key")
        if self.compression:
            bits.append("compressed")
        return f"SecurityControl(0x{self.value:02x}: {', '.join(bits)})"


SecurityControl._TABLE = tuple(SecurityControl(v) for v in range(256))
