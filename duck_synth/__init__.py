"""duck_synth: synthetic data inside DuckDB, in SQL."""

from .connection import Session
from .database import connect
from .errors import SynthError
from .interface import Result
from .remote import RemoteSession

__version__ = "0.1.0"


def explain(sql: str, session: Session | None = None) -> str:
    """Where each predicate of ``sql`` goes (pushed into generate() or kept), and the SQL run."""
    return (session or connect()).explain(sql)


__all__ = ["RemoteSession", "Result", "Session", "SynthError", "connect", "explain", "__version__"]
