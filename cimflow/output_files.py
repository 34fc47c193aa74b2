"""Writing the user's output files safely: one helper for every tool.

``cim-opt -o``, ``cim-sim -o`` / ``--timeline``, ``cim-verify -o`` and
``cim-bench``'s CSV, table and plots all write through
:func:`write_output`, which treats a path as a shell redirection would,
without ever leaving a half-written file:

- a regular file, or a path that does not exist yet: the text goes to a
  temporary file beside it, which then replaces it in one rename, so a
  reader sees the old file or the whole new one. A new file gets the
  permissions the umask allows; a replaced file keeps its own;
- a symbolic link is followed: its target is written (as above), the link
  stays a link;
- a character device (``/dev/null``, a terminal) or a FIFO is written
  through, never replaced;
- anything else (a directory, a socket) is refused.

Failures are one-line :class:`~cimflow.errors.CimError` messages that name
the user's path, never the temporary file, and say why ("permission
denied", "read-only file system", "no such directory", "is a directory",
"symlink loop", "no space left on device").
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from pathlib import Path

from cimflow.errors import CimError

_REASONS: dict[int, str] = {
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.EROFS: "read-only file system",
    errno.ENOENT: "no such directory",
    errno.ENOTDIR: "a component of the path is not a directory",
    errno.EISDIR: "is a directory",
    errno.ELOOP: "symlink loop",
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
    errno.ENAMETOOLONG: "file name too long",
    errno.ETXTBSY: "file is busy",
}


def _reason(error: OSError) -> str:
    if error.errno is not None and error.errno in _REASONS:
        return _REASONS[error.errno]
    return error.strerror or type(error).__name__


def output_error(path: str | os.PathLike[str], error: OSError) -> CimError:
    """The one-line error for a failed write of the user's ``path``."""
    return CimError(f"{os.fspath(path)}: cannot write: {_reason(error)}")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _replace_atomically(target: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file in ``target``'s folder, then rename
    it over ``target``."""
    try:
        mode = stat.S_IMODE(target.stat().st_mode)
    except FileNotFoundError:
        mode = 0o666 & ~_umask()
    handle, temporary = tempfile.mkstemp(
        prefix=f".{target.name}.", suffix=".tmp", dir=target.parent
    )
    try:
        with os.fdopen(handle, "wb") as stream:
            os.fchmod(stream.fileno(), mode)
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def write_output(path: str | os.PathLike[str], data: str | bytes) -> None:
    """Write ``data`` (text is UTF-8) to the user's ``path``, as described in
    the module docstring; raises a one-line CimError on failure."""
    payload = data.encode("utf-8") if isinstance(data, str) else data
    user_path = os.fspath(path)
    try:
        # Follows every link; a dangling link resolves to where it points.
        target = Path(os.path.realpath(user_path, strict=False))
        try:
            info = os.stat(target)
        except FileNotFoundError:
            info = None
        if info is not None and stat.S_ISDIR(info.st_mode):
            raise CimError(f"{user_path}: cannot write: is a directory")
        if info is not None and (
            stat.S_ISCHR(info.st_mode) or stat.S_ISFIFO(info.st_mode)
        ):
            with open(target, "wb") as stream:
                stream.write(payload)
            return
        if info is not None and not stat.S_ISREG(info.st_mode):
            raise CimError(f"{user_path}: cannot write: not a regular file")
        if not target.parent.is_dir():
            raise CimError(f"{user_path}: cannot write: no such directory")
        _replace_atomically(target, payload)
    except OSError as error:
        raise output_error(user_path, error) from None
