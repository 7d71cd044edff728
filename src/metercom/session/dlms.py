"""DLMS/COSEM client session: :class:`DlmsClient`, a thin async shell over the sans-I/O
:class:`~metercom.codec.dlms.client.DlmsClientConnection`.

Rule (DESIGN.md sections 1, 2 and 4): this module is the only loop that awaits for a DLMS
conversation. The codec decides every APDU; the session moves them over an APDU link
(:mod:`metercom.session.dlms_link`: the IP wrapper or HDLC) on any
:class:`~metercom.transport.base.Transport`, waits only through asyncio on the event loop's
clock (virtual in tests), turns the meter's values into typed, scaled values with
:mod:`metercom.model.cosem` (scaling happens there, never in the codec), and raises only the
error tree. Keys and passwords are never logged and never appear in a message or repr.

Theory of operation::

    async with DlmsClient.connect("tcp://10.0.0.5:4059", auth="low", password=b"12345678") as meter:
        energy = await meter.get("1-0:1.8.0")          # Quantity(Decimal('12345.67'), Unit.WATT_HOUR)
        profile = await meter.read_profile("1-0:99.1.0", start=t0, end=t1)

* ``connect`` opens the transport the URL names (``tcp://`` and ``udp://``: wrapper;
  ``hdlc+tcp://``: HDLC through a TCP converter; ``hdlc+serial:///dev/ttyUSB0?baud=9600``:
  HDLC 8N1; ``iec21+hdlc:///dev/ttyUSB0``: mode E, IEC 62056-21 sign-on at 300 Bd 7E1,
  ``ACK 2 Z 2``, then HDLC 8N1 at the offered speed) or takes an open Transport with ``link=``,
  brings the link up, associates (AARQ/AARE, LLS, HLS-GMAC or HLS-SHA256 passes 3 and 4) and
  on leaving the block releases (RLRQ/RLRE) and closes, even after an error: best effort,
  each step bounded by ``release_timeout_s``.
* One request at a time (a lock): send the request, write every APDU the codec asks for
  (block transfer, HLS pass 3), read until it completes. Every APDU awaited is bounded by
  ``timeout_s`` on the loop clock, so a silent meter gives
  :class:`~metercom.errors.TransportTimeout` at exactly that time and a meter that closes its
  socket gives :class:`~metercom.errors.ConnectionLost` at once.
* Retries per layer: HDLC retransmits inside its codec (``hdlc_retries``); on the wrapper a GET
  (and only a GET: it is idempotent) is repeated after a TransportTimeout, at most ``retries``
  times, with a new invoke-id so a late answer to the first attempt is discarded. SET and
  ACTION are never repeated (a disconnect must not happen twice).
* Values: :meth:`DlmsClient.get` returns a :class:`~metercom.model.cosem.Quantity` (exact
  ``Decimal`` and unit) for scaled attributes (Register, Extended and Demand register values;
  the ``scaler_unit`` is read once and cached per object), an aware ``datetime`` for the
  Clock's time, else the plain Python value (``raw=True`` gives the
  :class:`~metercom.model.dlms_data.Data`). :meth:`DlmsClient.read` gives a
  :class:`~metercom.model.reading.Reading`.
* Class ids: given, else taken from the object list once it was read
  (:meth:`DlmsClient.read_object_list`), else inferred from the OBIS code (:func:`guess_class_id`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import urllib.parse
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

from metercom.codec.base import NEED_DATA
from metercom.codec.dlms.acse import (
    AuthenticationMechanism,
    ClientAssociationSettings,
    NegotiatedAssociation,
)
from metercom.codec.dlms.axdr import ProfileDecoder, decode_data_exact
from metercom.codec.dlms.blocks import split_get_many
from metercom.codec.dlms.client import (
    Action,
    ActionCompleted,
    ApduDiscarded,
    Associate,
    AssociationEstablished,
    ClientEvent,
    ClientRequest,
    ClientState,
    DlmsClientConnection,
    Get,
    GetCompleted,
    GetMany,
    NotificationReceived,
    Release,
    RequestFailed,
    Set,
    SetCompleted,
    Transmit,
)
from metercom.codec.dlms.conformance import Conformance
from metercom.codec.dlms.results import DataAccessResult, DlmsResultError, error_for_result
from metercom.codec.dlms.security import (
    CounterStore,
    Protection,
    SecurityContext,
    make_challenge,
)
from metercom.codec.dlms.xdlms import (
    CaptureObjectDefinition,
    CosemAttributeDescriptor,
    CosemMethodDescriptor,
    EntryDescriptor,
    GetRequestNormal,
    RangeDescriptor,
)
from metercom.codec.hdlc import HdlcAddress, HdlcParameters
from metercom.errors import (
    ConfigError,
    ConnectionLost,
    InputError,
    LocalProtocolError,
    MetercomError,
    RemoteProtocolError,
    TransportError,
    TransportTimeout,
)
from metercom.model.cosem import (
    CaptureObject,
    ControlState,
    ObjectListElement,
    Quantity,
    find_class,
    parse_capture_objects,
    parse_object_list,
    scale,
)
from metercom.model.cosem.registers import scaler_unit_of
from metercom.model.dlms_data import CosemDateTime, Data, DlmsType, DlmsValueError
from metercom.model.obis import Obis
from metercom.model.reading import Reading, ReadingValue
from metercom.model.units import ScalerUnit, Unit, unit_symbol
from metercom.session.dlms_link import ApduLink, HdlcLink, WrapperLink
from metercom.transport.base import LineSettings, Transport
from metercom.transport.url import open_transport

__all__ = [
    "AUTH_MECHANISMS",
    "DlmsClient",
    "DlmsKeys",
    "ProfileColumn",
    "ProfileReadout",
    "guess_class_id",
    "parse_dlms_url",
]

log = logging.getLogger(__name__)

#: ``auth=`` names and the mechanism each selects.
AUTH_MECHANISMS: Final = {
    "none": AuthenticationMechanism.NONE,
    "low": AuthenticationMechanism.LOW,
    "hls-gmac": AuthenticationMechanism.HIGH_GMAC,
    "hls-sha256": AuthenticationMechanism.HIGH_SHA256,
}
_PROTECTIONS: Final = {
    "glo": Protection.GLOBAL,
    "ded": Protection.DEDICATED,
    "general-glo": Protection.GENERAL_GLOBAL,
}
_LINKS: Final = ("wrapper", "hdlc", "iec21+hdlc")

CLOCK: Final = Obis(0, 0, 1, 0, 0, 255)
CURRENT_ASSOCIATION: Final = Obis(0, 0, 40, 0, 0, 255)
DISCONNECT_CONTROL: Final = Obis(0, 0, 96, 3, 10, 255)

#: Target of a GET/SET/ACTION: an OBIS code (text or value) or a complete descriptor.
Target = str | Obis | CosemAttributeDescriptor


# --- keys --------------------------------------------------------------------------------------


def _hex(value: object, name: str) -> bytes:
    if isinstance(value, bytes):
        return value
    if not isinstance(value, str):
        raise ConfigError(f"key file: {name} must be hex text")
    try:
        return bytes.fromhex(value.strip().replace(":", "").replace(" ", ""))
    except ValueError:
        raise ConfigError(f"key file: {name} is not hex") from None


@dataclass(frozen=True, slots=True, repr=False)
class DlmsKeys:
    """Security suite 0 keys of one client association. Never shown in a repr or message.

    ``encryption_key`` (EK, the global unicast key) and ``authentication_key`` (AK) are 16
    bytes; ``system_title`` is our 8-byte system title, ``server_system_title`` the meter's
    when known in advance (else taken from the AARE). ``invocation_counter`` is the next own
    frame counter to use when no counter store knows a higher one.
    """

    encryption_key: bytes
    authentication_key: bytes
    system_title: bytes
    server_system_title: bytes | None = None
    dedicated_key: bytes | None = None
    broadcast_key: bytes | None = None
    invocation_counter: int = 0

    def __repr__(self) -> str:
        return f"DlmsKeys(system_title={self.system_title.hex()}, <keys hidden>)"

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> DlmsKeys:
        """Read a key file: JSON ``{"ek": hex, "ak": hex, "system_title": hex, ...}`` or lines
        ``name = hex`` (names ek/encryption_key, ak/authentication_key, system_title,
        server_system_title, dedicated_key, broadcast_key, invocation_counter)."""
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read key file {os.fspath(path)!r}: {exc.strerror or exc}") from exc
        values: dict[str, Any]
        if text.lstrip().startswith("{"):
            try:
                values = json.loads(text)
            except ValueError as exc:
                raise ConfigError(f"key file {os.fspath(path)!r} is not valid JSON: {exc}") from exc
        else:
            values = {}
            for raw_line in text.splitlines():
                line = raw_line.split("#", 1)[0].strip()
                if not line:
                    continue
                name, sep, value = line.partition("=") if "=" in line else line.partition(":")
                if not sep:
                    raise ConfigError(f"key file {os.fspath(path)!r}: expected 'name = hex' lines")
                values[name.strip().lower()] = value.strip()
        return cls.from_mapping(values)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> DlmsKeys:
        def pick(*names: str) -> Any:
            for name in names:
                if name in values:
                    return values[name]
            return None

        ek = pick("ek", "encryption_key", "guek", "block_cipher_key")
        ak = pick("ak", "authentication_key")
        title = pick("system_title", "client_system_title")
        if ek is None or ak is None or title is None:
            raise ConfigError("key file needs ek, ak and system_title")
        optional = {
            name: _hex(pick(name), name) if pick(name) is not None else None
            for name in ("server_system_title", "dedicated_key", "broadcast_key")
        }
        counter = pick("invocation_counter")
        return cls(
            _hex(ek, "ek"),
            _hex(ak, "ak"),
            _hex(title, "system_title"),
            optional["server_system_title"],
            optional["dedicated_key"],
            optional["broadcast_key"],
            int(counter) if counter is not None else 0,
        )


# --- URLs --------------------------------------------------------------------------------------


def parse_dlms_url(url: str) -> tuple[str, str, LineSettings | None]:
    """Split a DLMS URL into (link kind, transport URL, line settings); InputError if unknown.

    ``tcp://h:p`` / ``udp://h:p`` -> wrapper; ``hdlc+tcp://h:p`` -> HDLC over TCP;
    ``hdlc+serial:///dev/x?baud=9600`` -> HDLC over serial 8N1; ``iec21+hdlc:///dev/x`` ->
    mode E (the line starts at 300 Bd 7E1).
    """
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    rest = url.split("://", 1)[1] if "://" in url else ""
    accepted = (
        "tcp://host:4059, udp://host:4059, hdlc+tcp://host:port, "
        "hdlc+serial:///dev/ttyUSB0?baud=9600, iec21+hdlc:///dev/ttyUSB0"
    )
    if scheme in ("tcp", "udp"):
        return "wrapper", url, None
    if scheme == "hdlc+tcp":
        return "hdlc", f"tcp://{rest}", None
    if scheme == "hdlc+serial":
        query = urllib.parse.parse_qs(parts.query)
        baud = query.get("baud", ["9600"])[-1]
        if not baud.isdigit() or int(baud) <= 0:
            raise InputError(f"cannot use DLMS URL {url!r}: baud must be a positive integer, got {baud!r}")
        return "hdlc", f"serial://{parts.path}", LineSettings(int(baud), 8, "N", 1)
    if scheme == "iec21+hdlc":
        return "iec21+hdlc", f"serial://{parts.path}", LineSettings(300, 7, "E", 1)
    raise InputError(f"cannot use DLMS URL {url!r}: unknown scheme {scheme!r}. Accepted forms: {accepted}")


# --- class ids ---------------------------------------------------------------------------------


def guess_class_id(obis: Obis) -> int:
    """The interface class an OBIS code usually has (used when neither the caller nor the object
    list says): Clock 8, Association LN 15, Disconnect control 70, profiles 7; electricity
    values (A=1, C 1..80) Register 3, maximum demand (D=6) Extended register 4, current and last
    average demand (D=4, 5) Demand register 5; everything else Data (1)."""
    a, c, d = obis.a, obis.c, obis.d
    if (a, c, d) == (0, 1, 0):
        return 8
    if (a, c, d) == (0, 40, 0):
        return 15
    if (a, c, d) == (0, 96, 3) and obis.e == 10:
        return 70
    if c == 99 or (a == 1 and c == 98):
        return 7
    if a == 1 and 1 <= c <= 80:
        if d == 6:  # maximum demand with its capture time: Extended register
            return 4
        if d in (4, 5):  # current / last average demand: Demand register
            return 5
        return 3
    return 1


# --- profile results ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProfileColumn:
    """One column of a profile read: its capture object, a name and (for scaled values) the unit."""

    capture_object: CaptureObject
    name: str
    scaler_unit: ScalerUnit | None = None

    @property
    def unit(self) -> str | None:
        return None if self.scaler_unit is None else unit_symbol(self.scaler_unit.unit)


@dataclass(frozen=True, slots=True)
class ProfileReadout:
    """Rows of a profile read: ``rows[i][j]`` is column j of entry i (aware datetime, Decimal
    for scaled values, else the plain value; None for null-data)."""

    obis: Obis
    columns: tuple[ProfileColumn, ...]
    rows: tuple[tuple[object, ...], ...]
    blocks: int = 0

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def records(self) -> list[dict[str, object]]:
        """One dict per row keyed by column name."""
        names = self.names
        return [dict(zip(names, row, strict=True)) for row in self.rows]

    def readings(self) -> list[Reading]:
        """One :class:`Reading` per scaled or plain value cell, stamped with the row's clock."""
        clock = next((i for i, c in enumerate(self.columns) if c.capture_object.is_clock_time), None)
        out: list[Reading] = []
        for row in self.rows:
            when = row[clock] if clock is not None else None
            stamp = when if isinstance(when, datetime) else None
            for i, (column, cell) in enumerate(zip(self.columns, row, strict=True)):
                if i == clock:
                    continue
                out.append(
                    Reading(
                        column.capture_object.logical_name,
                        _reading_value(cell),
                        column.unit,
                        captured_at=stamp,
                    )
                )
        return out


