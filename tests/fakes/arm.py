"""The fake Resource Manager ships with the package: ``chatops console`` runs it too."""

from bot.sandbox.fakes.arm import (
    API_VERSION,
    PROVIDER,
    TOKEN,
    ArmFault,
    FakeArm,
    Seen,
    StaticCredential,
    arm_error,
)

__all__ = [
    "API_VERSION",
    "PROVIDER",
    "TOKEN",
    "ArmFault",
    "FakeArm",
    "Seen",
    "StaticCredential",
    "arm_error",
]
