"""Where file bytes live: ``<data>/files/<chat_id>/<generated name>``, never a user's name."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import time
import uuid
from pathlib import Path

# Temporary files start with "." and end with ".part": never listed, swept at start-up.
TMP_PREFIX = "."
TMP_SUFFIX = ".part"
# The errnos that mean the data dir is full: answered as disk_full, not io_error.
DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})


class FileStore:
    """Maps (chat, storage name) to paths inside the data dir; all methods are blocking."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def chat_dir(self, chat_id: str) -> Path:
        # chat_id is always a UUID we generated (validated before any file access).
        return self.root / str(uuid.UUID(chat_id))

    def path(self, chat_id: str, storage_name: str) -> Path:
        path = (self.chat_dir(chat_id) / storage_name).resolve()
        if path.parent != self.chat_dir(chat_id) or storage_name.startswith(TMP_PREFIX):
            raise ValueError(f"invalid storage name {storage_name!r}")
        return path

    @staticmethod
    def new_storage_name(extension: str, prefix: str = "") -> str:
        """A fresh name; a run's outputs share its ``prefix``, so they can be found without a
        list of what its worker managed to write (see ``remove_prefixed``)."""
        return prefix + uuid.uuid4().hex + extension

    def remove_prefixed(self, chat_id: str, prefix: str, *, temps_only: bool = False) -> None:
        """Remove every file of the chat whose name starts with ``prefix``, temp files too
        (with ``temps_only``, temp files only)."""
        directory = self.chat_dir(chat_id)
        patterns = [f"{TMP_PREFIX}{prefix}*{TMP_SUFFIX}"] + ([] if temps_only else [f"{prefix}*"])
        for pattern in patterns:
            for leftover in directory.glob(pattern):
                leftover.unlink(missing_ok=True)

    def temp_path(self, chat_id: str, prefix: str = "") -> Path:
        """A fresh temp file's path; ``prefix`` as in ``new_storage_name``."""
        directory = self.chat_dir(chat_id)
        directory.mkdir(parents=True, exist_ok=True)
        return directory / f"{TMP_PREFIX}{prefix}{uuid.uuid4().hex}{TMP_SUFFIX}"

    def commit(self, temp: Path, chat_id: str, storage_name: str) -> Path:
        """Move a finished temp file to its final name (atomic on one file system)."""
        final = self.path(chat_id, storage_name)
        os.replace(temp, final)
        return final

    def unlink(self, chat_id: str, storage_names: list[str]) -> None:
        for name in storage_names:
            self.path(chat_id, name).unlink(missing_ok=True)

    def remove_chat(self, chat_id: str) -> None:
        shutil.rmtree(self.chat_dir(chat_id), ignore_errors=True)

    def sweep(self, known: set[str], *, min_age_s: float = 0.0) -> int:
        """Delete temp files and files no database row refers to (left by a crash), if they
        were last written at least ``min_age_s`` ago (other processes may be writing now)."""
        removed = 0
        cutoff = time.time() - min_age_s
        if not self.root.is_dir():
            return 0
        for chat_dir in self.root.iterdir():
            if not chat_dir.is_dir():
                continue
            for entry in chat_dir.iterdir():
                if entry.name in known or not entry.is_file():
                    continue
                with contextlib.suppress(FileNotFoundError):
                    if min_age_s and entry.stat().st_mtime > cutoff:
                        continue
                    entry.unlink()
                    removed += 1
        return removed
