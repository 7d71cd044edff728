"""The IEC 62056-21 simulator fed by the load model: readouts follow the model's registers."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from metercom.clock import VirtualClock
from metercom.model.obis import Obis
from metercom.session.iec21 import Iec21Session
from metercom.sim.iec21 import Iec21Meter, Iec21MeterConfig
from metercom.sim.iec21_live import live_readout
from metercom.sim.load import Household, LoadConfig, LoadModel, Phase
from metercom.transport import LineSettings, SimulatedLine

START = datetime(2026, 1, 1, tzinfo=UTC)


def _values(readings: list[object]) -> dict[str, object]:
    return {r.obis.short: r for r in readings if r.obis is not None}  # type: ignore[attr-defined]


async def test_readouts_follow_the_load_model(vclock: VirtualClock) -> None:
    clock = vclock
    assert clock.now() == START
    model = LoadModel(LoadConfig(Household.seed_example(phases=(Phase.L1, Phase.L2, Phase.L3))), 7, START)
    meter = Iec21Meter(Iec21MeterConfig(readout_provider=live_readout(model, clock)))
    line = SimulatedLine(LineSettings.parse("7E1", 300))
    server = asyncio.create_task(meter.serve(line.b))
    session = Iec21Session(line.a)

    async def read() -> dict[str, object]:
        return _values((await session.readout()).readings)

    await asyncio.sleep(6 * 3600)
    first = await read()
    energy = first["1.8.0"].value  # type: ignore[attr-defined]
    assert energy == Decimal(model.registers.active_import_wh).scaleb(-3).quantize(Decimal("0.001"))
    assert energy > 0
    for code in ("32.7.0", "52.7.0", "72.7.0", "31.7.0", "14.7.0", "F.F.0", "0.9.1", "0.9.2"):
        assert code in first, code
    assert Obis.parse("32.7.0").name == "Voltage L1 instantaneous"
    assert first["0.9.2"].value == "260101"  # type: ignore[attr-defined]

    await asyncio.sleep(timedelta(days=1).total_seconds())
    second = await read()
    assert second["1.8.0"].value > energy  # type: ignore[attr-defined,operator]
    assert second["0.9.2"].value == "260102"  # type: ignore[attr-defined]
    assert clock.now() > START + timedelta(days=1, hours=6)
    server.cancel()
