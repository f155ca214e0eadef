"""A database of linked tables: trained as one table model per table, each child in the
context of its parent row (frames.py, training.py), generated parents first with fresh keys
and every foreign key pointing at a generated parent (generation.py)."""

from .training import train_database

__all__ = ["train_database"]
