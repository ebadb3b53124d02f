"""The stream journal: an append-only, fsynced JSON-lines log of a stream to a controller.

Line 1 is the header (this model); every later line is one event record
``{"ev": "sent"|"ack"|"error"|"alarm"|"state"|"done", "line": <program line no>, ...}``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterator

from pydantic import BaseModel, ConfigDict

from sculptor.artifacts.core import Artifact
from sculptor.errors import UserError


def _drop_torn_tail(path: Path) -> None:
    """Cut a record torn by a power cut (no final newline) before appending after it; it
    was never complete, so it was never committed."""
    if not path.is_file():
        return
    with open(path, "rb+") as f:
        data = f.read()
        if data and not data.endswith(b"\n"):
            f.truncate(data.rfind(b"\n") + 1)
            f.flush()
            os.fsync(f.fileno())


class JournalHeader(Artifact):
    KIND = "stream_journal"
    SCHEMA_VERSION = 1

    program: str
    program_sha256: str
    n_lines: int
    port: str
    protocol: str
    baud: int


class JournalEvent(BaseModel):
    model_config = ConfigDict(extra="allow")

    ev: str
    line: int | None = None
    t: float | None = None


class Journal:
    """Append-only journal file. ``append`` fsyncs every record before returning."""

    def __init__(self, path: str | os.PathLike, header: JournalHeader | None = None) -> None:
        self.path = Path(path)
        if header is not None:
            if self.path.exists():
                raise UserError(f"journal {self.path} already exists; use --resume {self.path}")
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._f = open(self.path, "x", encoding="utf-8")
            self._write(json.loads(header.model_dump_json()))
        else:
            _drop_torn_tail(self.path)
            self._f = open(self.path, "a", encoding="utf-8")

    def _write(self, rec: dict[str, Any]) -> None:
        self._f.write(json.dumps(rec, separators=(",", ":")) + "\n")
        self._f.flush()
        os.fsync(self._f.fileno())

    def append(self, ev: str, **fields: Any) -> None:
        self._write({"ev": ev, **fields})

    def append_many(self, records: list[dict[str, Any]], sync: bool = True) -> None:
        """Append several event records with one write (in the OS once this returns, so a
        crash of this process cannot lose them) and, unless ``sync`` is False, one fsync
        (on the disk: a power cut cannot lose them). See :meth:`sync`."""
        if not records:
            return
        self._f.write("".join(json.dumps(r, separators=(",", ":")) + "\n" for r in records))
        self._f.flush()
        if sync:
            os.fsync(self._f.fileno())

    def append_lines(self, lines: list[str]) -> None:
        """Append pre-formatted JSON records (one per item, no newline) and fsync."""
        self._f.write("\n".join(lines) + "\n")
        self._f.flush()
        os.fsync(self._f.fileno())

    def fileno(self) -> int:
        """For a group-commit thread: ``os.fsync(journal.fileno())`` (no Python buffer
        involved, safe next to a writer thread that flushes after each append)."""
        return self._f.fileno()

    def sync(self) -> None:
        """fsync what was appended with ``sync=False`` (group commit)."""
        self._f.flush()
        os.fsync(self._f.fileno())

    def close(self) -> None:
        self._f.close()

    @staticmethod
    def read(path: str | os.PathLike) -> tuple[JournalHeader, list[JournalEvent]]:
        """Read a journal; a torn last line (power cut mid-write) is ignored."""
        path = Path(path)
        if not path.is_file():
            raise UserError(f"journal not found: {path}")
        lines = path.read_text("utf-8", errors="replace").splitlines()
        if not lines:
            raise UserError(f"journal {path} is empty; it cannot be resumed")
        try:
            header = JournalHeader.model_validate(json.loads(lines[0]))
        except Exception:
            raise UserError(f"{path} is not a sculptor stream journal")
        events: list[JournalEvent] = []
        for i, ln in enumerate(lines[1:], start=2):
            try:
                events.append(JournalEvent.model_validate(json.loads(ln)))
            except Exception:
                if i == len(lines):
                    break  # torn final record
                raise UserError(f"journal {path} is corrupt at line {i}")
        return header, events

    @staticmethod
    def iter_events(events: list[JournalEvent], ev: str) -> Iterator[JournalEvent]:
        return (e for e in events if e.ev == ev)
