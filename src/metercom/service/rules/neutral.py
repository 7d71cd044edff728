"""Broken-neutral detection from three phase-to-neutral voltage magnitudes.

Rule: the detector is a pure function of the samples it is given (timestamps included); it
reads no clock and keeps a few floats per meter. It answers one question: do this meter's
voltages look like a *floating star point* - the neutral conductor lost upstream - rather than
an ordinary sag, swell, outage or an unbalanced load on an intact neutral?

Physics. The supply EMFs ``E1 E2 E3`` form a rigid equilateral triangle of side
``L = sqrt(3) E`` (line-to-line voltage); an intact neutral holds the loads' star point ``N`` at
its centre. With the neutral open, ``N`` floats to ``sum(Y_k E_k) / sum(Y_k)``: a weighted mean
of the vertices, inside the triangle for loads of similar power factor. A meter measures the
distances ``V_k = |E_k - N|``. Two consequences, both checked here:

1. **Pre-check (the equilateral-triangle bound).** Put ``E`` = the circumradius. If ``N`` is
   inside the triangle and one distance is ``a``, the other two cannot both stay near ``E``:
   on the arc ``|N - E1| = a`` inside the triangle, the point on the median (equidistant from
   ``E2`` and ``E3``) maximises ``min(b, c)`` when ``a > E`` and minimises ``max(b, c)`` when
   ``a < E`` (moving along the arc brings ``N`` nearer one vertex and further from the other).
   On the median, ``N`` is ``1.5 E - a`` from the midpoint of the opposite side (the height is
   ``1.5 E``), whose half-length is ``sqrt(3)/2 E``, so

       b = c = g(a) = sqrt(0.75 E^2 + (1.5 E - a)^2) = sqrt(a^2 - 3 E a + 3 E^2)

   Hence for a floating star point: one voltage above ``E`` forces ``min(others) <= g(a)``, one
   below forces ``max(others) >= g(a)``. (``g(1.1 E) = 0.954 E``, ``g(0.9 E) = 1.054 E``.)
   The pre-check passes when some phase is beyond +-``deviation`` (10 %) of nominal *and* the
   other two meet that bound (within ``bound_margin``). A sag or swell of one phase (the
   others stay near ``E``), of all phases (all equal), or an outage fails it.
2. **Angle sum.** Assume the rigid triangle of side ``L = sqrt(3) E_ref`` and reconstruct the
   phasors from the magnitudes alone: the angle at ``N`` between ``V_i`` and ``V_j`` follows
   from the law of cosines, ``cos t_ij = (V_i^2 + V_j^2 - L^2) / (2 V_i V_j)``. For a point
   inside the triangle the three angles add up to exactly 360 deg; for a point outside it
   (loads of very different power factor can push the star point out) the largest angle
   equals the sum of the other two. Magnitudes that do not come from one point and a rigid
   triangle (an EMF sagged or swelled, line-to-line voltages changed) fit neither (cosines are
   clamped to [-1, 1]): a 0.7 sag of one phase sums to about 480 deg, a 1.15 swell of one
   phase to about 334 deg. The residual ``min(|sum - 360|, |2 max - sum|)``
   (:func:`angle_residual_deg`) must be within ``angle_tolerance_deg``. The angles are
   sensitive to ``E_ref`` (about 6 deg per 1 % of error), so ``E_ref`` tracks the *median*
   phase voltage while the supply looks healthy (all phases within the band): the median
   ignores the one phase a heavy load pulls down or a PV export pushes up, which the mean
   would follow.
   When the meter reports voltage angles too, the check is direct instead: the three
   line-to-line magnitudes ``|V_i - V_j|`` must still form an equilateral triangle (spread
   ``(max - min) / mean`` at most ``line_tolerance``; EN 50160 allows 2 % of supply unbalance)
   of about the expected size (within ``deviation`` of ``sqrt(3) E_ref``). A voltage drop on a
   heavily loaded phase or a rise on an exporting one distorts that triangle; a floating star
   point does not.

Scoring over time. Each sample gives evidence 1 (pre-check passed and the geometry is that of
a rigid triangle) or 0. The score is an exponentially weighted mean of the evidence with time
constant ``time_constant``, weighted by the time between samples (so irregular collection
intervals count for what they cover). The alarm is raised when the score has stayed at or
above ``alarm_score`` for ``min_duration`` and cleared when it has stayed at or below
``clear_score`` for ``min_duration`` (so evidence that comes and goes does not flap the alarm).

Also reported per sample: the star point reconstructed by trilateration, ``N = -(1 / 3E)
sum(V_k^2 u_k)`` with ``u_k`` the unit EMF phasors (it follows from ``|N - E u_k|^2 = V_k^2``
and ``sum u_k = 0``), as a displacement per unit of ``E_ref``.

Caveats: a lightly unbalanced installation whose star point moves less than 10 % is not
flagged (it is also not dangerous); with magnitudes alone, one phase pulled down by its load
while another is pushed up by export on a weak grid looks exactly like a floating star point
(the angles tell them apart); a real intact neutral carries current and shifts ``N`` a little
too (not in the simulator). ``docs/rules.md`` gives
the detection delays and false-positive rates measured on the load model.
"""

