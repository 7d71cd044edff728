"""Association set-up cost: AARQ encode + AARE decode, metercom next to dlms-cosem and gurux-dlms.

Run with ``python -m bench.acse``. One operation is what a client does per association:
encode an LLS AARQ (password ``12345678``, conformance 0x007E1F, max PDU 1200, i.e. the
dlms-vectors.json "AARQ LN, LLS" bytes) and decode the "AARE accepted, no security" vector.

* metercom: a prebuilt :class:`AssociationRequest` ``.to_bytes()`` plus
  ``AssociationResponse.from_bytes``; a second row adds ``build_aarq`` from settings and
  ``evaluate_aare`` (the full client-side helper path).
* dlms-cosem 25.1.0: ``ApplicationAssociationRequest.to_bytes()`` plus
  ``ApplicationAssociationResponse.from_bytes``.
* gurux-dlms 1.0.203: ``GXDLMSClient.aarqRequest()`` (builds from its settings and adds the
  8-byte wrapper header) plus ``parseAareResponse``. It does a little more framing work, so its
  row is indicative.

The target is 2x dlms-cosem (field notes: 39,666 ops/s for dlms-cosem on the reference machine).
"""

from __future__ import annotations

from collections.abc import Callable

from bench.common import Comparison, ops_per_second, report
from metercom.codec.dlms.acse import (
    AssociationRequest,
    AssociationResponse,
    AuthenticationMechanism,
    ClientAssociationSettings,
    build_aarq,
    evaluate_aare,
)
from metercom.codec.dlms.conformance import Conformance

AARQ_LLS = bytes.fromhex(
    "6036a1090607608574050801018a0207808b0760857405080201ac0a80083132333435363738"
    "be10040e01000000065f1f0400007e1f04b0"
)
AARE_ACCEPTED = bytes.fromhex(
    "6129a109060760857405080101a203020100a305a103020100be10040e0800065f1f040000501f01f40007"
)
SETTINGS = ClientAssociationSettings(
    AuthenticationMechanism.LOW,
    password=b"12345678",
    conformance=Conformance(0x007E1F),
    max_receive_pdu_size=1200,
)


def ours_codec() -> Callable[[], object]:
    aarq = build_aarq(SETTINGS)
    assert aarq.to_bytes() == AARQ_LLS
    decode = AssociationResponse.from_bytes

    def operation() -> object:
        aarq.to_bytes()
        return decode(AARE_ACCEPTED)

    return operation


def ours_helpers() -> Callable[[], object]:
    def operation() -> object:
        aarq = build_aarq(SETTINGS)
        aarq.to_bytes()
        return evaluate_aare(AssociationResponse.from_bytes(AARE_ACCEPTED), aarq)

    return operation


def ours_encode() -> Callable[[], object]:
    return AssociationRequest.from_bytes(AARQ_LLS).to_bytes


def ours_decode() -> Callable[[], object]:
    return lambda: AssociationResponse.from_bytes(AARE_ACCEPTED)


def dlms_cosem_codec() -> tuple[Callable[[], object], Callable[[], object], Callable[[], object]] | None:
    try:
        from dlms_cosem.protocol.acse import ApplicationAssociationRequest, ApplicationAssociationResponse
    except ImportError:
        return None
    aarq = ApplicationAssociationRequest.from_bytes(AARQ_LLS)
    assert bytes(aarq.to_bytes()) == AARQ_LLS
    decode = ApplicationAssociationResponse.from_bytes

    def both() -> object:
        aarq.to_bytes()
        return decode(AARE_ACCEPTED)

    return both, aarq.to_bytes, lambda: decode(AARE_ACCEPTED)


def gurux_codec() -> Callable[[], object] | None:
    try:
        from gurux_dlms import GXByteBuffer, GXDLMSClient
        from gurux_dlms.enums import Authentication, InterfaceType
    except ImportError:
        return None
    client = GXDLMSClient(True, 16, 1, Authentication.LOW, "12345678", InterfaceType.WRAPPER)
    (frame,) = client.aarqRequest()
    assert bytes(frame)[8:18] == AARQ_LLS[:10]

    def operation() -> object:
        client.aarqRequest()
        client.parseAareResponse(GXByteBuffer(AARE_ACCEPTED))
        return None

    return operation


def _best(candidates: dict[str, Callable[[], object]], rounds: int) -> dict[str, float]:
    """Best rate of each candidate over ``rounds`` interleaved measurements.

    Interleaving (ours, theirs, ours, theirs...) and keeping each one's best round keeps the
    ratios meaningful on a machine that other work is loading unevenly.
    """
    best: dict[str, float] = dict.fromkeys(candidates, 0.0)
    for _ in range(rounds):
        for name, operation in candidates.items():
            best[name] = max(best[name], ops_per_second(operation))
    return best


def main(rounds: int = 3) -> None:
    candidates: dict[str, Callable[[], object]] = {
        "ours": ours_codec(),
        "ours_full": ours_helpers(),
        "ours_enc": ours_encode(),
        "ours_dec": ours_decode(),
    }
    cosem = dlms_cosem_codec()
    if cosem is not None:
        candidates.update(cosem_both=cosem[0], cosem_enc=cosem[1], cosem_dec=cosem[2])
    gurux = gurux_codec()
    if gurux is not None:
        candidates["gurux"] = gurux
    rate = _best(candidates, rounds)
    unit = "ops/s"
    rows = [
        Comparison(
            "AARQ encode + AARE decode", unit, rate["ours"], "dlms-cosem", rate.get("cosem_both"), 2.0
        ),
        Comparison("AARQ encode + AARE decode", unit, rate["ours"], "gurux-dlms", rate.get("gurux")),
        Comparison(
            "build_aarq + encode + decode + evaluate_aare",
            unit,
            rate["ours_full"],
            "dlms-cosem",
            rate.get("cosem_both"),
        ),
        Comparison("AARQ encode only", unit, rate["ours_enc"], "dlms-cosem", rate.get("cosem_enc")),
        Comparison("AARE decode only", unit, rate["ours_dec"], "dlms-cosem", rate.get("cosem_dec")),
    ]
    print(report("DLMS association (ACSE) codec", rows))


if __name__ == "__main__":
    main()
