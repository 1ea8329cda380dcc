"""JupiterOne sync API simulator (strict emulator used by tests, benches and the demo)."""

from syncd.sim.j1.app import J1_STATE, create_j1_app
from syncd.sim.j1.behaviour import J1Behaviour
from syncd.sim.j1.state import J1Faults, J1SimConfig, J1SimState, SimJob, object_id
from syncd.sim.j1.validation import ValidationRules

__all__ = [
    "J1_STATE",
    "J1Behaviour",
    "J1Faults",
    "J1SimConfig",
    "J1SimState",
    "SimJob",
    "ValidationRules",
    "create_j1_app",
    "object_id",
]