def _reading_value(value: object) -> ReadingValue:
    if value is None or isinstance(value, Decimal | str | bytes | bool | datetime):
        return value
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(value))
    return str(value)


# --- the client --------------------------------------------------------------------------------


class DlmsClient:
    """One DLMS association with one meter (see the module docstring). Build it with
    :meth:`connect`; the attributes are read-only views for diagnostics."""

    def __init__(
        self,
        link: ApduLink,
        connection: DlmsClientConnection,
        *,
        timeout_s: float,
        retries: int,
        tz: tzinfo,
        release_timeout_s: float,
        own_transport: bool,
    ) -> None:
        self.link = link
        self.connection = connection
        self.timeout_s = timeout_s
        self.retries = retries
        self.tz = tz
        self.release_timeout_s = release_timeout_s
        self._own_transport = own_transport
        self._lock = asyncio.Lock()
        self._scalers: dict[tuple[int, Obis, int], ScalerUnit] = {}
        self._classes: dict[Obis, int] = {}
        self._capture_objects: dict[Obis, list[CaptureObject]] = {}
        #: Unsolicited notifications received while waiting for answers.
        self.notifications: list[NotificationReceived] = []
        #: APDUs that belonged to no request (late answers), for diagnostics.
        self.discarded = 0

    def __repr__(self) -> str:
        return f"<DlmsClient {self.link.transport.url} {self.connection.state.value}>"

    # -- opening and closing ---------------------------------------------------------------------

    @classmethod
    @contextlib.asynccontextmanager
    async def connect(
        cls,
        target: str | Transport,
        *,
        client: int = 16,
        server: int = 1,
        physical: int | None = None,
        auth: str = "none",
        password: bytes | str | None = None,
        keys: DlmsKeys | None = None,
        counter_store: CounterStore | None = None,
        ciphered: bool | None = None,
        protection: str = "glo",
        timeout_s: float = 10.0,
        retries: int = 1,
        link: str | None = None,
        max_pdu_size: int = 0xFFFF,
        hdlc_max_info: int = 128,
        hdlc_window: int = 1,
        hdlc_timeout_s: float = 3.0,
        hdlc_retries: int = 3,
        baud_max: int | None = 9600,
        connect_timeout_s: float = 10.0,
        release_timeout_s: float = 3.0,
        tz: tzinfo = UTC,
        conformance: Conformance | None = None,
    ) -> AsyncIterator[DlmsClient]:
        """``async with DlmsClient.connect(url, ...) as meter``: open, associate, and on exit
        release and close (see the module docstring for URLs and ``link=`` for a Transport).

        ``auth``: none, low (LLS, ``password``), hls-gmac (``keys``), hls-sha256 (``password``
        is the HLS secret; ``keys`` for the system title). ``ciphered`` defaults to True when
        ``keys`` are given. ``timeout_s`` bounds every answer, ``retries`` repeats GETs on the
        wrapper after a time-out. Raises the error tree: ConnectError, TransportTimeout,
        AuthenticationError, DeviceRejectedError (e.g. an association rejected), ConfigError.
        """
        mechanism = AUTH_MECHANISMS.get(auth.lower())
        if mechanism is None:
            raise ConfigError(f"unknown auth {auth!r}; use one of {', '.join(AUTH_MECHANISMS)}")
        if timeout_s <= 0 or retries < 0:
            raise ConfigError("timeout_s must be positive and retries not negative")
        secret = password.encode() if isinstance(password, str) else password
        use_cipher = keys is not None if ciphered is None else ciphered
        if use_cipher and keys is None:
            raise ConfigError("a ciphered association needs keys (DlmsKeys)")
        if mechanism is AuthenticationMechanism.HIGH_GMAC and keys is None:
            raise ConfigError("HLS-GMAC needs keys (DlmsKeys: ek, ak, system title)")
        prot = _PROTECTIONS.get(protection)
        if prot is None:
            raise ConfigError(f"unknown protection {protection!r}; use one of {', '.join(_PROTECTIONS)}")
        security = None
        if keys is not None:
            security = SecurityContext(
                system_title=keys.system_title,
                encryption_key=keys.encryption_key,
                authentication_key=keys.authentication_key,
                peer_system_title=keys.server_system_title,
                invocation_counter=keys.invocation_counter,
                dedicated_key=keys.dedicated_key,
                broadcast_key=keys.broadcast_key,
                counter_store=counter_store,
            )
        try:
            settings = ClientAssociationSettings(
                mechanism=mechanism,
                password=secret if mechanism is not AuthenticationMechanism.HIGH_GMAC else None,
                system_title=keys.system_title if keys is not None else None,
                ciphered=use_cipher,
                max_receive_pdu_size=max_pdu_size,
                conformance=conformance,
                dedicated_key=keys.dedicated_key if keys is not None and use_cipher else None,
            )
            connection = DlmsClientConnection(settings, security=security, protection=prot)
        except LocalProtocolError as exc:
            raise ConfigError(str(exc)) from exc

        own = isinstance(target, str)
        if isinstance(target, str):
            kind, transport_url, line = parse_dlms_url(target)
            if link is not None and link != kind:
                raise ConfigError(f"link={link!r} contradicts the URL {target!r}")
            transport = await open_transport(transport_url, line=line, connect_timeout_s=connect_timeout_s)
            transport.url = target
        else:
            transport = target
            kind = link or ("wrapper" if transport.line is None else "hdlc")
            if kind not in _LINKS:
                raise ConfigError(f"unknown link {kind!r}; use one of {', '.join(_LINKS)}")
        try:
            apdu_link = await _open_link(
                transport,
                kind,
                client=client,
                server=server,
                physical=physical,
                parameters=HdlcParameters(hdlc_max_info, hdlc_max_info, hdlc_window, hdlc_window),
                hdlc_timeout_s=hdlc_timeout_s,
                hdlc_retries=hdlc_retries,
                baud_max=baud_max,
                connect_timeout_s=connect_timeout_s,
            )
        except BaseException:
            if own:
                await transport.close()
            raise
        meter = cls(
            apdu_link,
            connection,
            timeout_s=timeout_s,
            retries=retries,
            tz=tz,
            release_timeout_s=release_timeout_s,
            own_transport=own,
        )
        try:
            await meter._associate()
            yield meter
        finally:
            await meter.close()

    async def _associate(self) -> NegotiatedAssociation:
        challenge = make_challenge(16) if self.connection.settings.mechanism.is_high_level else None
        event = await self._exchange(Associate(challenge))
        if not isinstance(event, AssociationEstablished):
            raise RemoteProtocolError(f"association ended with {event!r}", layer="dlms-session")
        log.info("%s: associated (%s)", self.link.transport.url, event.association.mechanism.name)
        return event.association

    @property
    def association(self) -> NegotiatedAssociation | None:
        """What the AARE (and HLS) established."""
        return self.connection.association

    async def release(self) -> None:
        """Release the association (RLRQ/RLRE), bounded by ``release_timeout_s``; never raises
        for a meter that does not answer (the association is over for us either way)."""
        if self.connection.state is not ClientState.ASSOCIATED or not self.link.alive:
            return
        try:
            async with asyncio.timeout(self.release_timeout_s):
                await self._exchange(Release(), timeout_s=self.release_timeout_s)
        except (MetercomError, TimeoutError) as exc:
            log.debug("%s: release not confirmed: %s", self.link.transport.url, type(exc).__name__)
            self.connection.abandon()
            self.connection.state = ClientState.IDLE

    async def close(self) -> None:
        """Release (best effort), take the link down and close the transport if we opened it."""
        try:
            await self.release()
            if self.link.alive:
                with contextlib.suppress(MetercomError, TimeoutError):
                    async with asyncio.timeout(self.release_timeout_s):
                        await self.link.close(self.release_timeout_s)
        finally:
            if self._own_transport:
                await self.link.transport.close()

    # -- the exchange ----------------------------------------------------------------------------

    async def _exchange(self, request: ClientRequest, *, timeout_s: float | None = None) -> ClientEvent:
        attempts = 1 + (self.retries if isinstance(request, Get | GetMany) and self.link.app_retry else 0)
        async with self._lock:
            for attempt in range(attempts):
                try:
                    return await self._exchange_once(request, timeout_s or self.timeout_s)
                except TransportTimeout:
                    if attempt + 1 >= attempts or not self.link.alive:
                        raise
                    log.info("%s: no answer to %r, retrying", self.link.transport.url, request)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _exchange_once(self, request: ClientRequest, timeout_s: float) -> ClientEvent:
        conn = self.connection
        loop = asyncio.get_running_loop()
        if not self.link.alive:
            raise ConnectionLost(f"{self.link.transport.url}: the link is down")
        try:
            await self.link.send(conn.send(request, now=loop.time()))
            while True:
                try:
                    apdu = await self.link.receive(timeout_s)
                except TransportTimeout as exc:
                    raise TransportTimeout(
                        f"{self.link.transport.url}: no answer to {request!r} within {timeout_s:g} s"
                    ) from exc
                except ConnectionLost as exc:
                    raise ConnectionLost(
                        f"{self.link.transport.url}: the meter closed the link while we waited for the "
                        f"answer to {request!r}"
                    ) from exc
                conn.receive_data(apdu, now=loop.time())
                while (event := conn.next_event()) is not NEED_DATA:
                    if isinstance(event, Transmit):
                        await self.link.send(event.apdu)
                    elif isinstance(event, NotificationReceived):
                        self.notifications.append(event)
                    elif isinstance(event, ApduDiscarded):
                        self.discarded += 1
                        log.debug("%s: %s", self.link.transport.url, event.reason)
                    elif isinstance(event, RequestFailed):
                        raise event.error
                    else:
                        return event
        except BaseException:
            conn.abandon()
            raise

    # -- descriptors -----------------------------------------------------------------------------

    def _obis(self, target: str | Obis) -> Obis:
        return target if isinstance(target, Obis) else Obis.parse(target)

    def class_id_of(self, obis: Obis) -> int:
        """The class of ``obis``: from the object list if read, else :func:`guess_class_id`."""
        return self._classes.get(obis) or guess_class_id(obis)

    def descriptor(
        self, target: Target, attribute: int = 2, class_id: int | None = None
    ) -> CosemAttributeDescriptor:
        """The attribute descriptor for a target (OBIS text, Obis or descriptor)."""
        if isinstance(target, CosemAttributeDescriptor):
            return target
        obis = self._obis(target)
        return CosemAttributeDescriptor(class_id or self.class_id_of(obis), obis, attribute)

    def _scaler_source(self, attribute: CosemAttributeDescriptor) -> CosemAttributeDescriptor | None:
        ic = find_class(attribute.class_id)
        if ic is None or not ic.has_attribute(attribute.attribute_id):
            return None
        scaled_by = ic.attribute(attribute.attribute_id).scaled_by
        if scaled_by is None:
            return None
        return CosemAttributeDescriptor(attribute.class_id, attribute.instance_id, scaled_by)

    def _cached_scaler(self, source: CosemAttributeDescriptor) -> ScalerUnit | None:
        return self._scalers.get((source.class_id, source.instance_id, source.attribute_id))

    def _remember_scaler(self, source: CosemAttributeDescriptor, value: Data) -> ScalerUnit:
        su = scaler_unit_of(value, f"{source.describe()} scaler_unit")
        self._scalers[(source.class_id, source.instance_id, source.attribute_id)] = su
        return su

    def _interpret(self, attribute: CosemAttributeDescriptor, value: Data, su: ScalerUnit | None) -> object:
        if su is not None and value.type != DlmsType.NULL_DATA:
            return scale(value, su, where=attribute.describe())
        if attribute.class_id == 8 and attribute.attribute_id == 2 and _is_date_time(value):
            try:
                return value.as_date_time().to_datetime(default_tz=self.tz)
            except DlmsValueError:
                return value.as_date_time()
        return value.to_python()

    # -- services --------------------------------------------------------------------------------

    async def get_data(
        self,
        target: Target,
        attribute: int = 2,
        class_id: int | None = None,
        *,
        selection: RangeDescriptor | EntryDescriptor | None = None,
    ) -> Data:
        """The attribute's value as received (``Data``); refusals raise their DlmsResultError."""
        event = await self._get(self.descriptor(target, attribute, class_id), selection)
        return event.value()

    async def _get(
        self, attribute: CosemAttributeDescriptor, selection: RangeDescriptor | EntryDescriptor | None = None
    ) -> GetCompleted:
        event = await self._exchange(Get(attribute, selection))
        if not isinstance(event, GetCompleted):  # pragma: no cover - the codec pairs them
            raise RemoteProtocolError(f"GET ended with {event!r}", layer="dlms-session")
        return event

    async def get(
        self,
        target: Target,
        attribute: int = 2,
        class_id: int | None = None,
        *,
        raw: bool = False,
    ) -> object:
        """Read one attribute: a Quantity for scaled values (scaler_unit read once, cached), an
        aware datetime for the Clock time, else the plain Python value; ``raw=True``: Data."""
        descriptor = self.descriptor(target, attribute, class_id)
        value = (await self._get(descriptor)).value()
        if raw:
            return value
        su = await self._scaler_for(descriptor)
        return self._interpret(descriptor, value, su)

    async def _scaler_for(self, descriptor: CosemAttributeDescriptor) -> ScalerUnit | None:
        source = self._scaler_source(descriptor)
        if source is None:
            return None
        cached = self._cached_scaler(source)
        if cached is not None:
            return cached
        return self._remember_scaler(source, (await self._get(source)).value())

    async def read(self, target: Target, attribute: int = 2, class_id: int | None = None) -> Reading:
        """Read one attribute as a protocol-neutral :class:`Reading`."""
        descriptor = self.descriptor(target, attribute, class_id)
        return _to_reading(descriptor, await self.get(descriptor))

    async def get_many(
        self,
        targets: Sequence[Target],
        attribute: int = 2,
        *,
        raw: bool = False,
        return_errors: bool = False,
    ) -> list[object]:
        """Read several attributes with get-request-with-list, split to fit the negotiated PDU
        size (one by one when the meter lacks multiple-references). Scalers not cached yet are
        read in the same requests. A refused attribute raises its DlmsResultError, or with
        ``return_errors=True`` the exception takes the value's place."""
        descriptors = [self.descriptor(t, attribute) for t in targets]
        sources: list[CosemAttributeDescriptor] = []
        if not raw:
            for d in descriptors:
                source = self._scaler_source(d)
                if source is not None and self._cached_scaler(source) is None and source not in sources:
                    sources.append(source)
        wanted = [*descriptors, *sources]
        results = await self._get_list(wanted)
        for source, result in zip(sources, results[len(descriptors) :], strict=True):
            if isinstance(result, Data):
                self._remember_scaler(source, result)
        out: list[object] = []
        for d, result in zip(descriptors, results[: len(descriptors)], strict=True):
            if isinstance(result, DlmsResultError):
                if not return_errors:
                    raise result
                out.append(result)
                continue
            if raw:
                out.append(result)
                continue
            source = self._scaler_source(d)
            su = self._cached_scaler(source) if source is not None else None
            if source is not None and su is None:
                reason = (
                    f"GET {d.describe()}: its scaler_unit could not be read, so the value cannot be scaled"
                )
                if not return_errors:
                    raise RemoteProtocolError(reason, layer="dlms-session")
                out.append(RemoteProtocolError(reason, layer="dlms-session"))
                continue
            out.append(self._interpret(d, result, su))
        return out

    async def _get_list(self, attributes: Sequence[CosemAttributeDescriptor]) -> list[Data | DlmsResultError]:
        conn = self.connection
        association = conn.association
        multiple = association is None or bool(
            association.negotiated_conformance & Conformance.MULTIPLE_REFERENCES
        )
        out: list[Data | DlmsResultError] = []
        if not multiple:
            for a in attributes:
                event = await self._get(a)
                out.extend(_results(event))
            return out
        requests = split_get_many(
            attributes, max_pdu_size=conn.max_pdu_size, overhead=conn.overhead, single_as_normal=True
        )
        for request in requests:
            if isinstance(request, GetRequestNormal):
                out.extend(_results(await self._get(request.attribute)))
                continue
            answer = await self._exchange(GetMany([i.attribute for i in request.attributes]))
            if not isinstance(answer, GetCompleted):  # pragma: no cover
                raise RemoteProtocolError(f"GET with list ended with {answer!r}", layer="dlms-session")
            out.extend(_results(answer))
        return out

    async def set(
        self,
        target: Target,
        value: Data,
        attribute: int = 2,
        class_id: int | None = None,
    ) -> None:
        """Write one attribute (in datablocks when it does not fit one APDU); a refusal raises
        its DlmsResultError. Never repeated automatically."""
        descriptor = self.descriptor(target, attribute, class_id)
        event = await self._exchange(Set(descriptor, value))
        if not isinstance(event, SetCompleted):  # pragma: no cover
            raise RemoteProtocolError(f"SET ended with {event!r}", layer="dlms-session")
        event.raise_for_result()

    async def action(
        self,
        target: str | Obis | CosemMethodDescriptor,
        method: int = 1,
        parameters: Data | None = None,
        class_id: int | None = None,
    ) -> Data | None:
        """Invoke a method (parameters in pblocks when long); returns the return parameters.
        A refusal raises its DlmsResultError. Never repeated automatically."""
        if isinstance(target, CosemMethodDescriptor):
            descriptor = target
        else:
            obis = self._obis(target)
            descriptor = CosemMethodDescriptor(class_id or self.class_id_of(obis), obis, method)
        event = await self._exchange(Action(descriptor, parameters))
        if not isinstance(event, ActionCompleted):  # pragma: no cover
            raise RemoteProtocolError(f"ACTION ended with {event!r}", layer="dlms-session")
        event.raise_for_result()
        returned = event.return_parameters
        return returned if isinstance(returned, Data) else None

    # -- objects ---------------------------------------------------------------------------------

    async def read_object_list(self) -> list[ObjectListElement]:
        """The current association's object list (0.0.40.0.0.255 attribute 2); also teaches
        the client every object's class id."""
        data = await self.get_data(CURRENT_ASSOCIATION, 2, 15)
        elements = parse_object_list(data)
        for element in elements:
            self._classes[element.logical_name] = element.class_id
        return elements

    async def read_clock(self) -> datetime:
        """The meter's clock (0.0.1.0.0.255 attribute 2) as an aware datetime (``tz`` when the
        meter sends no deviation)."""
        data = await self.get_data(CLOCK, 2, 8)
        try:
            return data.as_date_time().to_datetime(default_tz=self.tz)
        except DlmsValueError as exc:
            raise RemoteProtocolError(f"the meter's clock is not a usable date-time: {exc}") from exc

    async def set_clock(self, when: datetime) -> None:
        """Set the meter's clock to ``when`` (aware), sent as octet-string date-time."""
        if when.tzinfo is None:
            raise InputError("set_clock needs an aware datetime")
        await self.set(CLOCK, Data.octet_date_time(CosemDateTime.from_datetime(when)), 2, 8)

    async def _control(self, method: int, obis: str | Obis) -> ControlState:
        target = self._obis(obis)
        await self.action(target, method, Data.integer(0), 70)
        return ControlState((await self.get_data(target, 3, 70)).as_int())

    async def disconnect(self, obis: str | Obis = DISCONNECT_CONTROL) -> ControlState:
        """Disconnect control remote_disconnect (class 70 method 1), then read back control_state."""
        return await self._control(1, obis)

    async def reconnect(self, obis: str | Obis = DISCONNECT_CONTROL) -> ControlState:
        """Disconnect control remote_reconnect (class 70 method 2), then read back control_state."""
        return await self._control(2, obis)

    async def capture_objects(self, obis: str | Obis) -> list[CaptureObject]:
        """A profile's capture objects (class 7 attribute 3), read once and cached."""
        target = self._obis(obis)
        cached = self._capture_objects.get(target)
        if cached is None:
            cached = parse_capture_objects(await self.get_data(target, 3, 7))
            self._capture_objects[target] = cached
        return cached

    async def read_profile(
        self,
        obis: str | Obis,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        columns: Sequence[str | Obis | CaptureObject] | None = None,
        entries: tuple[int, int] | None = None,
    ) -> ProfileReadout:
        """Read a load profile's buffer: by time range (``start``/``end``, aware datetimes,
        range_descriptor on the clock column), by entry (``entries=(first, last)``, 1-based,
        last 0 = the newest) or whole. ``columns`` selects capture objects (by OBIS or object);
        rows come back with aware times and scaled values (scalers read once and cached)."""
        target = self._obis(obis)
        all_columns = await self.capture_objects(target)
        selected = _select_columns(all_columns, columns)
        if (start is None) != (end is None):
            raise InputError("read_profile needs both start and end (or neither)")
        if start is not None and entries is not None:
            raise InputError("read_profile takes a time range or entries, not both")
        selection: RangeDescriptor | EntryDescriptor | None = None
        definitions = (
            [
                CaptureObjectDefinition(c.class_id, c.logical_name, c.attribute_index, c.data_index)
                for c in selected
            ]
            if columns is not None
            else []
        )
        if start is not None and end is not None:
            if start.tzinfo is None or end.tzinfo is None:
                raise InputError("read_profile start and end must be aware datetimes")
            selection = RangeDescriptor.by_time(start, end, selected_values=definitions)
        elif entries is not None:
            first, last = entries
            selection = EntryDescriptor(first, last)
            if columns is not None:
                raise InputError("columns can only be chosen with a time range (entry access takes all)")
        # Scalers of the scaled columns, read once.
        scaled: dict[int, CosemAttributeDescriptor] = {}
        for i, column in enumerate(selected):
            if column.scaled_by is not None:
                scaled[i] = CosemAttributeDescriptor(column.class_id, column.logical_name, column.scaled_by)
        missing = [s for s in scaled.values() if self._cached_scaler(s) is None]
        if missing:
            results = await self._get_list(missing)
            for source, result in zip(missing, results, strict=True):
                if isinstance(result, Data):
                    self._remember_scaler(source, result)
        event = await self._get(CosemAttributeDescriptor(7, target, 2), selection)
        raw = event.raw()
        clock_columns = [i for i, c in enumerate(selected) if c.is_clock_time]
        try:
            rows = ProfileDecoder(date_time_columns=clock_columns).decode(raw)
        except RemoteProtocolError:
            rows = [
                tuple(cell.to_python() for cell in row.as_items())
                for row in decode_data_exact(raw).as_items()
            ]
        names = _column_names(selected)
        profile_columns = tuple(
            ProfileColumn(c, name, self._cached_scaler(scaled[i]) if i in scaled else None)
            for i, (c, name) in enumerate(zip(selected, names, strict=True))
        )
        converted: list[tuple[object, ...]] = []
        width = len(selected)
        scalers = [c.scaler_unit for c in profile_columns]
        cell = self._cell
        for n, row in enumerate(rows):
            if len(row) != width:
                raise RemoteProtocolError(
                    f"profile {target} row {n} has {len(row)} values, {width} columns were asked for",
                    layer="dlms-session",
                )
            # A scaled integer (most cells of a load profile) takes the short way.
            converted.append(
                tuple(
                    su.scale(v) if su is not None and type(v) is int else cell(su, v)
                    for su, v in zip(scalers, row, strict=True)
                )
            )
        return ProfileReadout(target, profile_columns, tuple(converted), event.blocks)

    def _cell(self, su: ScalerUnit | None, value: object) -> object:
        if value is None:
            return None
        if isinstance(value, CosemDateTime):
            try:
                return value.to_datetime(default_tz=self.tz)
            except DlmsValueError:
                return value
        if su is not None and isinstance(value, int | float) and not isinstance(value, bool):
            return su.scale(value)
        return value


