"""DLMS security suite 0 (AES-GCM-128, 12-byte tag): protect + unprotect of a 1,000-byte APDU,
metercom side by side with dlms-cosem and gurux-dlms in one run.

Run with ``python -m bench.security``. The target (field-notes.md) is at least 1.5x dlms-cosem,
whose figure was 73,138 operations per second on the reference machine.

What each operation includes:

* metercom: ``protect`` (SC || IC || ciphertext || tag) then ``unprotect``, which verifies the tag.
* dlms-cosem 25.1.0: ``security.encrypt`` then ``security.decrypt`` (also verifies the tag).
* gurux-dlms 1.0.203: ``GXDLMSChippering.encryptAesGcm`` (which also frames a glo-get-request)
  then ``decryptAesGcm`` (which does not verify the tag); its AES is pure Python.
* metercom framed: ``SecurityContext.encode_apdu`` + ``decode_apdu`` between two contexts, i.e.
  with framing, the monotonic counter and the replay check (no peer offers the equivalent).
"""

from __future__ import annotations

import contextlib
import io
import statistics
import sys
from collections.abc import Callable

from bench.common import Comparison, ops_per_second, report
from metercom.codec.dlms.security import SecurityContext, SecurityControl, protect, unprotect

EK = bytes.fromhex("000102030405060708090A0B0C0D0E0F")
AK = bytes.fromhex("D0D1D2D3D4D5D6D7D8D9DADBDCDDDEDF")
SERVER_TITLE = bytes.fromhex("4D4D4D0000BC614E")
CLIENT_TITLE = bytes.fromhex("4D4D4D0000000001")
APDU = b"\xc4\x01\xc1\x00\x09\x82\x03\xe0" + bytes(i & 0xFF for i in range(992))  # 1,000 bytes
COUNTER = 0x01234567
SC = SecurityControl.of()


def ours_once() -> None:
    content = protect(
        APDU,
        security_control=SC,
        system_title=SERVER_TITLE,
        invocation_counter=COUNTER,
        encryption_key=EK,
        authentication_key=AK,
    )
    result = unprotect(content, system_title=SERVER_TITLE, encryption_key=EK, authentication_key=AK)
    assert result.plaintext == APDU


def make_ours_framed() -> tuple[SecurityContext, SecurityContext]:
    meter = SecurityContext(system_title=SERVER_TITLE, encryption_key=EK, authentication_key=AK)
    client = SecurityContext(
        system_title=CLIENT_TITLE, peer_system_title=SERVER_TITLE, encryption_key=EK, authentication_key=AK
    )
    return meter, client


def make_dlms_cosem() -> Callable[[], None] | None:
    try:
        from dlms_cosem import security as cosem
    except ImportError:
        return None
    field = cosem.SecurityControlField(security_suite=0, authenticated=True, encrypted=True)

    def once() -> None:
        ciphered = cosem.encrypt(
            security_control=field,
            system_title=SERVER_TITLE,
            invocation_counter=COUNTER,
            key=EK,
            plain_text=APDU,
            auth_key=AK,
        )
        plain = cosem.decrypt(
            security_control=field,
            system_title=SERVER_TITLE,
            invocation_counter=COUNTER,
            key=EK,
            cipher_text=ciphered,
            auth_key=AK,
        )
        assert plain == APDU

    return once


def make_gurux() -> Callable[[], None] | None:
    try:
        from gurux_dlms.AesGcmParameter import AesGcmParameter
        from gurux_dlms.enums import Security
        from gurux_dlms.GXByteBuffer import GXByteBuffer
        from gurux_dlms.GXDLMSChippering import GXDLMSChippering
        from gurux_dlms.GXDLMSSettings import GXDLMSSettings
    except ImportError:
        return None
    settings = GXDLMSSettings(False, None)

    def once() -> None:
        out = AesGcmParameter(0xCC, SERVER_TITLE, EK, AK)
        out.security = Security.AUTHENTICATION_ENCRYPTION
        out.invocationCounter = COUNTER
        frame = bytes(GXDLMSChippering.encryptAesGcm(out, APDU))
        back = AesGcmParameter(0, SERVER_TITLE, EK, AK)
        back.settings = settings
        with contextlib.redirect_stdout(io.StringIO()):  # it prints while deciphering
            plain = bytes(GXDLMSChippering.decryptAesGcm(settings, back, GXByteBuffer(frame)))
        assert plain == APDU

    return once


def interleaved(contenders: dict[str, Callable[[], None]], *, rounds: int = 7) -> dict[str, float]:
    """Median ops/s of each contender, measured in alternating short rounds so that load from
    other processes hits every contender alike (the ratio is what this benchmark reports)."""
    rates: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, fn in contenders.items():
            rates[name].append(ops_per_second(fn, min_time_s=0.1, repeats=1))
    return {name: statistics.median(values) for name, values in rates.items()}


def main() -> int:
    meter, client = make_ours_framed()

    def framed_once() -> None:
        assert client.decode_apdu(meter.encode_apdu(APDU)) == APDU

    contenders: dict[str, Callable[[], None]] = {"ours": ours_once, "framed": framed_once}
    cosem_fn = make_dlms_cosem()
    if cosem_fn is not None:
        contenders["dlms-cosem"] = cosem_fn
    rates = interleaved(contenders)
    gurux_fn = make_gurux()
    gurux = ops_per_second(gurux_fn, min_time_s=0.5, repeats=3) if gurux_fn is not None else None
    cosem = rates.get("dlms-cosem")

    operation = "suite 0 protect+unprotect, 1,000-byte APDU"
    rows = [
        Comparison(operation, "ops/s", rates["ours"], "dlms-cosem", cosem, target=1.5),
        Comparison(operation, "ops/s", rates["ours"], "gurux-dlms", gurux),
        Comparison(
            "framed encode_apdu+decode_apdu, counter policy",
            "ops/s",
            rates["framed"],
            "dlms-cosem (unframed)",
            cosem,
        ),
    ]
    print(report("DLMS security (AES-GCM-128, 12-byte tag)", rows))
    below = [row for row in rows if row.verdict == "BELOW TARGET"]
    return 1 if below else 0


if __name__ == "__main__":
    sys.exit(main())
