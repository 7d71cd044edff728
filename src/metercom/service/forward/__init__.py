"""Store-and-forward to the central system: nothing lost, nothing duplicated.

Rule (DESIGN.md section 6): readings leave the local store only after the central system
confirmed them at application level (the batch id echoed back by the receiver, or the JetStream
PubAck), never merely because a broker accepted a publish.

Pieces: the outbox lives in the store (:mod:`metercom.service.store.outbox`: pending entries per
sink, written in the transaction that stores the readings, batches with stable ids);
:class:`Forwarder` runs one loop per sink on a :class:`ForwardPolicy` (batch size, schedule,
rate limit, share for live data, retry backoff) and reports backlog size and age
(:class:`SinkStatus`); the sinks are :class:`HttpSink` (signed POST, id echoed),
:class:`MqttSink` (QoS 1, id echoed on a reply topic, retained state topics and Home Assistant
discovery) and :class:`JetStreamSink` (``Nats-Msg-Id`` de-duplication, PubAck). The reference
receiver is :mod:`metercom.service.central`; the batch format is :mod:`.wire`.
"""

from __future__ import annotations

from metercom.service.forward.forwarder import DEFAULT_KEEP_UNSENT, Forwarder, SinkStatus
from metercom.service.forward.http import HttpSink
from metercom.service.forward.jetstream import JetStreamSink
from metercom.service.forward.mqtt import MqttSink
from metercom.service.forward.sink import ForwardPolicy, Sink, Upstream

__all__ = [
    "DEFAULT_KEEP_UNSENT",
    "ForwardPolicy",
    "Forwarder",
    "HttpSink",
    "JetStreamSink",
    "MqttSink",
    "Sink",
    "SinkStatus",
    "Upstream",
]