# --- helpers -----------------------------------------------------------------------------------


def _is_date_time(value: Data) -> bool:
    return value.type == DlmsType.DATE_TIME or (
        value.type == DlmsType.OCTET_STRING and isinstance(value.value, bytes) and len(value.value) == 12
    )


def _results(event: GetCompleted) -> list[Data | DlmsResultError]:
    out: list[Data | DlmsResultError] = []
    for attribute, result in zip(event.attributes, event.results, strict=True):
        if isinstance(result, DataAccessResult):
            error = error_for_result(result, attribute, service="GET")
            out.append(error if error is not None else Data.null())
        else:
            out.append(decode_data_exact(result))
    return out


def _to_reading(descriptor: CosemAttributeDescriptor, value: object) -> Reading:
    obis = descriptor.instance_id
    if isinstance(value, Quantity):
        return Reading(obis, value.value, value.symbol if value.unit != Unit.COUNT else None)
    if isinstance(value, datetime):
        return Reading(obis, value, captured_at=value)
    if isinstance(value, CosemDateTime):
        return Reading(obis, str(value), raw=value.to_bytes().hex())
    return Reading(obis, _reading_value(value))


def _select_columns(
    all_columns: list[CaptureObject], columns: Sequence[str | Obis | CaptureObject] | None
) -> list[CaptureObject]:
    if columns is None:
        return list(all_columns)
    out: list[CaptureObject] = []
    for wanted in columns:
        if isinstance(wanted, CaptureObject):
            if wanted not in all_columns:
                raise InputError(f"the profile does not capture {wanted.key}")
            out.append(wanted)
            continue
        obis = wanted if isinstance(wanted, Obis) else Obis.parse(wanted)
        match = [c for c in all_columns if c.logical_name == obis]
        if not match:
            raise InputError(
                f"the profile does not capture {obis}; it captures {', '.join(c.key for c in all_columns)}"
            )
        out.append(match[0])
    return out


