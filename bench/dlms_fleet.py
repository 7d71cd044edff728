"""Benchmark: 1,000 simulated DLMS meters in one process, each answering a full read.

A full read is what a head-end does every day: associate (public client, or HLS-GMAC ciphered
on the management client with ``--hls``), read the clock and every energy register the
association lists, release. The client is our own sans-I/O :class:`DlmsClientConnection`
driven in memory against each meter's :class:`DlmsServer` (no sockets: this measures the
simulator, not the kernel). Reported: memory per meter (tracemalloc, after building the fleet
and after reading it), requests per second the fleet serves, and full reads per second.
"""

from __future__ import annotations

import argparse
import datetime as dt
import time
import tracemalloc

from metercom.clock import VirtualClock
from metercom.codec.base import NEED_DATA
from metercom.codec.dlms.acse import AuthenticationMechanism, ClientAssociationSettings
from metercom.codec.dlms.client import (
    Associate,
    AssociationEstablished,
    ClientRequest,
    DlmsClientConnection,
    Get,
    GetCompleted,
    Release,
    Transmit,
)
from metercom.codec.dlms.security import SecurityContext
from metercom.codec.dlms.server import DlmsServer
from metercom.codec.dlms.xdlms import CosemAttributeDescriptor
from metercom.sim.dlms import (
    DEFAULT_AUTHENTICATION_KEY,
    DEFAULT_ENCRYPTION_KEY,
    DlmsMeterDevice,
    build_meter,
)

_CLOCK = CosemAttributeDescriptor.parse(8, "0.0.1.0.0.255", 2)


def _exchange(
    client: DlmsClientConnection, server: DlmsServer, request: ClientRequest, sap: int
) -> tuple[object, int]:
    """One request to completion; returns the final event and the APDUs the server answered."""
    apdu: bytes | None = client.send(request)
    count = 0
    while apdu is not None:
        reply = server.handle(apdu, client_sap=sap)
        count += 1
        apdu = None
        if reply is None:
            break
        client.receive_data(reply)
        while (event := client.next_event()) is not NEED_DATA:
            if isinstance(event, Transmit):
                apdu = event.apdu
            else:
                return event, count
    raise RuntimeError("the exchange stalled")


def full_read(
    device: DlmsMeterDevice, registers: list[CosemAttributeDescriptor], *, hls: bool, sap: int
) -> int:
    """Associate, read clock and registers, release; returns the number of requests served."""
    server = device.new_server()
    if hls:
        security = SecurityContext(
            system_title=b"MTCBENCH",
            encryption_key=DEFAULT_ENCRYPTION_KEY,
            authentication_key=DEFAULT_AUTHENTICATION_KEY,
        )
        settings = ClientAssociationSettings(
            mechanism=AuthenticationMechanism.HIGH_GMAC, system_title=b"MTCBENCH", ciphered=True
        )
        client = DlmsClientConnection(settings, security=security)
        challenge: bytes | None = b"0123456789abcdef"
    else:
        client = DlmsClientConnection(ClientAssociationSettings())
        challenge = None
    event, served = _exchange(client, server, Associate(client_challenge=challenge), sap)
    if not isinstance(event, AssociationEstablished):
        raise RuntimeError(f"association failed: {event!r}")
    for attribute in [_CLOCK, *registers]:
        event, n = _exchange(client, server, Get(attribute), sap)
        served += n
        if not isinstance(event, GetCompleted):
            raise RuntimeError(f"read failed: {event!r}")
    _, n = _exchange(client, server, Release(), sap)
    return served + n


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--meters", type=int, default=1000)
    parser.add_argument("--profile", default="generic")
    parser.add_argument("--hls", action="store_true", help="HLS-GMAC ciphered management client")
    parser.add_argument("--quick", action="store_true", help="100 meters")
    args = parser.parse_args(argv)
    n = 100 if args.quick else args.meters
    clock = VirtualClock(dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC))

    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    start = time.perf_counter()
    devices = [
        DlmsMeterDevice(build_meter(args.profile, clock=clock, seed=i, serial=f"{i:08d}"), seed=i)
        for i in range(n)
    ]
    build_s = time.perf_counter() - start
    built = tracemalloc.get_traced_memory()[0] - base
    profile = devices[0].meter.profile
    public = "public"
    hls = args.hls or not any(o.class_id == 3 and public in o.access for o in profile.objects)
    association = next(a for a in profile.associations if (a.client_sap in {1, 48}) == hls)
    registers = [
        CosemAttributeDescriptor.parse(3, str(o.logical_name), 2)
        for o in profile.objects
        if o.class_id == 3 and association.name in o.access and o.logical_name.d == 8
    ]
    clock.advance(900)
    sap = association.client_sap
    start = time.perf_counter()
    requests = sum(full_read(d, registers, hls=hls, sap=sap) for d in devices)
    first_s = time.perf_counter() - start
    after = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    clock.advance(900)
    start = time.perf_counter()
    requests = sum(full_read(d, registers, hls=hls, sap=sap) for d in devices)
    read_s = time.perf_counter() - start
    mode = f"HLS-GMAC ciphered, client {sap}" if hls else f"public client {sap}"
    print(f"{n} meters, profile {args.profile}, {mode}: {len(registers)} registers + clock per read")
    print(f"build: {build_s:.2f} s, memory {built / n / 1024:.1f} KiB per meter")
    print(
        f"first read (tracemalloc on): {first_s:.2f} s, memory after it {after / n / 1024:.1f} KiB per meter"
    )
    print(
        f"second read: {read_s:.2f} s, {requests} requests, {requests / read_s:,.0f} requests/s, "
        f"{n / read_s:,.1f} full reads/s"
    )


if __name__ == "__main__":
    main()
