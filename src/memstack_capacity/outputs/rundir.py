"""Output directories the tool owns: the marker, the checks, and the atomic swap.

A directory is a previous run's outputs only if it holds :data:`MARKER`, a hidden JSON file
the tool wrote last, listing every file and folder it wrote (and the tool's version). Only
those entries are ever removed; a directory holding anything else, or no marker, is refused
by :func:`problem` before anything is simulated.

New outputs are written into a sibling ``.NAME.partial-<pid>-<token>`` (same parent, so the
same filesystem), the marker last, then swapped in by :func:`swap_in`:

- NAME absent: one ``rename(2)``, atomic by POSIX.
- NAME present: Linux ``renameat2(RENAME_EXCHANGE)`` exchanges the two names in one step
  of the kernel, so at every instant NAME is either the complete old run or the complete
  new one. The old run, now under the partial's name, is then removed entry by entry.
- Elsewhere (no ``renameat2``, or a filesystem without exchange): NAME is renamed to
  ``.NAME.old-<pid>``, the new one to NAME, and the old one removed. A kill between the two
  renames leaves no NAME, only the complete old run beside it; :func:`recover`, run before
  the next run simulates, renames it back.

The pid in a sibling's name is its writer's: :func:`recover` removes only siblings whose
writer is no longer alive and that are ours (they hold our marker, or are empty), so a
killed run leaves nothing behind after the next one and a concurrent run is left alone.
Durability against power loss (fsync) is not attempted; a killed process is.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import re
import secrets
from pathlib import Path

#: The marker file; its presence, as written by the tool, makes a directory a previous run.
MARKER = ".memstack-run.json"
MARKER_TMP = f"{MARKER}.tmp"
TOOL = "memstack-capacity"
_AT_FDCWD, _RENAME_EXCHANGE = -100, 2


def tool_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(TOOL)
    except PackageNotFoundError:
        return "unknown"


# ---- the marker --------------------------------------------------------------------------------


def read_marker(directory: Path) -> dict | None:
    """The marker's content when ``directory`` holds one the tool wrote, else None."""
    path = directory / MARKER
    if path.is_symlink() or not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("tool") != TOOL:
        return None
    if not all(isinstance(data.get(k), list) for k in ("files", "dirs")):
        return None
    return data


def write_marker(directory: Path, state: str) -> None:
    """The marker listing every file and folder now in ``directory`` (``state``: writing or complete)."""
    files, dirs = [], []
    for root, dirnames, filenames in os.walk(directory):
        rel = Path(root).relative_to(directory)
        dirs += [(rel / d).as_posix() for d in dirnames]
        files += [(rel / f).as_posix() for f in filenames if (rel / f).as_posix() != MARKER]
    data = {"tool": TOOL, "version": tool_version(), "state": state, "files": sorted(files), "dirs": sorted(dirs)}
    tmp = directory / MARKER_TMP
    tmp.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, directory / MARKER)


def foreign_entries(directory: Path, marker: dict | None) -> list[str]:
    """What ``directory`` holds that the marker does not list (symlinks always count), sorted."""
    known = set(marker["files"]) | set(marker["dirs"]) | {MARKER} if marker else set()
    found = []
    for root, dirnames, filenames in os.walk(directory):
        rel = Path(root).relative_to(directory)
        for name in [*dirnames, *filenames]:
            entry = (rel / name).as_posix()
            if entry not in known or os.path.islink(Path(root) / name):
                found.append(entry)
        dirnames[:] = [d for d in dirnames if (rel / d).as_posix() in known]
    return sorted(found)


# ---- the check ---------------------------------------------------------------------------------


def prepare(out: Path) -> str | None:
    """Why ``out`` cannot take a run's outputs, or None; called before anything is simulated.

    Between the checks of the path and of what it holds, :func:`recover` finishes what a
    killed run left beside it, so the directory is judged as the last complete run left it.
    """
    found = path_problem(out)
    if found:
        return found
    recover(out)
    return problem(out)


def path_problem(out: Path) -> str | None:
    """``out`` is a symlink, the current directory or one of its parents: never replaced."""
    if out.is_symlink():
        return f"--out {out}: is a symbolic link; give the directory itself ({os.path.realpath(out)})"
    resolved, cwd = out.resolve(), Path.cwd().resolve()
    if resolved == cwd or resolved in cwd.parents:
        return (f"--out {out}: is the current directory or one of its parents; outputs replace the directory "
                "as a whole, so give a directory of its own, e.g. --out out/run1")
    return None


def problem(out: Path) -> str | None:
    """Why ``out`` cannot take a run's outputs (its path, or what it holds), or None."""
    found = path_problem(out)
    if found:
        return found
    if out.exists() and not out.is_dir():
        return f"--out {out}: exists and is not a directory"
    if out.is_dir():
        found = _refusal(out)
        if found:
            return found
    parent = next((p for p in (out.absolute(), *out.absolute().parents) if p.exists()), None)
    if parent is None or not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        return f"--out {out}: cannot create or write it ({parent} is not a writable directory)"
    return None


