"""syncd: keeps the JupiterOne graph in near-real-time sync with a Microsoft 365 tenant."""

__version__ = "0.1.0"
