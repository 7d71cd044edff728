"""IEC 62056-21 readout: how close the reader gets to the physical floor, and what it costs in CPU.

Rule: the reader's only waits are the ones the protocol and the wire impose. On a simulated
line at 300 Bd for the sign-on and 9600 Bd for the data, run on a virtual clock, the elapsed
virtual time of a readout is compared with its lower bound: every byte sent and received takes
10 bit times at its speed (protocols.md 6), plus the standard's minimum reaction time t_r
(200 ms) before each of the three answers (identification, option select, data message). The
target is a ratio of at most 1.05. CPU time per readout is measured on the same virtual clock,
so it is the cost of our code (codec, session, simulator and simulated line), not of waiting.

Run: ``python bench/iec21_readout.py`` (``--rounds N`` readouts per measurement).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import time
from dataclasses import dataclass

from metercom.clock import VirtualClock
from metercom.codec.iec62056_21 import SAMPLE_IDENTIFICATION, AckOptionSelect, RequestMessage
from metercom.codec.iec62056_21.constants import REACTION_TIME_S, wire_time_s
from metercom.session.iec21 import Iec21Readout, Iec21Session
from metercom.sim.iec21 import Iec21Meter, Iec21MeterConfig
from metercom.transport import LineSettings, SimulatedLine

__all__ = ["ReadoutFigures", "lower_bound_s", "main", "measure"]

TARGET_RATIO = 1.05


def lower_bound_s(readout_bytes: int, baud_rate: int = 9600, start_baud_rate: int = 300) -> float:
    """Wire time of a mode C readout plus the three minimum reaction times."""
    sign_on = (
        len(RequestMessage().to_bytes())
        + len(SAMPLE_IDENTIFICATION.to_bytes())
        + len(AckOptionSelect.readout("5").to_bytes())
    )
    return wire_time_s(sign_on, start_baud_rate) + wire_time_s(readout_bytes, baud_rate) + 3 * REACTION_TIME_S


@dataclass(frozen=True)
class ReadoutFigures:
    name: str
    readout_bytes: int
    elapsed_s: float
    bound_s: float
    cpu_s_per_readout: float

    @property
    def ratio(self) -> float:
        return self.elapsed_s / self.bound_s


async def _readouts(config: Iec21MeterConfig, rounds: int) -> list[Iec21Readout]:
    line = SimulatedLine(LineSettings.parse("7E1", 300), name="bench")
    meter = Iec21Meter(config)
    task = asyncio.get_running_loop().create_task(meter.serve(line.b))
    results = []
    try:
        for _ in range(rounds):
            # A fresh session each time, started once the meter is idle again, so every readout
            # is measured on its own (a session would otherwise wait out the meter's NAK window).
            results.append(await Iec21Session(line.a, retries=0).readout())
            await asyncio.sleep(2.0)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await line.close()
    return results


def measure(name: str, config: Iec21MeterConfig, rounds: int) -> ReadoutFigures:
    """Run ``rounds`` readouts on a virtual clock; elapsed time of the first, CPU time per readout."""
    started_cpu = time.process_time()
    readouts = VirtualClock().run(_readouts(config, rounds))
    cpu_s = (time.process_time() - started_cpu) / rounds
    first = readouts[0]
    if not all(math.isclose(readout.elapsed_s, first.elapsed_s, rel_tol=1e-6) for readout in readouts):
        raise AssertionError("readouts on the virtual clock must all take the same time")
    return ReadoutFigures(name, len(first.raw), first.elapsed_s, lower_bound_s(len(first.raw)), cpu_s)


def report(rows: list[ReadoutFigures]) -> str:
    title = "IEC 62056-21 readout, 300 Bd sign-on -> 9600 Bd, simulated line, virtual clock"
    lines = [title, "-" * len(title)]
    for row in rows:
        verdict = "ok" if row.ratio <= TARGET_RATIO else "ABOVE TARGET"
        lines.append(
            f"{row.name}: {row.readout_bytes} B data message | elapsed {row.elapsed_s:.4f} s | "
            f"floor {row.bound_s:.4f} s | ratio {row.ratio:.4f} (target <= {TARGET_RATIO}: {verdict}) | "
            f"CPU {row.cpu_s_per_readout * 1000:.2f} ms per readout"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=50, help="readouts per measurement (default 50)")
    args = parser.parse_args(argv)
    rows = [
        measure("5-line sample", Iec21MeterConfig(), args.rounds),
        measure("19-line sample", Iec21MeterConfig(full_readout=True), args.rounds),
    ]
    print(report(rows))


if __name__ == "__main__":
    main()