from __future__ import annotations

import cmath
import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Final

from metercom.errors import RuleError

__all__ = [
    "BrokenNeutralDetector",
    "NeutralAssessment",
    "NeutralConfig",
    "NeutralEvent",
    "NeutralEventKind",
    "angle_residual_deg",
    "angle_sum_deg",
    "implied_phase_voltage",
    "precheck",
    "star_point",
    "triangle_bound",
]

_SQRT3: Final = math.sqrt(3.0)
#: Unit EMF phasors of L1, L2, L3 (0, -120, +120 degrees).
_UNIT: Final = (
    complex(1.0, 0.0),
    cmath.rect(1.0, -2.0 * math.pi / 3.0),
    cmath.rect(1.0, 2.0 * math.pi / 3.0),
)
_PAIRS: Final = ((0, 1), (1, 2), (2, 0))


def triangle_bound(voltage: float, reference: float) -> float:
    """``g(a) = sqrt(a^2 - 3 E a + 3 E^2)``: the bound on the other two phases (module docstring)."""
    return math.sqrt(max(0.0, voltage * voltage - 3.0 * reference * voltage + 3.0 * reference * reference))


def precheck(
    voltages: Sequence[float],
    nominal: float,
    reference: float,
    *,
    deviation: float = 0.10,
    bound_margin: float = 0.02,
) -> int | None:
    """The phase (1..3) whose deviation the other two confirm as a floating star point, or None.

    A phase qualifies when it is beyond ``+-deviation`` of ``nominal`` and the other two meet
    the equilateral-triangle bound for ``reference`` (the EMF), with ``bound_margin`` (per unit)
    of slack. The phase deviating most is tried first.
    """
    slack = bound_margin * reference
    order = sorted(range(3), key=lambda k: -abs(voltages[k] - nominal))
    for k in order:
        a = voltages[k]
        if abs(a - nominal) <= deviation * nominal:
            break
        others = [voltages[i] for i in range(3) if i != k]
        g = triangle_bound(a, reference)
        if (a > reference and min(others) <= g + slack) or (a < reference and max(others) >= g - slack):
            return k + 1
    return None


def angle_sum_deg(voltages: Sequence[float], line_voltage: float) -> float | None:
    """Sum of the angles between the phasors rebuilt on a rigid triangle of side ``line_voltage``.

    360 deg for magnitudes measured from one point inside the triangle; None when a magnitude
    is zero (no angle is defined).
    """
    if min(voltages) <= 0.0:
        return None
    l2 = line_voltage * line_voltage
    total = 0.0
    for i, j in _PAIRS:
        a, b = voltages[i], voltages[j]
        cos = (a * a + b * b - l2) / (2.0 * a * b)
        total += math.degrees(math.acos(min(1.0, max(-1.0, cos))))
    return total


def angle_residual_deg(voltages: Sequence[float], line_voltage: float) -> float | None:
    """How far the rebuilt angles are from closing around one star point, in degrees.

    Inside the triangle the three angles at the star point add up to 360 deg; outside it the
    largest equals the sum of the other two. The residual is the smaller of the two misfits,
    ``min(|sum - 360|, |2 max - sum|)``: 0 for magnitudes measured from any point in the plane
    of a rigid triangle of side ``line_voltage``. None when a magnitude is zero.
    """
    if min(voltages) <= 0.0:
        return None
    l2 = line_voltage * line_voltage
    angles = []
    for i, j in _PAIRS:
        a, b = voltages[i], voltages[j]
        cos = (a * a + b * b - l2) / (2.0 * a * b)
        angles.append(math.degrees(math.acos(min(1.0, max(-1.0, cos)))))
    total = sum(angles)
    return min(abs(total - 360.0), abs(2.0 * max(angles) - total))


