"""The device profiles a cost estimate can assume (study.estimate), light enough for the CLI
to list as choices at start-up."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

CALIBRATE = "calibrate"  # measure the present device instead of assuming a profile
DeviceKind = Literal["cpu", "gpu"]


@dataclass(frozen=True)
class DeviceProfile:
    """Sustained FLOP/s for training and for generation, and where the numbers come from."""

    name: str
    train_flops: float
    generate_flops: float
    assumption: str
    kind: DeviceKind = "gpu"

    def seconds(self, train_flops: float, generate_flops: float) -> float:
        return train_flops / self.train_flops + generate_flops / self.generate_flops


def _profile(
    name: str, peak: float, what: str, train_mfu: float = 0.40, generate_mfu: float = 0.10, kind: DeviceKind = "gpu"
) -> DeviceProfile:
    return DeviceProfile(
        name,
        peak * train_mfu,
        peak * generate_mfu,
        f"{what}: {peak / 1e12:g} TFLOP/s peak; assumed MFU {train_mfu:.0%} training, {generate_mfu:.0%} "
        "generation (greedy decoding is memory-bound)",
        kind,
    )


DEVICE_PROFILES = {
    "a100-40gb": _profile("a100-40gb", 312e12, "A100 40GB, bf16 dense"),
    "a100-80gb": _profile("a100-80gb", 312e12, "A100 80GB, bf16 dense"),
    "h100": _profile("h100", 989e12, "H100 SXM, bf16 dense"),
    "cpu": _profile("cpu", 0.2e12, "a server CPU socket, fp32", train_mfu=0.30, generate_mfu=0.10, kind="cpu"),
}
DEVICE_CHOICES = (*DEVICE_PROFILES, CALIBRATE)
