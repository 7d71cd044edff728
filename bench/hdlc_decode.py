"""Benchmark: decoding one HDLC I frame with a 200-byte information field, HCS and FCS checked.

The frame is a server-to-client response (I frame N(S)=0, N(R)=1, F=1; client 16, server
1/17; LLC E6 E7 00 and 197 bytes of APDU), the unit of work of every DLMS reader on a
serial line. Each decoder is called the way its own users decode a received frame:

* metercom: :meth:`metercom.codec.hdlc.HdlcFrame.from_bytes` (flags, format, length,
  addresses, control, HCS, FCS), and the stream path :class:`HdlcFrameSplitter` + ``from_bytes``.
* dlms-cosem 25.1.0: ``dlms_cosem.hdlc.frames.InformationFrame.from_bytes`` (what its
  ``HdlcConnection.next_event`` calls for an I frame; it checks HCS and FCS).
* gurux-dlms 1.0.203: ``GXDLMS.getHdlcData(False, settings, GXByteBuffer(frame), GXReplyData(),
  None)``, what ``GXDLMSClient.getData`` runs for the HDLC layer: flag search, length,
  address and sequence checks, HCS and FCS, LLC check. Its sequence state is reset before every
  call so the same frame is accepted each time (two attribute writes, counted in its time).

Every decoder is first checked to return the information field of the good frame and to
reject a frame with one flipped bit. Run: ``.venv/bin/python bench/hdlc_decode.py``
(``--quick`` for a short run). Prints frames/s (median of timed batches) and our ratio to
each peer; the target is at least 3x gurux-dlms.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable

from metercom.codec.hdlc import FrameKind, HdlcAddress, HdlcFrame, HdlcFrameSplitter

INFO_LENGTH = 200
TARGET_VS_GURUX = 3.0


def build_frame() -> tuple[bytes, bytes]:
    """The frame under test and its information field."""
    info = b"\xe6\xe7\x00" + bytes((i * 7 + 3) & 0xFF for i in range(INFO_LENGTH - 3))
    frame = HdlcFrame(FrameKind.I, HdlcAddress(16), HdlcAddress(1, 17), True, 0, 1, info).to_bytes()
    return frame, info


def ops_per_second(fn: Callable[[], object], *, min_time_s: float, repeats: int) -> float:
    """Median calls per second of ``fn`` over ``repeats`` batches of about ``min_time_s`` each."""
    batch = 1
    while True:
        start = time.perf_counter()
        for _ in range(batch):
            fn()
        elapsed = time.perf_counter() - start
        if elapsed >= min_time_s / 8:
            break
        batch *= 4
    batch = max(1, int(batch * min_time_s / max(elapsed, 1e-9)))
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(batch):
            fn()
        rates.append(batch / (time.perf_counter() - start))
    return statistics.median(rates)


# --- metercom ------------------------------------------------------------------------------


def metercom_decoder(frame: bytes) -> Callable[[], bytes]:
    def decode() -> bytes:
        return HdlcFrame.from_bytes(frame).information

    return decode


def metercom_stream_decoder(frame: bytes) -> Callable[[], bytes]:
    splitter = HdlcFrameSplitter()

    def decode() -> bytes:
        splitter.feed(frame)
        raw = splitter.next()
        assert isinstance(raw, bytes)
        splitter.next()  # consumes the kept closing flag: NEED_DATA
        return HdlcFrame.from_bytes(raw).information

    return decode


# --- dlms-cosem ----------------------------------------------------------------------------


def dlms_cosem_decoder(frame: bytes) -> Callable[[], bytes] | None:
    try:
        from dlms_cosem.hdlc.frames import InformationFrame
    except ImportError:
        return None

    def decode() -> bytes:
        payload: bytes = InformationFrame.from_bytes(frame).payload
        return payload

    return decode


# --- gurux-dlms ----------------------------------------------------------------------------


def gurux_decoder(frame: bytes) -> Callable[[], bytes] | None:
    try:
        from gurux_dlms.GXByteBuffer import GXByteBuffer
        from gurux_dlms.GXDLMS import GXDLMS
        from gurux_dlms.GXDLMSSettings import GXDLMSSettings
        from gurux_dlms.GXReplyData import GXReplyData
    except ImportError:
        return None
    settings = GXDLMSSettings(False, None)
    settings.clientAddress = 16
    settings.serverAddress = (1 << 7) | 17  # gurux packs logical << 7 | physical

    def decode() -> bytes:
        # Client state after sending I frame N(S)=0 with P: the reply N(S)=0, N(R)=1 is next.
        settings.receiverFrame = 0x0E
        settings.senderFrame = 0x10
        buffer = GXByteBuffer(frame)
        reply = GXReplyData()
        GXDLMS.getHdlcData(False, settings, buffer, reply, None)
        if reply.packetLength != len(frame) - 3 or reply.error:
            raise ValueError("gurux-dlms did not accept the frame")
        data: bytes = bytes(buffer.array()[buffer.position - 3 : reply.packetLength])
        return data

    return decode


def rejects_corruption(decode_factory: Callable[[bytes], Callable[[], bytes] | None], frame: bytes) -> bool:
    bad = bytearray(frame)
    bad[len(frame) // 2] ^= 0x01
    decode = decode_factory(bytes(bad))
    if decode is None:
        return False
    try:
        decode()
    except Exception:  # noqa: BLE001 - each peer raises its own types
        return True
    return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="short run (CI smoke)")
    args = parser.parse_args(argv)
    min_time_s, repeats = (0.05, 3) if args.quick else (0.3, 7)
    frame, info = build_frame()

    factories: list[tuple[str, Callable[[bytes], Callable[[], bytes] | None]]] = [
        ("metercom HdlcFrame.from_bytes", metercom_decoder),
        ("metercom splitter + from_bytes", metercom_stream_decoder),
        ("dlms-cosem 25.1.0 InformationFrame.from_bytes", dlms_cosem_decoder),
        ("gurux-dlms 1.0.203 GXDLMS.getHdlcData", gurux_decoder),
    ]
    rates: dict[str, float] = {}
    print(f"HDLC I frame decode, {INFO_LENGTH}-byte information field, {len(frame)} bytes on the wire")
    for name, factory in factories:
        decode = factory(frame)
        if decode is None:
            print(f"  {name:48s} not installed")
            continue
        if decode() != info:
            print(f"  {name:48s} returned the wrong information field", file=sys.stderr)
            return 1
        if not rejects_corruption(factory, frame):
            print(f"  {name:48s} accepted a corrupted frame", file=sys.stderr)
            return 1
        rates[name] = ops_per_second(decode, min_time_s=min_time_s, repeats=repeats)
        print(f"  {name:48s} {rates[name]:>12,.0f} frames/s")

    ours = rates[factories[0][0]]
    print("ratios (metercom HdlcFrame.from_bytes / peer):")
    status = 0
    for name, _ in factories[2:]:
        if name in rates:
            ratio = ours / rates[name]
            verdict = ""
            if name.startswith("gurux"):
                verdict = " ok" if ratio >= TARGET_VS_GURUX else f" BELOW TARGET {TARGET_VS_GURUX:g}x"
                status = 0 if ratio >= TARGET_VS_GURUX else 1
            print(f"  vs {name:45s} {ratio:>8.1f}x{verdict}")
    return status


if __name__ == "__main__":
    sys.exit(main())
