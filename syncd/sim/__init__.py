"""Simulators that stand in for Microsoft Graph / Entra ID / Intune and JupiterOne.

`syncd sim` (or `python -m syncd.sim`) starts them; see docs/simulators.md.
"""