def star_point(voltages: Sequence[float], reference: float) -> complex:
    """The star point by trilateration on the rigid triangle of circumradius ``reference`` (volts)."""
    return -sum((v * v * u for v, u in zip(voltages, _UNIT, strict=True)), 0j) / (3.0 * reference)


def implied_phase_voltage(voltages: Sequence[float]) -> float | None:
    """The EMF ``E`` for which the magnitudes are exactly consistent with a rigid triangle.

    From the relation between the distances of any point in the plane to the vertices of an
    equilateral triangle of side L, ``3 (a^4 + b^4 + c^4 + L^4) = (a^2 + b^2 + c^2 + L^2)^2``,
    solved for the larger root ``L^2`` - the right one while the star point is inside the
    triangle (far outside, near a vertex, the roots swap). A diagnostic; None when no real
    triangle fits.
    """
    s2 = sum(v * v for v in voltages)
    s4 = sum(v**4 for v in voltages)
    disc = 3.0 * s2 * s2 - 6.0 * s4
    if disc < 0 or s2 <= 0:
        return None
    return math.sqrt((s2 + math.sqrt(disc)) / 2.0) / _SQRT3


@dataclass(frozen=True, slots=True)
class NeutralConfig:
    """Detector settings; defaults were tuned on the load model (see docs/rules.md)."""

    nominal_voltage_v: float = 230.0
    deviation: float = 0.10
    bound_margin: float = 0.02
    angle_tolerance_deg: float = 25.0
    line_tolerance: float = 0.03
    time_constant: timedelta = timedelta(seconds=30)
    alarm_score: float = 0.75
    clear_score: float = 0.25
    min_duration: timedelta = timedelta(seconds=20)
    reference_time_constant: timedelta = timedelta(hours=1)

    def __post_init__(self) -> None:
        if not 50.0 <= self.nominal_voltage_v <= 1000.0:
            raise RuleError(f"nominal_voltage_v must be 50..1000, got {self.nominal_voltage_v}")
        if not 0.0 < self.deviation < 0.5:
            raise RuleError(f"deviation must be in (0, 0.5), got {self.deviation}")
        if not 0.0 <= self.bound_margin < 0.5:
            raise RuleError(f"bound_margin must be in [0, 0.5), got {self.bound_margin}")
        if not 0.0 < self.angle_tolerance_deg < 180.0:
            raise RuleError(f"angle_tolerance_deg must be in (0, 180), got {self.angle_tolerance_deg}")
        if not 0.0 < self.line_tolerance < 0.5:
            raise RuleError(f"line_tolerance must be in (0, 0.5), got {self.line_tolerance}")
        if not 0.0 <= self.clear_score < self.alarm_score <= 1.0:
            raise RuleError("need 0 <= clear_score < alarm_score <= 1")
        if self.time_constant <= timedelta(0) or self.reference_time_constant <= timedelta(0):
            raise RuleError("time constants must be positive")
        if self.min_duration < timedelta(0):
            raise RuleError("min_duration must not be negative")


class NeutralEventKind(enum.Enum):
    DETECTED = "detected"
    CLEARED = "cleared"


@dataclass(frozen=True, slots=True)
class NeutralEvent:
    """The alarm was raised or cleared at ``at`` (the deciding sample's timestamp)."""

    kind: NeutralEventKind
    at: datetime
    score: float
    voltages: tuple[float, float, float]


@dataclass(frozen=True, slots=True)
class NeutralAssessment:
    """What one sample showed.

    ``outlier_phase`` is the phase (1..3) that passed the pre-check, ``consistent`` whether the
    geometry is that of a rigid triangle (angle sum, or line voltages when angles were given),
    ``displacement`` the reconstructed star point's distance from the centre per unit of
    ``reference_v``.
    """

    at: datetime
    voltages: tuple[float, float, float]
    reference_v: float
    outlier_phase: int | None
    angle_sum_deg: float | None
    consistent: bool
    displacement: float
    evidence: bool
    score: float
    alarm: bool
    event: NeutralEvent | None


