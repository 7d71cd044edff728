"""Seeded, random-access randomness for the load model.

Rule: every random quantity of the load model is a pure function of (meter seed, purpose, time
index). Nothing here keeps state between calls, so any past instant can be recomputed in O(1)
and two runs with the same seed agree bit for bit.

Theory of operation:

* :func:`derive` hashes a tuple of integers with the SplitMix64 finaliser into a 64-bit key.
  Keys seed short-lived :class:`random.Random` instances (one per meter, purpose and day), whose
  Mersenne Twister output is specified and identical on every platform and Python version.
* Per-step noise is not drawn step by step (that would need state or a costly hash per step):
  it is read from :func:`noise_table`, one shared, immutable table of 65,536 samples of a
  zero-mean, unit-variance process correlated over about ten samples (an AR(1) with coefficient
  0.9 mixed with white noise). A meter reads a day's noise from a seeded random offset into the
  table, one sample per minute of the day, so the noise is smooth over minutes, differs between
  days, meters and phases, and costs one list index per step.
* The table is built from ``random.Random`` uniforms with additions and multiplications by
  literal constants only (Irwin-Hall sums instead of ``log``/``cos``), so it is bit-identical on
  every platform; its samples are bounded to +/-4.5, which lets the model bound its noise
  amplitudes at configuration time instead of clamping in the hot loop.
"""

from __future__ import annotations

import functools
import math
import random

__all__ = ["NOISE_LIMIT", "NOISE_SPAN", "NOISE_TABLE_SIZE", "derive", "irwin_hall", "mix64", "noise_table"]

_MASK64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15

#: Number of samples in :func:`noise_table`.
NOISE_TABLE_SIZE = 1 << 16
#: Largest offset a day may start at: a day reads at most 1,440 samples (one per minute).
NOISE_SPAN = NOISE_TABLE_SIZE - 1440
#: Every sample of :func:`noise_table` lies within +/- this bound.
NOISE_LIMIT = 4.5

# AR(1) coefficient and its innovation scale sqrt(1 - 0.9**2), as literals so no libm is involved.
_AR = 0.9
_AR_INNOVATION = 0.4358898943540674
# Mix of the correlated and the white component: 0.8**2 + 0.6**2 == 1 keeps unit variance.
_CORRELATED = 0.8
_WHITE = 0.6
_SQRT3 = 1.7320508075688772


def mix64(value: int) -> int:
    """SplitMix64 finaliser: a bijective, well-mixing map of 64-bit integers."""
    z = value & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


def derive(*parts: int) -> int:
    """A 64-bit key from integers (negative ones included), stable across runs and platforms."""
    h = 0x243F6A8885A308D3
    for part in parts:
        h = mix64((h + _GOLDEN + (part & _MASK64)) & _MASK64)
    return h


def irwin_hall(rnd: random.Random) -> float:
    """An approximately normal sample with mean 0 and variance 1, bounded to +/-3.46.

    The sum of four uniforms (Irwin-Hall), rescaled; close enough to a Gaussian for load noise
    and, unlike ``random.gauss``, uses no transcendental function.
    """
    return (rnd.random() + rnd.random() + rnd.random() + rnd.random() - 2.0) * _SQRT3


@functools.cache
def noise_table() -> tuple[float, ...]:
    """The shared correlated noise table (built once per process, about 0.1 s)."""
    rnd = random.Random(0x4D455445_52434F4D)  # "METERCOM"
    x = 0.0
    raw: list[float] = []
    for _ in range(64):  # burn in the AR(1) state
        x = _AR * x + _AR_INNOVATION * irwin_hall(rnd)
    for _ in range(NOISE_TABLE_SIZE):
        x = _AR * x + _AR_INNOVATION * irwin_hall(rnd)
        raw.append(_CORRELATED * x + _WHITE * irwin_hall(rnd))
    mean = sum(raw) / len(raw)
    centred = [v - mean for v in raw]
    std = math.sqrt(sum(v * v for v in centred) / len(centred))  # sqrt is correctly rounded
    return tuple(max(-NOISE_LIMIT, min(NOISE_LIMIT, v / std)) for v in centred)
