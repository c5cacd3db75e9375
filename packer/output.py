"""Writing an output file atomically: a locked temporary file beside it, renamed into place.

A failed or interrupted write leaves the target as it was and no temporary file behind; one
left by a process that was killed (power cut, SIGKILL) is removed by the next write of the
same target, since a live writer holds a lock on its own.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from .errors import BuildError

__all__ = ["atomic_output", "new_file_mode"]


def new_file_mode(executable: bool) -> int:
    """The mode a new file gets here: 0666 (0777 when *executable*) less the umask."""
    umask = os.umask(0)
    os.umask(umask)
    return (0o777 if executable else 0o666) & ~umask


@contextlib.contextmanager
def atomic_output(out: Path, mode: int) -> Iterator[BinaryIO]:
    """A file to write *out*'s new contents to; on success it becomes *out* with *mode*.

    An OSError (in writing, or in what the caller does meanwhile) is reported as a
    BuildError naming *out*.
    """
    remove_stale_temporaries(out)
    try:
        fd, name = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    except OSError as exc:
        raise BuildError(f"{out}: cannot write in {out.parent}: {exc.strerror}") from None
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as fp:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # so it never looks stale
            yield fp
            fp.flush()
            os.fsync(fp.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, out)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise BuildError(f"{out}: cannot write: {exc.strerror or exc}") from None
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def remove_stale_temporaries(out: Path) -> None:
    """Remove temporary files of writes of *out* whose writer died: nobody holds their lock."""
    for path in out.parent.glob(f".{out.name}.*.tmp"):
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            continue
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue  # a write in progress
            with contextlib.suppress(OSError):
                path.unlink()
        finally:
            os.close(fd)
