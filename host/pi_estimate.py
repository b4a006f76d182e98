"""ESTIMATED per-digit and per-frame times on Raspberry Pi boards (a cost model, not a measurement).

Inference: MACs per digit / (int8 MACs per cycle per core x clock x efficiency), plus a fixed
per-invoke overhead. Peak MACs per cycle come from each core's NEON pipelines as Arm's
optimisation guides describe them (see ``CORES``); the efficiency range is what small int8
convolutions typically reach of that peak. The other stages of a frame (decode, segmentation,
normalisation: OpenCV and NumPy code) are scaled from this host's measurement by an assumed
per-core slowdown range. Every number here is an ESTIMATE and is reported apart from
measured host figures; measure on the board to replace it.
"""

from __future__ import annotations

from dataclasses import dataclass

# Fraction of the theoretical int8 peak reached by small convolutions (28x28 input, 32..128
# channels, depthwise layers that cannot use the multiply pipes fully, per-layer requantisation
# and pooling): a range, not a point. XNNPACK/ruy reach well above this on large GEMMs.
EFFICIENCY = (0.15, 0.35)
# Interpreter overhead per invoke (tensor copies, op dispatch for ~15 ops), microseconds.
INVOKE_OVERHEAD_US = (20.0, 60.0)


@dataclass(frozen=True)
class Core:
    board: str
    core: str
    ghz: float
    int8_macs_per_cycle: int
    basis: str  # why that many MACs per cycle, with its source
    # Assumed per-core slowdown of OpenCV/NumPy code vs this benchmark host (low, high).
    slowdown: tuple[float, float]


CORES = (
    Core(
        "Raspberry Pi 5",
        "Cortex-A76",
        2.4,
        32,
        "Armv8.2-A dot product: SDOT does 16 int8 MACs per 128-bit instruction and the A76 "
        "issues ASIMD integer ops on two pipelines (V0/V1) - Arm Cortex-A76 Software "
        "Optimization Guide (PJDOC-466751330-7215), ASIMD instruction tables",
        (2.0, 4.0),
    ),
    Core(
        "Raspberry Pi 4 (1.8 GHz, rev 1.4+)",
        "Cortex-A72",
        1.8,
        8,
        "Armv8.0-A, no SDOT: int8 products go through SMULL/SMLAL(2) (8 lanes widening to "
        "16 bit per instruction), and ASIMD integer multiplies issue only on the F0 pipeline, "
        "one per cycle - Arm Cortex-A72 Software Optimization Guide (UAN 0016A), sections 2 "
        "and 3.14",
        (5.0, 9.0),
    ),
    Core(
        "Raspberry Pi 4 (1.5 GHz)",
        "Cortex-A72",
        1.5,
        8,
        "as above at the original 1.5 GHz clock",
        (6.0, 11.0),
    ),
    Core(
        "Raspberry Pi Zero 2 W",
        "Cortex-A53",
        1.0,
        4,
        "Armv8.0-A in-order core whose NEON unit executes 128-bit operations as two 64-bit "
        "halves (Arm Cortex-A53 MPCore TRM, DDI 0500, 'Advanced SIMD and floating-point'): "
        "about half the A72's SMLAL rate per cycle; Arm publishes no A53 optimisation guide",
        (14.0, 28.0),
    ),
)


@dataclass(frozen=True)
class Estimate:
    core: Core
    digit_us: tuple[float, float]  # (best, worst) per digit at batch 1
    frame_ms: tuple[float, float]  # (best, worst) per 640x480 frame

    @property
    def fps(self) -> tuple[float, float]:
        return 1000.0 / self.frame_ms[1], 1000.0 / self.frame_ms[0]


def peak_gmacs(core: Core) -> float:
    return core.int8_macs_per_cycle * core.ghz


def digit_us(macs: int, core: Core) -> tuple[float, float]:
    """(best, worst) microseconds for one digit at batch 1."""
    best = macs / (peak_gmacs(core) * 1e3 * EFFICIENCY[1]) + INVOKE_OVERHEAD_US[0]
    worst = macs / (peak_gmacs(core) * 1e3 * EFFICIENCY[0]) + INVOKE_OVERHEAD_US[1]
    return best, worst


def estimate(
    macs: int,
    host_other_ms: float,
    crops_per_frame: float,
    core: Core,
    invokes_per_frame: float = 1.0,
) -> Estimate:
    """Per-digit and per-frame estimates for ``core``.

    ``host_other_ms`` is this host's measured median time per frame for everything except the
    model (decode + segmentation + normalisation); ``crops_per_frame`` the mean number of
    crops the model classifies per frame (digits, and alternatives of unsure blobs);
    ``invokes_per_frame`` how many batches they come in (the digits in one, the alternatives
    in a second where any blob was unsure): the invoke overhead is paid once per batch.
    """
    best_d, worst_d = digit_us(macs, core)
    infer_best = (best_d - INVOKE_OVERHEAD_US[0]) * crops_per_frame + (
        INVOKE_OVERHEAD_US[0] * invokes_per_frame
    )
    infer_worst = (worst_d - INVOKE_OVERHEAD_US[1]) * crops_per_frame + (
        INVOKE_OVERHEAD_US[1] * invokes_per_frame
    )
    frame_best = host_other_ms * core.slowdown[0] + infer_best / 1000.0
    frame_worst = host_other_ms * core.slowdown[1] + infer_worst / 1000.0
    return Estimate(core, (best_d, worst_d), (frame_best, frame_worst))