def _refusal(out: Path) -> str | None:
    marker = read_marker(out)
    try:
        found = foreign_entries(out, marker)
    except OSError as exc:
        return f"--out {out}: cannot be read ({exc.strerror or exc})"
    if not found:
        return None
    shown = ", ".join(found[:5]) + (f" and {len(found) - 5} more" if len(found) > 5 else "")
    if marker is None:
        return (f"--out {out}: the directory is not empty and is not a previous run's outputs (it has no {MARKER}); "
                f"it holds {shown}. Nothing is deleted: give a new or empty directory")
    return (f"--out {out}: a previous run's outputs, but it also holds what this tool did not write: {shown}. "
            "Nothing is deleted: move those away or give another directory")


# ---- staging and the swap ----------------------------------------------------------------------


def new_staging(out: Path) -> Path:
    """An empty sibling ``.NAME.partial-<pid>-<token>`` (permissions from the umask) with a writing marker."""
    out.parent.mkdir(parents=True, exist_ok=True)
    while True:
        staging = out.parent / f".{out.name}.partial-{os.getpid()}-{secrets.token_hex(4)}"
        try:
            staging.mkdir()
        except FileExistsError:
            continue
        write_marker(staging, "writing")
        return staging


def swap_in(staging: Path, out: Path) -> None:
    """Put the complete ``staging`` at ``out`` atomically, then remove the run it replaced."""
    write_marker(staging, "complete")
    if not out.exists():
        os.rename(staging, out)
        return
    if _exchange(staging, out):
        remove_run(staging)
        return
    old = out.parent / f".{out.name}.old-{os.getpid()}"
    os.rename(out, old)
    os.rename(staging, out)
    remove_run(old)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux renameat2 RENAME_EXCHANGE); False where unavailable."""
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP):
        return False
    raise OSError(code, os.strerror(code), str(b))


def remove_run(directory: Path) -> None:
    """Remove what the marker lists, the marker last, then the folders it lists if empty.

    Anything not listed stays (and so does the folder holding it): a user's file is never deleted.
    An empty folder without a marker (a swap killed after its marker went) is removed too, and so
    is the marker's own temporary file (a writer killed while writing its first marker).
    """
    marker = read_marker(directory)
    with _quiet():
        (directory / MARKER_TMP).unlink()
    if marker is not None:
        for name in marker["files"]:
            with _quiet():
                (directory / name).unlink()
        with _quiet():
            (directory / MARKER).unlink()
        for name in sorted(marker["dirs"], key=lambda d: -d.count("/")):
            with _quiet():
                (directory / name).rmdir()
    _remove_empty_tree(directory)


def _remove_empty_tree(directory: Path) -> None:
    for root, _dirs, _files in sorted(os.walk(directory), key=lambda w: -len(w[0])):
        with _quiet():
            os.rmdir(root)


class _quiet:
    """Ignore an entry already gone or not empty: removal is best effort, never forced."""

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb):
        return kind is not None and issubclass(kind, OSError)


def discard_staging(staging: Path) -> None:
    """Remove a staging folder this process created and never swapped in (a failed write)."""
    _remove_staging_whole(staging)


def _remove_staging_whole(staging: Path) -> None:
    """Remove a staging folder and all it holds, its marker last.

    A removal killed halfway thus leaves the marker naming the folder ours, and the next run
    finishes it; with the marker gone first, the rest would look like someone else's files.
    """
    marker = staging / MARKER
    for root, dirnames, filenames in os.walk(staging, topdown=False):
        for name in filenames:
            path = Path(root) / name
            if path != marker:
                with _quiet():
                    path.unlink()
        for name in dirnames:
            path = Path(root) / name
            with _quiet():
                path.unlink() if path.is_symlink() else path.rmdir()
    with _quiet():
        marker.unlink()
    with _quiet():
        staging.rmdir()


# ---- recovery from a killed run ----------------------------------------------------------------


def recover(out: Path) -> None:
    """Finish what a killed run left beside ``out``: put back an old run a half-done swap moved
    aside (NAME missing), then remove stale staging and old folders of dead writers."""
    if not out.parent.is_dir():
        return
    pattern = re.compile(rf"\.{re.escape(out.name)}\.(partial|old)-(\d+)(-[0-9a-f]+)?")
    siblings = []
    for path in out.parent.iterdir():
        match = pattern.fullmatch(path.name)
        if match and path.is_dir() and not path.is_symlink() and not _alive(int(match[2])):
            siblings.append((match[1], path))
    if not out.exists() and not out.is_symlink():
        for kind, path in siblings:
            marker = read_marker(path)
            if kind == "old" and marker is not None and marker.get("state") == "complete":
                os.rename(path, out)
                siblings.remove((kind, path))
                break
    for kind, path in siblings:
        _remove_stale(kind, path)


def _remove_stale(kind: str, path: Path) -> None:
    """A dead writer's folder: a staging one still being written is ours whole; the others by their marker."""
    marker = read_marker(path)
    if kind == "partial" and marker is not None and marker.get("state") == "writing":
        _remove_staging_whole(path)
    else:
        remove_run(path)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True