class BrokenNeutralDetector:
    """One meter's broken-neutral detector; feed it samples in time order."""

    def __init__(self, config: NeutralConfig | None = None) -> None:
        self.config = config or NeutralConfig()
        self._reference = self.config.nominal_voltage_v
        self._score = 0.0
        self._alarm = False
        self._above_since: datetime | None = None
        self._below_since: datetime | None = None
        self._last_at: datetime | None = None

    @property
    def alarm(self) -> bool:
        return self._alarm

    @property
    def score(self) -> float:
        return self._score

    @property
    def reference_v(self) -> float:
        """The tracked EMF level the geometry uses."""
        return self._reference

    def observe(
        self,
        at: datetime,
        voltages: Sequence[float | Decimal],
        angles_deg: Sequence[float | Decimal] | None = None,
    ) -> NeutralAssessment:
        """Assess one sample of the three phase voltages (V), optionally with their angles (deg)."""
        if at.tzinfo is None:
            raise RuleError(f"sample times must be timezone-aware, got {at!r}")
        if self._last_at is not None and at < self._last_at:
            raise RuleError(
                f"sample at {at.isoformat()} is older than the last one ({self._last_at.isoformat()})"
            )
        if len(voltages) != 3 or (angles_deg is not None and len(angles_deg) != 3):
            raise RuleError("a broken-neutral check needs three phase voltages (and three angles, if any)")
        v = (float(voltages[0]), float(voltages[1]), float(voltages[2]))
        if not all(math.isfinite(x) and x >= 0 for x in v):
            raise RuleError(f"voltages must be finite and >= 0, got {v}")
        cfg = self.config
        dt = 0.0 if self._last_at is None else (at - self._last_at).total_seconds()
        self._last_at = at
        nominal = cfg.nominal_voltage_v
        reference = self._reference

        outlier = precheck(v, nominal, reference, deviation=cfg.deviation, bound_margin=cfg.bound_margin)
        total = angle_sum_deg(v, _SQRT3 * reference)
        if angles_deg is not None:
            phasors = [cmath.rect(x, math.radians(float(a))) for x, a in zip(v, angles_deg, strict=True)]
            lines = [abs(phasors[i] - phasors[j]) for i, j in _PAIRS]
            mean_line = sum(lines) / 3.0
            consistent = (
                mean_line > 0.0
                and (max(lines) - min(lines)) / mean_line <= cfg.line_tolerance
                and abs(mean_line / (_SQRT3 * reference) - 1.0) <= cfg.deviation
            )
            displacement = abs(sum(phasors, 0j)) / 3.0 / reference
        else:
            residual = angle_residual_deg(v, _SQRT3 * reference)
            consistent = residual is not None and residual <= cfg.angle_tolerance_deg
            displacement = abs(star_point(v, reference)) / reference
        evidence = outlier is not None and consistent

        alpha = 1.0 - math.exp(-dt / cfg.time_constant.total_seconds())
        self._score += alpha * ((1.0 if evidence else 0.0) - self._score)
        event: NeutralEvent | None = None
        if not self._alarm:
            if self._score >= cfg.alarm_score:
                if self._above_since is None:
                    self._above_since = at
                if at - self._above_since >= cfg.min_duration:
                    self._alarm = True
                    event = NeutralEvent(NeutralEventKind.DETECTED, at, self._score, v)
            else:
                self._above_since = None
        elif self._score <= cfg.clear_score:
            if self._below_since is None:
                self._below_since = at
            if at - self._below_since >= cfg.min_duration:
                self._alarm = False
                self._above_since = self._below_since = None
                event = NeutralEvent(NeutralEventKind.CLEARED, at, self._score, v)
        else:
            self._below_since = None

        # Track the supply level only while it looks healthy: all phases within the band.
        if (
            not self._alarm
            and outlier is None
            and all(abs(x - nominal) <= cfg.deviation * nominal for x in v)
        ):
            beta = 1.0 - math.exp(-dt / cfg.reference_time_constant.total_seconds())
            self._reference += beta * (sorted(v)[1] - self._reference)

        return NeutralAssessment(
            at=at,
            voltages=v,
            reference_v=reference,
            outlier_phase=outlier,
            angle_sum_deg=total,
            consistent=consistent,
            displacement=displacement,
            evidence=evidence,
            score=self._score,
            alarm=self._alarm,
            event=event,
        )
