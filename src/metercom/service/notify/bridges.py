"""Adapters that turn other services' events into alarms.

Rule: an adapter only translates; the alarm centre decides about de-duplication, state and
delivery. :class:`PrepaidAlarms` implements the prepaid runner's
:class:`~metercom.service.prepaid.PrepaidNotifier`:

* a reminder becomes a ``prepaid_level`` alarm (info) keyed per meter *and level*, so the
  300, 200 and 100 reminders of one descent are three notifications, not one de-duplicated.
  A reminder is a one-off notice, not a condition: its episode is closed (silently) as soon as
  it is raised, so an operator acknowledging it never silences the customer's next reminder;
* a prepaid disconnect becomes a ``prepaid_disconnect`` alarm (warning), a condition that
  stays active until a reconnect clears it (notified as cleared).
"""

from __future__ import annotations

from metercom.service.notify.alarms import Alarm, AlarmKind
from metercom.service.notify.center import AlarmCenter
from metercom.service.prepaid import NoticeKind, PrepaidNotice

__all__ = ["PrepaidAlarms"]


class PrepaidAlarms:
    """Prepaid notices as alarms in an :class:`AlarmCenter` (see the module docstring)."""

    def __init__(self, center: AlarmCenter) -> None:
        self.center = center

    async def notify(self, notice: PrepaidNotice) -> None:
        details = {
            "account_id": notice.account_id,
            "balance": str(notice.balance),
            "unit": notice.unit,
            "reason": notice.reason,
        }
        if notice.kind is NoticeKind.REMINDER:
            level = str(notice.level)
            raised = self.center.raise_alarm(
                Alarm.of(
                    AlarmKind.PREPAID_LEVEL,
                    notice.meter_id,
                    notice.at,
                    f"prepaid balance {notice.balance} {notice.unit} reached the reminder level {level}",
                    details={**details, "level": level},
                    dedup_key=f"{AlarmKind.PREPAID_LEVEL.value}:{notice.meter_id}:{level}",
                )
            )
            self.center.clear(raised.record.alarm_id, notice.at, "reminder sent", notify=False)
        elif notice.kind is NoticeKind.DISCONNECTED:
            self.center.raise_alarm(
                Alarm.of(
                    AlarmKind.PREPAID_DISCONNECT,
                    notice.meter_id,
                    notice.at,
                    f"supply disconnected: prepaid balance {notice.balance} {notice.unit}",
                    details=details,
                )
            )
        else:
            self.center.clear_key(
                f"{AlarmKind.PREPAID_DISCONNECT.value}:{notice.meter_id}",
                notice.at,
                f"supply reconnected: prepaid balance {notice.balance} {notice.unit}",
            )
