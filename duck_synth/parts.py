"""generate_into(..., path => 'out/'): the rows as Parquet parts in a folder, one per batch, and
a view of the table's name reading them.

A part is written under a temporary name and renamed, so a folder never holds half a part. A
part whose batch's commit failed is removed; one a killed run left behind is removed when the
run resumes, which draws that batch again (a batch's rows depend only on the seed, its number
and batch_size).
"""

from __future__ import annotations

import glob
import os

import pyarrow as pa
import pyarrow.parquet as pq

from . import access, spool
from .errors import SynthError

PART_GLOB = "part-*.parquet"


class Parts:
    def __init__(self, folder: str):
        self.folder = folder

    @classmethod
    def at(cls, path: str) -> Parts:
        """The folder ``path`` (created if missing), when the caller may write there."""
        folder = access.check_path(path, "generate_into(): path", write=True)
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError as error:
            raise SynthError(f"generate_into(): cannot create '{path}': {error.strerror}") from None
        if not os.path.isdir(folder):
            raise SynthError(f"generate_into(): path '{path}' is a file, not a folder")
        return cls(folder)

    def check_empty(self) -> None:
        """A new run writes into a folder without parts (another run's would join the view)."""
        if self.existing():
            raise SynthError(
                f"generate_into(): '{self.folder}' holds Parquet parts already; give an empty "
                "folder, or delete them"
            )

    def existing(self) -> list[str]:
        return sorted(glob.glob(os.path.join(glob.escape(self.folder), PART_GLOB)))

    def name(self, batch: int) -> str:
        return os.path.join(self.folder, f"part-{batch:08d}.parquet")

    def write(self, batch: int, rows: pa.Table) -> None:
        final = self.name(batch)
        temporary = final + ".writing"
        try:
            pq.write_table(rows, temporary, compression="snappy")
            os.replace(temporary, final)
        except OSError as error:
            raise SynthError(f"generate_into(): cannot write '{final}': {error.strerror}") from None

    def view_sql(self, types: list[tuple[str, str]]) -> str:
        """The view's query: every part in batch order (DuckDB reads a glob's files sorted),
        typed as the model's columns (an ENUM is a string in Parquet)."""
        return spool.select_sql(os.path.join(self.folder, PART_GLOB), types)

    def remove(self, first: int = 0) -> None:
        """The parts of batches ``first`` on: a run that wrote nothing leaves none, and a
        resumed run drops those a stopped one wrote without committing their batch."""
        for path in self.existing():
            if int(os.path.basename(path)[5:-8]) >= first:
                os.remove(path)
