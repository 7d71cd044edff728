"""Alarms and notifications: from meter events, rules, prepaid and lost routes to e-mail and webhooks.

Rule: raising an alarm never waits and never fails because of delivery. The collector, the
rules engine and prepaid call :class:`AlarmCenter` synchronously; the centre de-duplicates
(one episode per ``dedup_key``, one notification per quiet period), keeps the state people see
and acknowledge (open, acknowledged, cleared), and hands notifications to background workers
that deliver them through channels with a bounded queue, retries and a record of every attempt.

Theory of operation (details in each module):

* :mod:`.alarms` - :class:`Alarm` (kind, meter, time, severity, message, details, dedup key),
  :class:`AlarmRecord` (an episode), :class:`Notification` (one message), :class:`Route`
  (kind/severity/meter -> channels).
* :mod:`.center` - :class:`AlarmCenter`: :meth:`~AlarmCenter.raise_alarm`,
  :meth:`~AlarmCenter.acknowledge`, :meth:`~AlarmCenter.clear`, and for the collector
  :meth:`~AlarmCenter.link_down` / :meth:`~AlarmCenter.link_up` (one comm-loss alarm per
  outage, cleared once); delivery workers with :class:`RetryPolicy`.
* :mod:`.channel` - the :class:`Channel` protocol and the errors that steer retries.
* :mod:`.smtp` - :class:`SmtpChannel` (aiosmtplib; STARTTLS or implicit TLS; password by
  secret reference). :mod:`.webhook` - :class:`WebhookChannel` (httpx; JSON signed with
  HMAC-SHA256; :func:`verify_signature` for receivers).
* :mod:`.bridges` - :class:`PrepaidAlarms`, prepaid reminders and relay actions as alarms.

Meter events map to kinds one to one (power failure, tamper, cover open); use
:meth:`Alarm.of` with the meter's event time, so a backlog read late de-duplicates correctly.
"""

from __future__ import annotations

from metercom.service.notify.alarms import (
    DEFAULT_SEVERITY,
    Alarm,
    AlarmKind,
    AlarmRecord,
    AlarmState,
    DeliveryRecord,
    DeliveryStatus,
    JsonScalar,
    Notification,
    NotificationEvent,
    Route,
    Severity,
)
from metercom.service.notify.bridges import PrepaidAlarms
from metercom.service.notify.center import AlarmCenter, RaiseResult, RetryPolicy
from metercom.service.notify.channel import Channel, PermanentDeliveryError, RetryLater
from metercom.service.notify.smtp import SmtpChannel, SmtpTls
from metercom.service.notify.webhook import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    WebhookChannel,
    sign_payload,
    verify_signature,
)

__all__ = [
    "DEFAULT_SEVERITY",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "Alarm",
    "AlarmCenter",
    "AlarmKind",
    "AlarmRecord",
    "AlarmState",
    "Channel",
    "DeliveryRecord",
    "DeliveryStatus",
    "JsonScalar",
    "Notification",
    "NotificationEvent",
    "PermanentDeliveryError",
    "PrepaidAlarms",
    "RaiseResult",
    "RetryLater",
    "RetryPolicy",
    "Route",
    "Severity",
    "SmtpChannel",
    "SmtpTls",
    "WebhookChannel",
    "sign_payload",
    "verify_signature",
]
