"""Block transfer of long GET, SET and ACTION messages, for both roles, sans I/O (Green Book DLMS
UA 1000-2 clause 9.3 GET/SET/ACTION services with block transfer, clause 9.4 protocol; IEC
62056-5-3). Also the splitter that packs many attribute reads into as few get-request-with-list
APDUs as the negotiated PDU size allows.

Rule: these helpers only turn APDUs into the next APDU to send; they never do I/O, never read a
clock, and keep their state in plain attributes. Whatever the peer sends that breaks the block
sequence (a number out of order, a different invoke-id, more data than the limit) raises
:class:`~metercom.errors.RemoteProtocolError` on the client side; a server answers it the way
the standard asks (a response carrying data-block-number-invalid, long-set-aborted, ...) and
ends the transfer. Misuse by the caller raises :class:`~metercom.errors.LocalProtocolError`.
The total size of a reassembled message is bounded (``max_size``).

Theory of operation. An xDLMS APDU may not exceed the peer's max receive PDU size, negotiated
in the InitiateRequest/InitiateResponse (client-max-receive-pdu-size for what the server sends,
server-max-receive-pdu-size for what the client sends). When the A-XDR encoding of a value does
not fit, it is cut into blocks; the raw-data of all blocks, concatenated, is the encoding of
the value. Block numbers start at 1 and increase by one::

    GET     C: get-request-normal              S: get-response-with-datablock(1, raw)
            C: get-request-next(1)             S: get-response-with-datablock(2, raw) ...
                                               S: get-response-with-datablock(n, raw, last)
    SET     C: set-request-with-first-datablock(1)        S: set-response-datablock(1)
            C: set-request-with-datablock(2) ...          S: set-response-datablock(2) ...
            C: set-request-with-datablock(n, last)        S: set-response-last-datablock(result, n)
    ACTION  C: action-request-with-first-pblock(1)        S: action-response-next-pblock(1)
            C: action-request-with-pblock(n, last)        S: action-response-normal(result, ...)
            a long result:                                S: action-response-with-pblock(1)
            C: action-request-next-pblock(1)              S: action-response-with-pblock(2, last)

Each sender computes the largest raw-data that keeps the complete APDU within the PDU size:
header + A-XDR length of the raw-data + raw-data <= max PDU size - ``overhead``, where
``overhead`` is what a protection layer adds around each APDU (glo-ciphering with
authentication: tag 1 + length 1..3 + security control 1 + invocation counter 4 + GCM tag 12;
general-glo-ciphering adds the system title, 1 + 8). The values checked against gurux-dlms:
a 512-byte PDU gives get-response-with-datablock APDUs of exactly 512 bytes (500 raw-data bytes).

Use: build the APDU that would be sent whole and hand it to the sender, which sends it as it is
when it fits or else runs the block exchange; the receivers are fed the block APDUs::

    server = GetResponseSender(GetResponseNormal(value, invoke_id_and_priority=iid), max_pdu_size=n)
    send(server.first_response())               # then, per get-request-next received:
    send(server.next_response(request))         # until server.done

    client = GetResponseReceiver(invoke_id_and_priority=iid, context=attribute)
    request = client.receive(block)             # a GetRequestNext to send, or None when done
    rows = ProfileDecoder().decode(client.raw_data())

Decisions where the standard leaves room:

* ACTION pblocks carry the bare A-XDR encoding of the method-invocation-parameters (request)
  or of the return-parameters ``Data`` (response, result success), as gurux-dlms builds them.
* A get-response-with-datablock whose result is a Data-Access-Result ends the transfer whatever
  its last-block flag and block number say (the meter's reason is worth more than a complaint
  about the numbering); :attr:`GetResponseReceiver.result` holds the code and
  :meth:`GetResponseReceiver.raw_data` raises the matching
  :class:`~metercom.codec.dlms.results.DlmsResultError`. Blocks carrying raw-data must be
  numbered 1, 2, 3... exactly.
* A server's error responses carry the block number the client sent.

:func:`split_get_many` caveat: it sizes the *requests* only. The response to a
get-request-with-list can be far larger than its request (a profile buffer, a long string);
the server then sends it in datablocks (block transfer must be in the negotiated conformance)
and their raw-data concatenated is the encoded list of Get-Data-Results
(:func:`metercom.codec.dlms.xdlms.decode_get_data_result_list`). Meters without block transfer
need fewer attributes per request (``max_list_size``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from metercom.codec.dlms.axdr import decode_data_exact, encode_length
from metercom.codec.dlms.results import (
    ActionResult,
    DataAccessResult,
    Describable,
    raise_for_result,
)
from metercom.codec.dlms.xdlms import (
    DEFAULT_INVOKE_ID_AND_PRIORITY,
    ActionRequestNextPblock,
    ActionRequestNormal,
    ActionRequestWithFirstPblock,
    ActionRequestWithPblock,
    ActionResponseNextPblock,
    ActionResponseNormal,
    ActionResponseWithPblock,
    CosemAttributeDescriptor,
    CosemAttributeDescriptorWithSelection,
    CosemMethodDescriptor,
    GetRequestNext,
    GetRequestNormal,
    GetRequestWithList,
    GetResponseNormal,
    GetResponseWithDatablock,
    GetResponseWithList,
    InvokeIdAndPriority,
    SelectiveAccessDescriptor,
    SetRequestNormal,
    SetRequestWithDatablock,
    SetRequestWithFirstDatablock,
    SetResponseDatablock,
    SetResponseLastDatablock,
    SetResponseNormal,
)
from metercom.errors import LocalProtocolError, RemoteProtocolError
from metercom.model.dlms_data import Data

__all__ = [
    "DEFAULT_MAX_TRANSFER_SIZE",
    "ActionRequestReceiver",
    "ActionRequestSender",
    "ActionResponseSender",
    "GetResponseReceiver",
    "GetResponseSender",
    "SetRequestReceiver",
    "SetRequestSender",
    "max_raw_data_size",
    "split_get_many",
]

_LAYER = "xdlms-blocks"

#: Default bound on a reassembled message (16 MiB: about nine years of a 96 x 8 daily load
#: profile at 4.9 kB a day).
DEFAULT_MAX_TRANSFER_SIZE: Final = 16 * 1024 * 1024

_MAX_BLOCK_NUMBER: Final = 0xFFFF_FFFF

# Header bytes in front of the raw-data length of each block APDU.
_GET_BLOCK_HEADER: Final = 9  # C4 02 iid last number(4) choice
_SET_FIRST_HEADER: Final = 3 + 9 + 1 + 5  # C1 02 iid descriptor selection-flag last number(4)
_SET_NEXT_HEADER: Final = 3 + 5  # C1 03 iid last number(4)
_ACTION_FIRST_HEADER: Final = 3 + 9 + 5  # C3 04 iid descriptor last number(4)
_ACTION_NEXT_HEADER: Final = 3 + 5  # C3 06 iid last number(4) (and C7 02)


def _length_size(n: int) -> int:
    return len(encode_length(n))


def max_raw_data_size(max_pdu_size: int, header_size: int) -> int:
    """The largest raw-data length ``r`` with ``header_size + len(length(r)) + r <= max_pdu_size``.

    Raises :class:`LocalProtocolError` if not even one byte of raw-data fits.
    """
    r = max_pdu_size - header_size - 1
    while r > 0 and header_size + _length_size(r) + r > max_pdu_size:
        r -= 1
    if r < 1:
        raise LocalProtocolError(
            f"max PDU size {max_pdu_size} leaves no room for block data after a {header_size}-byte header",
            layer=_LAYER,
        )
    return r


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _usable(max_pdu_size: int, overhead: int) -> int:
    if not _is_int(max_pdu_size) or max_pdu_size < 1:
        raise LocalProtocolError(
            f"max PDU size must be a positive integer, got {max_pdu_size!r}", layer=_LAYER
        )
    if not _is_int(overhead) or not 0 <= overhead < max_pdu_size:
        raise LocalProtocolError(f"overhead must be 0..{max_pdu_size - 1}, got {overhead!r}", layer=_LAYER)
    return max_pdu_size - overhead


def _chunks(raw: bytes, first_size: int, size: int) -> list[bytes]:
    """Cut ``raw`` into a first block of ``first_size`` bytes and further blocks of ``size``."""
    out = [raw[:first_size]]
    out.extend(raw[pos : pos + size] for pos in range(first_size, len(raw), size))
    if len(out) > _MAX_BLOCK_NUMBER:
        raise LocalProtocolError(f"{len(raw)} bytes need more than 2**32-1 blocks", layer=_LAYER)
    return out


def _check_max_size(max_size: int) -> int:
    if not _is_int(max_size) or max_size < 1:
        raise LocalProtocolError(f"max_size must be a positive integer, got {max_size!r}", layer=_LAYER)
    return max_size


class _Assembly:
    """Collects raw-data blocks, checking numbering and the size bound."""

    __slots__ = ("_parts", "expected", "max_size", "size", "what")

    def __init__(self, max_size: int, what: str) -> None:
        self.max_size = _check_max_size(max_size)
        self.what = what
        self.expected = 1
        self.size = 0
        self._parts: list[bytes] = []

    def check_number(self, number: int) -> str | None:
        """``None`` if ``number`` is the expected block number, else why not."""
        if number == self.expected:
            return None
        return f"{self.what} block number {number} out of sequence, expected {self.expected}"

    def add(self, number: int, raw: bytes) -> str | None:
        """Add the block; ``None`` if accepted, else why not."""
        problem = self.check_number(number)
        if problem is not None:
            return problem
        if self.size + len(raw) > self.max_size:
            return (
                f"{self.what} exceeds the limit of {self.max_size} bytes after {self.size} bytes "
                f"in {number - 1} block(s); raise max_size if the meter really sends that much"
            )
        self._parts.append(raw)
        self.size += len(raw)
        self.expected = number + 1
        return None

    def join(self) -> bytes:
        data = b"".join(self._parts)
        self._parts = [data]
        return data


# ------------------------------------------------------------------------------------------------
# GET
# ------------------------------------------------------------------------------------------------


class GetResponseSender:
    """Server side of GET: sends ``response`` (the get-response-normal or -with-list the
    server would send) as it is when it fits ``max_pdu_size`` (the client's max receive PDU
    size), else its encoded result in get-response-with-datablock blocks that each fit."""

    def __init__(
        self,
        response: GetResponseNormal | GetResponseWithList,
        *,
        max_pdu_size: int,
        overhead: int = 0,
    ) -> None:
        if not isinstance(response, GetResponseNormal | GetResponseWithList):
            raise LocalProtocolError(
                f"expected a GetResponseNormal or GetResponseWithList, got {type(response).__name__}",
                layer=_LAYER,
            )
        self.response = response
        self.invoke_id_and_priority = response.invoke_id_and_priority
        encoded = response.to_bytes()
        pdu = _usable(max_pdu_size, overhead)
        self._blocks: list[bytes] | None = None
        if len(encoded) > pdu:
            # raw-data: the Data after "C4 01 iid 00", or the result list after "C4 03 iid"
            raw = encoded[4:] if isinstance(response, GetResponseNormal) else encoded[3:]
            size = max_raw_data_size(pdu, _GET_BLOCK_HEADER)
            self._blocks = _chunks(raw, size, size)
        self._sent = 0
        self.done = False

    @property
    def block_count(self) -> int:
        """Number of datablocks (0 when the response fits one APDU)."""
        return 0 if self._blocks is None else len(self._blocks)

    def first_response(self) -> GetResponseNormal | GetResponseWithList | GetResponseWithDatablock:
        """The response to the get-request itself."""
        if self._sent:
            raise LocalProtocolError("first_response() was already called", layer=_LAYER)
        if self._blocks is None:
            self._sent = 1
            self.done = True
            return self.response
        return self._block(1, self.invoke_id_and_priority)

    def _block(self, number: int, iid: InvokeIdAndPriority) -> GetResponseWithDatablock:
        blocks = self._blocks or [b""]
        last = number == len(blocks)
        self._sent = number
        self.done = last
        return GetResponseWithDatablock(last, number, blocks[number - 1], invoke_id_and_priority=iid)

    def _error(self, request: GetRequestNext, result: DataAccessResult) -> GetResponseWithDatablock:
        self.done = True
        return GetResponseWithDatablock(
            True, request.block_number, result, invoke_id_and_priority=request.invoke_id_and_priority
        )

    def next_response(self, request: GetRequestNext) -> GetResponseWithDatablock:
        """The answer to a get-request-next: the next block, or (ending the transfer) a block
        carrying no-long-get-in-progress or data-block-number-invalid."""
        if self._blocks is None or self.done or not self._sent:
            return self._error(request, DataAccessResult.NO_LONG_GET_IN_PROGRESS)
        if request.block_number != self._sent:
            return self._error(request, DataAccessResult.DATA_BLOCK_NUMBER_INVALID)
        return self._block(self._sent + 1, request.invoke_id_and_priority)


class GetResponseReceiver:
    """Client side of GET: reassembles get-response-with-datablock blocks into the raw A-XDR
    bytes of the value, producing the get-request-next for each block.

    ``invoke_id_and_priority`` is that of the get-request (every block must carry it; ``None``
    takes the first block's); ``context`` (the attribute read) goes into error messages.
    """

    def __init__(
        self,
        *,
        invoke_id_and_priority: InvokeIdAndPriority | None = None,
        max_size: int = DEFAULT_MAX_TRANSFER_SIZE,
        context: Describable | str | None = None,
    ) -> None:
        self.invoke_id_and_priority = invoke_id_and_priority
        self.context = context
        self._assembly = _Assembly(max_size, "GET response")
        self.done = False
        #: success, or the Data-Access-Result that ended the transfer.
        self.result = DataAccessResult.SUCCESS

    @property
    def block_count(self) -> int:
        """Blocks received so far."""
        return self._assembly.expected - 1

    @property
    def size(self) -> int:
        """Raw-data bytes received so far."""
        return self._assembly.size

    def receive(self, response: GetResponseWithDatablock) -> GetRequestNext | None:
        """Take the next block; return the get-request-next to send, or ``None`` when done."""
        if self.done:
            raise LocalProtocolError("the GET block transfer is already complete", layer=_LAYER)
        if not isinstance(response, GetResponseWithDatablock):
            raise LocalProtocolError(
                f"expected a GetResponseWithDatablock, got {type(response).__name__}", layer=_LAYER
            )
        iid = response.invoke_id_and_priority
        if self.invoke_id_and_priority is None:
            self.invoke_id_and_priority = iid
        elif iid != self.invoke_id_and_priority:
            raise RemoteProtocolError(
                f"GET response block {response.block_number} carries invoke-id-and-priority "
                f"0x{iid.to_byte():02x}, the request had 0x{self.invoke_id_and_priority.to_byte():02x}",
                layer=_LAYER,
            )
        result = response.result
        if isinstance(result, DataAccessResult):
            if result == DataAccessResult.SUCCESS:
                raise RemoteProtocolError(
                    f"GET response block {response.block_number} carries data-access-result success "
                    "instead of raw-data",
                    layer=_LAYER,
                )
            self.done = True
            self.result = result
            return None
        problem = self._assembly.add(response.block_number, result)
        if problem is not None:
            raise RemoteProtocolError(problem, layer=_LAYER)
        if response.last_block:
            self.done = True
            return None
        return GetRequestNext(response.block_number, invoke_id_and_priority=iid)

    def raw_data(self) -> bytes:
        """The reassembled A-XDR bytes of the value.

        Raises :class:`LocalProtocolError` before the last block, and the
        :class:`~metercom.codec.dlms.results.DlmsResultError` of the result when the server
        ended the transfer with an error.
        """
        if not self.done:
            raise LocalProtocolError("the GET block transfer is not complete", layer=_LAYER)
        raise_for_result(self.result, self.context, service="GET")
        return self._assembly.join()

    def value(self) -> Data:
        """The reassembled value, decoded (exactly one ``Data``)."""
        return decode_data_exact(self.raw_data())


# ------------------------------------------------------------------------------------------------
# SET
# ------------------------------------------------------------------------------------------------


def _selection_size(selection: SelectiveAccessDescriptor | None) -> int:
    return 0 if selection is None else len(selection.to_bytes())


class SetRequestSender:
    """Client side of SET: sends ``request`` as it is when it fits ``max_pdu_size`` (the
    server's max receive PDU size), else its value in datablocks that each fit, and collects
    the result."""

    def __init__(self, request: SetRequestNormal, *, max_pdu_size: int, overhead: int = 0) -> None:
        if not isinstance(request, SetRequestNormal):
            raise LocalProtocolError(
                f"expected a SetRequestNormal, got {type(request).__name__}", layer=_LAYER
            )
        self.request = request
        self.attribute = request.attribute
        self.access_selection = request.access_selection
        self.invoke_id_and_priority = request.invoke_id_and_priority
        encoded = request.to_bytes()
        pdu = _usable(max_pdu_size, overhead)
        self._blocks: list[bytes] | None = None
        if len(encoded) > pdu:
            selection = _selection_size(request.access_selection)
            raw = encoded[3 + 9 + 1 + selection :]  # the encoded value
            first = max_raw_data_size(pdu, _SET_FIRST_HEADER + selection)
            size = max_raw_data_size(pdu, _SET_NEXT_HEADER)
            self._blocks = _chunks(raw, first, size)
        self._sent = 0
        self.done = False
        #: The Data-Access-Result once done.
        self.result: DataAccessResult | None = None

    @property
    def block_count(self) -> int:
        """Number of datablocks (0 when the value fits one set-request-normal)."""
        return 0 if self._blocks is None else len(self._blocks)

    def first_request(self) -> SetRequestNormal | SetRequestWithFirstDatablock:
        """The first request to send."""
        if self._sent:
            raise LocalProtocolError("first_request() was already called", layer=_LAYER)
        iid = self.invoke_id_and_priority
        if self._blocks is None:
            self._sent = -1  # the normal request
            return self.request
        self._sent = 1
        return SetRequestWithFirstDatablock(
            self.attribute,
            len(self._blocks) == 1,
            1,
            self._blocks[0],
            self.access_selection,
            invoke_id_and_priority=iid,
        )

    def _finish(self, result: DataAccessResult) -> None:
        self.done = True
        self.result = result

    def receive(
        self, response: SetResponseNormal | SetResponseDatablock | SetResponseLastDatablock
    ) -> SetRequestWithDatablock | None:
        """Take the server's answer; return the next datablock to send, or ``None`` when done
        (see :attr:`result`)."""
        if self.done or not self._sent:
            raise LocalProtocolError("no SET transfer waiting for a response", layer=_LAYER)
        iid = self.invoke_id_and_priority
        if response.invoke_id_and_priority != iid:
            raise RemoteProtocolError(
                f"SET response carries invoke-id-and-priority "
                f"0x{response.invoke_id_and_priority.to_byte():02x}, the request had 0x{iid.to_byte():02x}",
                layer=_LAYER,
            )
        blocks = self._blocks
        if isinstance(response, SetResponseNormal):
            if blocks is not None and response.result == DataAccessResult.SUCCESS:
                raise RemoteProtocolError(
                    "set-response-normal with success in the middle of a datablock transfer", layer=_LAYER
                )
            self._finish(response.result)
            return None
        if blocks is None:
            raise RemoteProtocolError(f"{type(response).__name__} answers a set-request-normal", layer=_LAYER)
        if isinstance(response, SetResponseLastDatablock):
            complete = self._sent == len(blocks) and response.block_number == self._sent
            if not complete and response.result == DataAccessResult.SUCCESS:
                raise RemoteProtocolError(
                    f"set-response-last-datablock (success, block {response.block_number}) after block "
                    f"{self._sent} of {len(blocks)}",
                    layer=_LAYER,
                )
            self._finish(response.result)
            return None
        if not isinstance(response, SetResponseDatablock):
            raise LocalProtocolError(f"not a SET response: {type(response).__name__}", layer=_LAYER)
        if response.block_number != self._sent:
            raise RemoteProtocolError(
                f"set-response-datablock acknowledges block {response.block_number}, "
                f"block {self._sent} was sent",
                layer=_LAYER,
            )
        if self._sent == len(blocks):
            raise RemoteProtocolError(
                "set-response-datablock after the last block; set-response-last-datablock expected",
                layer=_LAYER,
            )
        number = self._sent + 1
        self._sent = number
        return SetRequestWithDatablock(
            number == len(blocks), number, blocks[number - 1], invoke_id_and_priority=iid
        )

    def raise_for_result(self) -> None:
        """Raise the :class:`~metercom.codec.dlms.results.DlmsResultError` of a refused SET."""
        if self.result is None:
            raise LocalProtocolError("the SET transfer is not complete", layer=_LAYER)
        raise_for_result(self.result, self.attribute, service="SET")


class SetRequestReceiver:
    """Server side of SET with datablocks: reassembles the value and acknowledges each block.

    Feed it set-request-with-first-datablock, then set-request-with-datablock APDUs.
    :meth:`receive` returns the response to send, or ``None`` after the last block: then apply
    :meth:`value` and send :meth:`finish`'s set-response-last-datablock.
    """

    def __init__(self, *, max_size: int = DEFAULT_MAX_TRANSFER_SIZE) -> None:
        self._assembly = _Assembly(max_size, "SET value")
        self.attribute: CosemAttributeDescriptor | None = None
        self.access_selection: SelectiveAccessDescriptor | None = None
        self.invoke_id_and_priority: InvokeIdAndPriority | None = None
        self.done = False
        #: The error that aborted the transfer, if any.
        self.aborted: DataAccessResult | None = None

    def _abort(
        self, result: DataAccessResult, number: int, iid: InvokeIdAndPriority
    ) -> SetResponseLastDatablock:
        self.done = True
        self.aborted = result
        return SetResponseLastDatablock(result, number, invoke_id_and_priority=iid)

    def receive(
        self, request: SetRequestWithFirstDatablock | SetRequestWithDatablock
    ) -> SetResponseDatablock | SetResponseLastDatablock | None:
        """Take a block; return the acknowledgement (or the abort) to send, ``None`` after the
        last block."""
        iid = request.invoke_id_and_priority
        if self.done:
            return self._abort(DataAccessResult.NO_LONG_SET_IN_PROGRESS, request.block_number, iid)
        if isinstance(request, SetRequestWithFirstDatablock):
            if self.attribute is not None:
                return self._abort(DataAccessResult.LONG_SET_ABORTED, request.block_number, iid)
            self.attribute = request.attribute
            self.access_selection = request.access_selection
            self.invoke_id_and_priority = iid
        elif self.attribute is None:
            return self._abort(DataAccessResult.NO_LONG_SET_IN_PROGRESS, request.block_number, iid)
        problem = self._assembly.check_number(request.block_number)
        if problem is not None:
            return self._abort(DataAccessResult.DATA_BLOCK_NUMBER_INVALID, request.block_number, iid)
        if self._assembly.add(request.block_number, request.raw_data) is not None:
            return self._abort(DataAccessResult.LONG_SET_ABORTED, request.block_number, iid)
        if request.last_block:
            self.done = True
            return None
        return SetResponseDatablock(request.block_number, invoke_id_and_priority=iid)

    def raw_data(self) -> bytes:
        """The reassembled A-XDR bytes of the value."""
        if not self.done or self.aborted is not None:
            raise LocalProtocolError("the SET block transfer did not complete", layer=_LAYER)
        return self._assembly.join()

    def value(self) -> Data:
        """The reassembled value (raises :class:`RemoteProtocolError` if it is not one ``Data``)."""
        return decode_data_exact(self.raw_data())

    def finish(self, result: DataAccessResult) -> SetResponseLastDatablock:
        """The set-response-last-datablock carrying the result of applying the value."""
        if not self.done or self.aborted is not None or self.invoke_id_and_priority is None:
            raise LocalProtocolError("the SET block transfer did not complete", layer=_LAYER)
        return SetResponseLastDatablock(
            result, self._assembly.expected - 1, invoke_id_and_priority=self.invoke_id_and_priority
        )


# ------------------------------------------------------------------------------------------------
# ACTION
# ------------------------------------------------------------------------------------------------


class ActionRequestSender:
    """Client side of ACTION: sends ``request`` as it is when it fits ``max_pdu_size`` (the
    server's max receive PDU size), else its parameters in pblocks that each fit, and collects
    the result, reassembling return parameters that arrive in action-response-with-pblock
    blocks (at most ``max_response_size`` bytes)."""

    def __init__(
        self,
        request: ActionRequestNormal,
        *,
        max_pdu_size: int,
        overhead: int = 0,
        max_response_size: int = DEFAULT_MAX_TRANSFER_SIZE,
    ) -> None:
        if not isinstance(request, ActionRequestNormal):
            raise LocalProtocolError(
                f"expected an ActionRequestNormal, got {type(request).__name__}", layer=_LAYER
            )
        self.request = request
        self.method = request.method
        self.invoke_id_and_priority = request.invoke_id_and_priority
        encoded = request.to_bytes()
        pdu = _usable(max_pdu_size, overhead)
        self._blocks: list[bytes] | None = None
        if len(encoded) > pdu:
            raw = encoded[3 + 9 + 1 :]  # the encoded parameters, without the OPTIONAL flag
            first = max_raw_data_size(pdu, _ACTION_FIRST_HEADER)
            size = max_raw_data_size(pdu, _ACTION_NEXT_HEADER)
            self._blocks = _chunks(raw, first, size)
        self._sent = 0
        self._response = _Assembly(max_response_size, "ACTION return parameters")
        self.done = False
        #: The Action-Result once done.
        self.result: ActionResult | None = None
        #: The return parameters once done (``None`` when the server sent none).
        self.return_parameters: Data | DataAccessResult | None = None

    @property
    def block_count(self) -> int:
        """Number of request pblocks (0 when the parameters fit one action-request-normal)."""
        return 0 if self._blocks is None else len(self._blocks)

    def first_request(self) -> ActionRequestNormal | ActionRequestWithFirstPblock:
        """The first request to send."""
        if self._sent:
            raise LocalProtocolError("first_request() was already called", layer=_LAYER)
        iid = self.invoke_id_and_priority
        if self._blocks is None:
            self._sent = -1
            return self.request
        self._sent = 1
        return ActionRequestWithFirstPblock(
            self.method, len(self._blocks) == 1, 1, self._blocks[0], invoke_id_and_priority=iid
        )

    def _all_sent(self) -> bool:
        return self._blocks is None or self._sent == len(self._blocks)

    def receive(
        self, response: ActionResponseNormal | ActionResponseNextPblock | ActionResponseWithPblock
    ) -> ActionRequestWithPblock | ActionRequestNextPblock | None:
        """Take the server's answer; return the next APDU to send, or ``None`` when done (see
        :attr:`result` and :attr:`return_parameters`)."""
        if self.done or not self._sent:
            raise LocalProtocolError("no ACTION transfer waiting for a response", layer=_LAYER)
        iid = self.invoke_id_and_priority
        if response.invoke_id_and_priority != iid:
            raise RemoteProtocolError(
                f"ACTION response carries invoke-id-and-priority "
                f"0x{response.invoke_id_and_priority.to_byte():02x}, the request had 0x{iid.to_byte():02x}",
                layer=_LAYER,
            )
        if isinstance(response, ActionResponseNormal):
            if not self._all_sent() and response.result == ActionResult.SUCCESS:
                raise RemoteProtocolError(
                    "action-response-normal with success before the last pblock was sent", layer=_LAYER
                )
            if self._response.size and response.result == ActionResult.SUCCESS:
                raise RemoteProtocolError(
                    "action-response-normal with success in the middle of a pblock response", layer=_LAYER
                )
            self.done = True
            self.result = response.result
            self.return_parameters = response.return_parameters
            return None
        if isinstance(response, ActionResponseNextPblock):
            blocks = self._blocks
            if blocks is None or response.block_number != self._sent or self._sent == len(blocks):
                sent = (
                    "no pblocks were sent"
                    if blocks is None
                    else f"block {self._sent} of {len(blocks)} was sent"
                )
                raise RemoteProtocolError(
                    f"action-response-next-pblock acknowledges block {response.block_number}; {sent}",
                    layer=_LAYER,
                )
            number = self._sent + 1
            self._sent = number
            return ActionRequestWithPblock(
                number == len(blocks), number, blocks[number - 1], invoke_id_and_priority=iid
            )
        if not isinstance(response, ActionResponseWithPblock):
            raise LocalProtocolError(f"not an ACTION response: {type(response).__name__}", layer=_LAYER)
        if not self._all_sent():
            raise RemoteProtocolError(
                "action-response-with-pblock before the last request pblock was sent", layer=_LAYER
            )
        problem = self._response.add(response.block_number, response.raw_data)
        if problem is not None:
            raise RemoteProtocolError(problem, layer=_LAYER)
        if not response.last_block:
            return ActionRequestNextPblock(response.block_number, invoke_id_and_priority=iid)
        self.done = True
        self.result = ActionResult.SUCCESS
        self.return_parameters = decode_data_exact(self._response.join())
        return None

    def raise_for_result(self) -> None:
        """Raise the :class:`~metercom.codec.dlms.results.DlmsResultError` of a refused ACTION
        (a Data-Access-Result in the return parameters counts as a refusal too)."""
        if self.result is None:
            raise LocalProtocolError("the ACTION transfer is not complete", layer=_LAYER)
        raise_for_result(self.result, self.method, service="ACTION")
        if isinstance(self.return_parameters, DataAccessResult):
            raise_for_result(self.return_parameters, self.method, service="ACTION")


class ActionRequestReceiver:
    """Server side of ACTION with pblocks: reassembles the method-invocation-parameters.

    Feed it action-request-with-first-pblock, then action-request-with-pblock APDUs.
    :meth:`receive` returns the action-response-next-pblock (or an abort) to send, or ``None``
    after the last block: then invoke the method with :meth:`parameters` and answer (through
    :class:`ActionResponseSender` when the result may be long).
    """

    def __init__(self, *, max_size: int = DEFAULT_MAX_TRANSFER_SIZE) -> None:
        self._assembly = _Assembly(max_size, "ACTION parameters")
        self.method: CosemMethodDescriptor | None = None
        self.invoke_id_and_priority: InvokeIdAndPriority | None = None
        self.done = False
        #: The error that aborted the transfer, if any.
        self.aborted: ActionResult | None = None

    def _abort(self, result: ActionResult, iid: InvokeIdAndPriority) -> ActionResponseNormal:
        self.done = True
        self.aborted = result
        return ActionResponseNormal(result, invoke_id_and_priority=iid)

    def receive(
        self, request: ActionRequestWithFirstPblock | ActionRequestWithPblock
    ) -> ActionResponseNextPblock | ActionResponseNormal | None:
        """Take a pblock; return the response to send, ``None`` after the last block."""
        iid = request.invoke_id_and_priority
        if self.done:
            return self._abort(ActionResult.NO_LONG_ACTION_IN_PROGRESS, iid)
        if isinstance(request, ActionRequestWithFirstPblock):
            if self.method is not None:
                return self._abort(ActionResult.LONG_ACTION_ABORTED, iid)
            self.method = request.method
            self.invoke_id_and_priority = iid
        elif self.method is None:
            return self._abort(ActionResult.NO_LONG_ACTION_IN_PROGRESS, iid)
        if self._assembly.add(request.block_number, request.raw_data) is not None:
            return self._abort(ActionResult.LONG_ACTION_ABORTED, iid)
        if request.last_block:
            self.done = True
            return None
        return ActionResponseNextPblock(request.block_number, invoke_id_and_priority=iid)

    def raw_data(self) -> bytes:
        """The reassembled A-XDR bytes of the parameters."""
        if not self.done or self.aborted is not None:
            raise LocalProtocolError("the ACTION block transfer did not complete", layer=_LAYER)
        return self._assembly.join()

    def parameters(self) -> Data:
        """The reassembled parameters (raises :class:`RemoteProtocolError` if not one ``Data``)."""
        return decode_data_exact(self.raw_data())


class ActionResponseSender:
    """Server side of an ACTION result: sends ``response`` as it is when it fits
    ``max_pdu_size`` (the client's max receive PDU size), else (a successful result with long
    return ``Data``) its return parameters in action-response-with-pblock blocks that fit."""

    def __init__(self, response: ActionResponseNormal, *, max_pdu_size: int, overhead: int = 0) -> None:
        if not isinstance(response, ActionResponseNormal):
            raise LocalProtocolError(
                f"expected an ActionResponseNormal, got {type(response).__name__}", layer=_LAYER
            )
        self.response = response
        self.invoke_id_and_priority = response.invoke_id_and_priority
        encoded = response.to_bytes()
        pdu = _usable(max_pdu_size, overhead)
        self._blocks: list[bytes] | None = None
        if len(encoded) > pdu:
            if response.result != ActionResult.SUCCESS or not isinstance(response.return_parameters, Data):
                raise LocalProtocolError(
                    f"a {len(encoded)}-byte action response does not fit {pdu} bytes; only return data "
                    "with result success can be sent in pblocks",
                    layer=_LAYER,
                )
            raw = encoded[6:]  # the Data after "C7 01 iid result 01 00"
            size = max_raw_data_size(pdu, _ACTION_NEXT_HEADER)
            self._blocks = _chunks(raw, size, size)
        self._sent = 0
        self.done = False

    @property
    def block_count(self) -> int:
        """Number of pblocks (0 when the result fits one action-response-normal)."""
        return 0 if self._blocks is None else len(self._blocks)

    def first_response(self) -> ActionResponseNormal | ActionResponseWithPblock:
        """The response to the (last block of the) action request."""
        if self._sent:
            raise LocalProtocolError("first_response() was already called", layer=_LAYER)
        if self._blocks is None:
            self._sent = 1
            self.done = True
            return self.response
        return self._block(1, self.invoke_id_and_priority)

    def _block(self, number: int, iid: InvokeIdAndPriority) -> ActionResponseWithPblock:
        blocks = self._blocks or [b""]
        last = number == len(blocks)
        self._sent = number
        self.done = last
        return ActionResponseWithPblock(last, number, blocks[number - 1], invoke_id_and_priority=iid)

    def next_response(
        self, request: ActionRequestNextPblock
    ) -> ActionResponseWithPblock | ActionResponseNormal:
        """The answer to an action-request-next-pblock: the next pblock, or an
        action-response-normal ending the transfer with no-long-action-in-progress or
        long-action-aborted."""
        iid = request.invoke_id_and_priority
        if self._blocks is None or self.done or not self._sent:
            self.done = True
            return ActionResponseNormal(ActionResult.NO_LONG_ACTION_IN_PROGRESS, invoke_id_and_priority=iid)
        if request.block_number != self._sent:
            self.done = True
            return ActionResponseNormal(ActionResult.LONG_ACTION_ABORTED, invoke_id_and_priority=iid)
        return self._block(self._sent + 1, iid)


# ------------------------------------------------------------------------------------------------
# get_many: packing attribute reads into get-request-with-list APDUs
# ------------------------------------------------------------------------------------------------


def split_get_many(
    attributes: Sequence[CosemAttributeDescriptor | CosemAttributeDescriptorWithSelection],
    *,
    max_pdu_size: int,
    invoke_id_and_priority: InvokeIdAndPriority = DEFAULT_INVOKE_ID_AND_PRIORITY,
    max_list_size: int | None = None,
    overhead: int = 0,
    single_as_normal: bool = True,
) -> list[GetRequestWithList | GetRequestNormal]:
    """Pack the attribute reads, in order, into as few get-request-with-list APDUs as fit
    ``max_pdu_size`` (the server's max receive PDU size), at most ``max_list_size`` attributes
    each. A request with a single attribute becomes a get-request-normal unless
    ``single_as_normal`` is false.

    The responses answer the requests in the same order, so results map back by position.
    Only the request sizes are considered; see the module docstring for long responses.
    Filling each request greedily in order gives the fewest requests for an ordered split.
    """
    pdu = _usable(max_pdu_size, overhead)
    if max_list_size is not None and (not _is_int(max_list_size) or max_list_size < 1):
        raise LocalProtocolError(
            f"max_list_size must be a positive integer, got {max_list_size!r}", layer=_LAYER
        )
    items: list[CosemAttributeDescriptorWithSelection] = []
    for attribute in attributes:
        if isinstance(attribute, CosemAttributeDescriptor):
            items.append(CosemAttributeDescriptorWithSelection(attribute))
        elif isinstance(attribute, CosemAttributeDescriptorWithSelection):
            items.append(attribute)
        else:
            raise LocalProtocolError(
                f"expected attribute descriptors, got {type(attribute).__name__}", layer=_LAYER
            )
    groups: list[list[CosemAttributeDescriptorWithSelection]] = []
    group: list[CosemAttributeDescriptorWithSelection] = []
    body = 0
    for item in items:
        size = len(item.to_bytes())
        alone = 3 + size if single_as_normal else 3 + 1 + size  # get-request-normal has no count
        if alone > pdu:
            raise LocalProtocolError(
                f"reading {item.describe()} needs a {alone}-byte request; max PDU size is {pdu}",
                layer=_LAYER,
            )
        full = max_list_size is not None and len(group) >= max_list_size
        if group and (full or 3 + _length_size(len(group) + 1) + body + size > pdu):
            groups.append(group)
            group, body = [], 0
        group.append(item)
        body += size
    if group:
        groups.append(group)
    iid = invoke_id_and_priority
    out: list[GetRequestWithList | GetRequestNormal] = []
    for chunk in groups:
        if single_as_normal and len(chunk) == 1:
            out.append(
                GetRequestNormal(chunk[0].attribute, chunk[0].access_selection, invoke_id_and_priority=iid)
            )
        else:
            out.append(GetRequestWithList(chunk, invoke_id_and_priority=iid))
    return out
