"""Pure protocol code: bytes <-> objects and role-aware state machines (DESIGN.md section 2).

No asyncio, no sockets or serial ports, no clock reads, no logging set-up. Every connection
object takes a :class:`~metercom.codec.base.Role` and offers ``send(event) -> bytes``,
``receive_data(data)``, ``next_event() -> event | NEED_DATA``, ``next_deadline()`` and
``handle_timeout(now)``; the caller passes time in.
"""
