"""Benchmark: decoding a daily load profile (96 rows x 8 columns) to typed rows, side by side.

The buffer is what a meter returns for Profile Generic attribute 2: ``array(96)`` of
``structure(8)`` = date-time as octet-string(12), status (unsigned), four energy registers
(double-long-unsigned) and two power registers (double-long). Each decoder is measured the way
its users call it:

* metercom: :class:`~metercom.codec.dlms.axdr.ProfileDecoder` (compiled row layout, reused across
  reads as a collector does), "raw" with the timestamp as bytes, "typed" with the timestamp as
  ``CosemDateTime``, "typed+datetime" with an aware ``datetime`` per row, "cold" with a new
  decoder (layout compiled) per buffer, and the generic ``decode_data`` + ``to_python`` path.
* dlms-cosem 25.1.0: raw = ``a_xdr.AXdrDecoder`` with a ``Sequence`` encoding (how its
  ``ProfileGenericBufferParser`` decodes), typed = ``ProfileGenericBufferParser.parse_bytes``
  with capture objects (clock column becomes ``datetime``).
* gurux-dlms 1.0.203: raw = ``GXDLMSClient.getValue``, typed = the same plus
  ``GXDLMSClient.changeType(value, DataType.DATETIME)`` for the clock column.

Run: ``.venv/bin/python bench/axdr_profile.py`` (``--quick`` for a short run). Prints rows/s
(median of interleaved rounds, CPU time) and the ratio of each metercom variant to each peer.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from metercom.codec.dlms.axdr import ProfileDecoder, decode_data, encode_data
from metercom.model.dlms_data import CosemDateTime, Data

ROWS = 96
COLUMNS = 8
#: What we promise against dlms-cosem for typed rows (field notes: its ~56,000 rows/s x 10).
TARGET_RATIO = 10.0


def build_buffer(rows: int = ROWS) -> bytes:
    """A realistic daily 15-minute load profile: 2024-03-01, CET (deviation -60), status 0."""
    entries = []
    energy = [1_234_567, 2_345, 345_678, 45_678]
    for i in range(rows):
        minutes = i * 15
        stamp = CosemDateTime(2024, 3, 1, 5, minutes // 60, minutes % 60, 0, 0, -60, 0)
        energy = [e + 100 + (i * 7 + k) % 13 for k, e in enumerate(energy)]
        entries.append(
            Data.structure(
                Data.octet_date_time(stamp),
                Data.unsigned(0x08 if i == 40 else 0x00),
                *(Data.double_long_unsigned(e) for e in energy),
                Data.double_long(4_000 + (i * 37) % 900 - 450),
                Data.double_long(-(250 + (i * 11) % 300)),
            )
        )
    return encode_data(Data.array(entries))


# --- metercom ------------------------------------------------------------------------------------


def metercom_variants(buf: bytes) -> dict[str, Callable[[], list[Any]]]:
    raw_decoder = ProfileDecoder()
    typed_decoder = ProfileDecoder(date_time_columns=(0,))

    def raw() -> list[Any]:
        return raw_decoder.decode(buf)

    def typed() -> list[Any]:
        return typed_decoder.decode(buf)

    def typed_datetime() -> list[Any]:
        return [(row[0].to_datetime(), *row[1:]) for row in typed_decoder.decode(buf)]

    def cold() -> list[Any]:
        return ProfileDecoder(date_time_columns=(0,)).decode(buf)

    def generic() -> list[Any]:
        value, _ = decode_data(buf)
        result = value.to_python()
        assert isinstance(result, list)
        return result

    return {
        "metercom typed (CosemDateTime)": typed,
        "metercom raw (timestamp bytes)": raw,
        "metercom typed + aware datetime": typed_datetime,
        "metercom cold (new decoder/buffer)": cold,
        "metercom generic decode_data": generic,
    }


# --- dlms-cosem --------------------------------------------------------------------------------


def dlms_cosem_variants(buf: bytes) -> dict[str, Callable[[], list[Any]]]:
    from dlms_cosem import a_xdr, enumerations
    from dlms_cosem.cosem import CosemAttribute, Obis
    from dlms_cosem.parsers import ProfileGenericBufferParser

    conf = a_xdr.EncodingConf(attributes=[a_xdr.Sequence(attribute_name="data")])
    clock = CosemAttribute(
        interface=enumerations.CosemInterface.CLOCK, instance=Obis(0, 0, 1, 0, 0, 255), attribute=2
    )
    status = CosemAttribute(
        interface=enumerations.CosemInterface.DATA, instance=Obis(0, 0, 96, 10, 1, 255), attribute=2
    )
    registers = [
        CosemAttribute(
            interface=enumerations.CosemInterface.REGISTER, instance=Obis(1, 0, c, d, 0, 255), attribute=2
        )
        for c, d in ((1, 8), (2, 8), (3, 8), (4, 8), (1, 7), (3, 7))
    ]
    parser = ProfileGenericBufferParser(capture_objects=[clock, status, *registers], capture_period=15)

    def raw() -> list[Any]:
        # A decoder keeps its buffer between calls, so a new one per buffer (as the parser does).
        result: list[Any] = a_xdr.AXdrDecoder(encoding_conf=conf).decode(buf)["data"]
        return result

    def typed() -> list[Any]:
        result: list[Any] = parser.parse_bytes(buf)
        return result

    return {"dlms-cosem typed (ProfileGenericBufferParser)": typed, "dlms-cosem raw (AXdrDecoder)": raw}


# --- gurux-dlms --------------------------------------------------------------------------------


def gurux_variants(buf: bytes) -> dict[str, Callable[[], list[Any]]]:
    from gurux_dlms import GXByteBuffer, GXDLMSClient
    from gurux_dlms.enums import DataType

    def raw() -> list[Any]:
        result: list[Any] = GXDLMSClient.getValue(GXByteBuffer(buf), False)
        return result

    def typed() -> list[Any]:
        rows: list[Any] = GXDLMSClient.getValue(GXByteBuffer(buf), False)
        for row in rows:
            row[0] = GXDLMSClient.changeType(row[0], DataType.DATETIME)
        return rows

    return {"gurux-dlms typed (getValue + changeType)": typed, "gurux-dlms raw (getValue)": raw}


# --- harness -----------------------------------------------------------------------------------


def calibrate(func: Callable[[], list[Any]], min_time_s: float) -> int:
    """Number of calls that take about ``min_time_s`` of CPU time."""
    calls = 1
    while True:
        start = time.process_time()
        for _ in range(calls):
            func()
        elapsed = time.process_time() - start
        if elapsed >= min_time_s / 4:
            return max(1, int(calls * min_time_s / max(elapsed, 1e-9)))
        calls *= 2


def measure(funcs: dict[str, Callable[[], list[Any]]], *, min_time_s: float, runs: int) -> dict[str, float]:
    """Median rows/s of each function over ``runs`` rounds.

    Rounds interleave all decoders and time CPU (process) time, so a busy machine slows every
    decoder alike and the ratios stay meaningful even when the absolute figures move.
    """
    calls = {name: calibrate(func, min_time_s) for name, func in funcs.items()}
    samples: dict[str, list[float]] = {name: [] for name in funcs}
    for _ in range(runs):
        for name, func in funcs.items():
            n = calls[name]
            start = time.process_time()
            for _ in range(n):
                func()
            samples[name].append(n * ROWS / max(time.process_time() - start, 1e-9))
    return {name: statistics.median(values) for name, values in samples.items()}


def check(name: str, rows: list[Any]) -> None:
    if len(rows) != ROWS or len(rows[0]) != COLUMNS:
        raise SystemExit(f"{name}: decoded {len(rows)} rows of {len(rows[0]) if rows else 0} columns")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="short runs (smoke test)")
    args = parser.parse_args(argv)
    min_time_s, runs = (0.03, 3) if args.quick else (0.2, 9)

    buf = build_buffer()
    ours = metercom_variants(buf)
    peers: dict[str, Callable[[], list[Any]]] = {}
    for loader in (dlms_cosem_variants, gurux_variants):
        try:
            peers.update(loader(buf))
        except ImportError as exc:  # peers are dev dependencies only
            print(f"(skipping {loader.__name__}: {exc})")

    reference = ours["metercom typed (CosemDateTime)"]()
    generic = ours["metercom generic decode_data"]()
    if [tuple(r[1:]) for r in reference] != [tuple(r[1:]) for r in generic]:
        raise SystemExit("metercom fast and generic decoders disagree")
    for name, func in {**ours, **peers}.items():
        check(name, func())

    python = sys.version.split()[0]
    print(f"Profile buffer: {ROWS} rows x {COLUMNS} columns, {len(buf)} bytes; Python {python}")
    results = measure({**ours, **peers}, min_time_s=min_time_s, runs=runs)
    print(f"{'decoder (median of ' + str(runs) + ' interleaved rounds, CPU time)':<52} {'rows/s':>12}")
    for name, rate in results.items():
        print(f"{name:<52} {rate:>12,.0f}")

    print("\nratios (metercom variant / peer):")
    peer_names = list(peers)
    for name in ours:
        cells = ", ".join(f"{results[name] / results[p]:.1f}x {' '.join(p.split()[:2])}" for p in peer_names)
        print(f"  {name:<40} {cells}")

    ours_typed = results["metercom typed (CosemDateTime)"]
    peer_typed = results.get("dlms-cosem typed (ProfileGenericBufferParser)")
    if peer_typed:
        ratio = ours_typed / peer_typed
        verdict = "ok" if ratio >= TARGET_RATIO else "BELOW TARGET"
        print(f"\ntarget: typed rows >= {TARGET_RATIO:g}x dlms-cosem: {ratio:.1f}x ({verdict})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
