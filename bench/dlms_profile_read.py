"""DLMS load-profile read over a 9,600 Bd line: how close the client gets to the wire-time floor.

Rule: on a half-duplex serial line the client's only waits are the ones the wire imposes. A
daily profile (96 rows x 8 columns, about 4.9 kB) is read with HDLC frames of 1,024 bytes over a
:class:`~metercom.transport.SimulatedLine` at 9,600 Bd on a virtual clock; the elapsed virtual
time of the buffer read (GET with block transfer, HDLC segmentation and receive-ready polls) is
compared with the time the line was busy in both directions during it, which is the floor of a
complete half-duplex exchange (field-notes.md: about 5.5 s with 9 turnarounds at 1,024 bytes).
The target ratio is at most 1.10.

The meter is gurux-dlms 1.0.203's server, in-process and shimmed by
``tests/interop/gurux_harness.py``: an independent server, so the figure is our client's alone
(the interop tests read our own simulated meter the same way). CPU time per read is measured on
the same virtual clock.

Run: ``python bench/dlms_profile_read.py`` (``--rounds N`` reads).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from metercom.clock import VirtualClock
from metercom.session.dlms import DlmsClient
from metercom.transport import LineSettings, SimulatedLine

__all__ = ["ProfileFigures", "main", "measure"]

TARGET_RATIO = 1.10
FRAME_BYTES = 1024
BAUD_RATE = 9600


@dataclass(frozen=True, slots=True)
class ProfileFigures:
    rows: int
    columns: int
    bytes_on_wire: int
    elapsed_s: float
    wire_s: float
    cpu_s: float
    blocks: int

    @property
    def ratio(self) -> float:
        return self.elapsed_s / self.wire_s


def _harness() -> Any:
    """The shimmed gurux-dlms server of the interop tests (a dev-only peer)."""
    here = Path(__file__).resolve().parents[1] / "tests" / "interop"
    if str(here) not in sys.path:
        sys.path.insert(0, str(here))
    return importlib.import_module("gurux_harness")


async def _read_once(rows: int, columns: int) -> ProfileFigures:
    harness = _harness()
    serve_gurux = harness.serve_gurux
    meter = harness.GuruxMeter(hdlc=True, max_info=FRAME_BYTES, rows=rows, columns=columns)
    line = SimulatedLine(LineSettings(BAUD_RATE))
    task = asyncio.create_task(serve_gurux(line.b, meter))
    loop = asyncio.get_running_loop()
    try:
        async with DlmsClient.connect(line.a, hdlc_max_info=FRAME_BYTES, max_pdu_size=FRAME_BYTES) as client:
            await client.capture_objects("1-0:99.1.0")
            await client.get_many([f"1-0:{c}.8.0" for c in range(1, columns)], attribute=3, raw=True)
            sent, received = line.stats.a_to_b, line.stats.b_to_a
            busy0, bytes0 = sent.busy_s + received.busy_s, sent.bytes_sent + received.bytes_sent
            cpu0, started = time.process_time(), loop.time()
            profile = await client.read_profile("1-0:99.1.0")
            elapsed, cpu = loop.time() - started, time.process_time() - cpu0
            busy = sent.busy_s + received.busy_s - busy0
            on_wire = sent.bytes_sent + received.bytes_sent - bytes0
    finally:
        await line.b.close()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert len(profile) == rows, f"read {len(profile)} rows, expected {rows}"
    return ProfileFigures(rows, columns, on_wire, elapsed, busy, cpu, profile.blocks)


def measure(rounds: int = 3, rows: int = 96, columns: int = 8) -> list[ProfileFigures]:
    """Read the profile ``rounds`` times, each on a fresh line and virtual clock."""
    return [VirtualClock().run(_read_once(rows, columns)) for _ in range(rounds)]


def report(figures: list[ProfileFigures]) -> str:
    best = min(figures, key=lambda f: f.cpu_s)
    verdict = "OK" if best.ratio <= TARGET_RATIO else "ABOVE TARGET"
    return "\n".join(
        [
            (
                f"daily profile {best.rows} rows x {best.columns} columns, HDLC frames {FRAME_BYTES} B, "
                f"{BAUD_RATE} Bd, {best.blocks} GET blocks"
            ),
            f"  bytes on the wire (both directions): {best.bytes_on_wire}",
            f"  elapsed (virtual):                   {best.elapsed_s:.3f} s",
            f"  wire busy time (floor):              {best.wire_s:.3f} s   (field notes: ~5.5 s)",
            (
                f"  ratio elapsed / floor:               {best.ratio:.3f}   "
                f"target <= {TARGET_RATIO:.2f}  {verdict}"
            ),
            f"  CPU per read (client + gurux server + line): {best.cpu_s * 1000:.1f} ms",
        ]
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    print(report(measure(args.rounds)))


if __name__ == "__main__":
    main()
