"""sg-reconciler: keep AWS EC2 security groups equal to a declarative baseline."""

__all__ = ["__version__"]

__version__ = "0.1.0"
