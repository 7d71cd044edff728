"""``GET /metrics``: the collector, commands and the forwarder in Prometheus text format 0.0.4.

Rule: every figure is read when scraped, from the head-end's status board and the store; the
exposition is written here (no client library, no process-global registry, so two apps in one
test process never share a counter). Counters are the head-end's own since it started
(``metercom_reads_total``) or what the store holds (``metercom_commands_total``); gauges are
the state at the scrape.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping

from metercom.api.views import meter_summaries
from metercom.service.headend import HeadEnd
from metercom.service.store.web import WebStore

__all__ = ["CONTENT_TYPE", "render_metrics"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(labels: Mapping[str, str]) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items()) + "}"


def _number(value: float) -> str:
    if value == int(value) and abs(value) < 2**53:
        return str(int(value))
    return repr(float(value))


class _Exposition:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(
        self, name: str, kind: str, help_text: str, samples: Iterable[tuple[Mapping[str, str], float]]
    ) -> None:
        self.lines.append(f"# HELP {name} {help_text}")
        self.lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            self.lines.append(f"{name}{_labels(labels)} {_number(value)}")

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


async def render_metrics(headend: HeadEnd, web: WebStore) -> str:
    out = _Exposition()
    rows = headend.status()
    protocols = {m.id: m.protocol.value for m in headend.config.meters}
    reads: Counter[tuple[str, str]] = Counter()
    for row in rows:
        protocol = protocols.get(row.meter_id, row.protocol or "unknown")
        reads[(protocol, "ok")] += row.reads_ok
        reads[(protocol, "failed")] += row.reads_failed
    for protocol in set(protocols.values()):
        reads[(protocol, "ok")] += 0
        reads[(protocol, "failed")] += 0
    out.family(
        "metercom_reads_total",
        "counter",
        "Read attempts since the head-end started, by protocol and result.",
        (({"protocol": p, "result": r}, n) for (p, r), n in sorted(reads.items())),
    )
    summaries = await meter_summaries(headend, web)
    states: Counter[str] = Counter(dict.fromkeys(("ok", "failing", "quarantined", "unknown", "disabled"), 0))
    for summary in summaries:
        states[summary.state] += 1
    out.family(
        "metercom_meters",
        "gauge",
        "Configured meters by collection state.",
        (({"state": s}, n) for s, n in sorted(states.items())),
    )
    durations: list[tuple[Mapping[str, str], float]] = [
        ({"meter": row.meter_id}, (row.last_read_at - row.last_attempt_at).total_seconds())
        for row in rows
        if row.last_read_at is not None
        and row.last_attempt_at is not None
        and row.last_read_at >= row.last_attempt_at
    ]
    out.family(
        "metercom_last_read_duration_seconds",
        "gauge",
        "Duration of each meter's last successful read (conversation and storing).",
        sorted(durations, key=lambda d: d[0]["meter"]),
    )
    out.family(
        "metercom_last_cycle_duration_seconds",
        "gauge",
        "The longest of the meters' last successful reads: how long the last collection cycle took.",
        [({}, max((d for _, d in durations), default=0.0))],
    )
    counts = await web.command_counts()
    out.family(
        "metercom_commands_total",
        "counter",
        "Commands in the store by kind and status.",
        (({"kind": k, "status": s}, n) for (k, s), n in sorted(counts.items())),
    )
    now = headend.clock.now()
    backlog = await headend.store.outbox_backlog()
    out.family(
        "metercom_forward_backlog",
        "gauge",
        "Readings not yet confirmed by each upstream sink.",
        (({"sink": b.sink}, b.pending) for b in backlog),
    )
    out.family(
        "metercom_forward_oldest_age_seconds",
        "gauge",
        "Age of the oldest reading each upstream sink has not confirmed (0: none).",
        (({"sink": b.sink}, b.age_s(now)) for b in backlog),
    )
    out.family(
        "metercom_forward_confirmed_total",
        "counter",
        "Readings each upstream sink confirmed.",
        (({"sink": b.sink}, b.confirmed_total) for b in backlog),
    )
    out.family(
        "metercom_forward_expired_total",
        "counter",
        "Readings dropped unsent after the retention of unsent data.",
        (({"sink": b.sink}, b.expired_total) for b in backlog),
    )
    version = headend.config_version
    out.family(
        "metercom_config_version",
        "gauge",
        "The configuration version in force.",
        [({}, version or 0)],
    )
    alarms = await headend.alarms(active=True)
    out.family("metercom_alarms_active", "gauge", "Alarm episodes not cleared.", [({}, len(alarms))])
    return out.text()