def _column_names(columns: Sequence[CaptureObject]) -> list[str]:
    plain = [str(c.logical_name) for c in columns]
    return [name if plain.count(name) == 1 else c.key for name, c in zip(plain, columns, strict=True)]


async def _open_link(
    transport: Transport,
    kind: str,
    *,
    client: int,
    server: int,
    physical: int | None,
    parameters: HdlcParameters,
    hdlc_timeout_s: float,
    hdlc_retries: int,
    baud_max: int | None,
    connect_timeout_s: float,
) -> ApduLink:
    if kind == "wrapper":
        return WrapperLink(transport, client, server)
    if kind == "iec21+hdlc":
        from metercom.session.iec21 import Iec21Session

        baud = await Iec21Session(transport, baud_max=baud_max).handover_to_hdlc()
        log.info("%s: mode E hand-over to HDLC at %d Bd", transport.url, baud)
    elif kind != "hdlc":
        raise ConfigError(f"unknown link {kind!r}; use one of {', '.join(_LINKS)}")
    address = HdlcAddress(server, physical) if physical is not None else HdlcAddress(server)
    link = HdlcLink(
        transport,
        client,
        address,
        parameters=parameters,
        response_timeout_s=hdlc_timeout_s,
        max_retries=hdlc_retries,
    )
    try:
        await link.open(connect_timeout_s)
    except TransportTimeout as exc:
        raise TransportTimeout(
            f"{transport.url}: no UA to our SNRM within {connect_timeout_s:g} s; check the server "
            f"address ({address}), client address ({client}) and line settings"
        ) from exc
    except TransportError:
        raise
    return link
