"""Reading files on a client's word, confined to the analysis roots.

A path is resolved to its real path (every symlink followed, loops detected) and must lie inside a
root, compared component by component. The file is then opened by walking from the root's
directory one component at a time with O_NOFOLLOW (so a symlink swapped in after the check is
refused, not followed), non-blocking, and must be a regular file by fstat before a byte is read.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import pathspec

from handoff.analysis.languages import detect_from_name
from handoff.analysis.reasons import FileRefused, Reason

PSEUDO_FILESYSTEMS = (Path("/proc"), Path("/sys"), Path("/dev"))
MAX_PATH_CHARS = 4096
_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | getattr(os, "O_NOCTTY", 0)
_DIR_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_DIRECTORY | os.O_CLOEXEC
SKIPPED_DIRS = frozenset({".git", ".hg", ".svn", "node_modules", "__pycache__", ".venv", ".tox", ".mypy_cache"})


@dataclass(frozen=True, slots=True)
class Target:
    """A file that passed confinement: where it is and how clients see it."""

    real: Path  # resolved, inside `root`
    root: Path
    display: str  # path relative to its root, POSIX style

    @property
    def relative(self) -> PurePosixPath:
        return PurePosixPath(self.display)


class Roots:
    def __init__(self, roots: list[Path]) -> None:
        resolved: list[Path] = []
        for root in roots:
            real = Path(os.path.realpath(root))
            if real not in resolved:
                resolved.append(real)
        if not resolved:
            raise ValueError("at least one analysis root is needed")
        self.paths = resolved
        # (root, its path as text, the prefix of everything inside it): str(Path) is normalised, so
        # a prefix ending in "/" is the same test as Path.is_relative_to, without pathlib's cost.
        self._prefixes = [(root, str(root), _inside(str(root))) for root in resolved]

    def resolve(self, given: str) -> Path:
        """The real path of a client-given path; FileRefused when it is unusable or outside the roots.

        Relative paths are tried under each root (and, with several roots, `<root name>/rest` under
        that root: the form results use). Containment is decided before existence, so nothing is
        revealed about what exists outside the roots.
        """
        if not isinstance(given, str) or not given.strip() or "\x00" in given or len(given) > MAX_PATH_CHARS:
            raise FileRefused(Reason.INVALID_PATH, "the path is empty, too long or contains a NUL byte")
        refusal: FileRefused | None = None
        escaped = False
        for candidate in self._candidates(given):
            if self.root_of(Path(os.path.realpath(candidate))) is None:
                # A link inside a root that points out: say so (its existence is no secret).
                inside = self.root_of(Path(os.path.normpath(candidate))) is not None
                escaped = escaped or (inside and os.path.lexists(candidate))
                continue
            try:
                real = Path(os.path.realpath(candidate, strict=True))
            except OSError as error:
                if error.errno == errno.ELOOP:
                    refusal = FileRefused(Reason.SYMLINK_LOOP, "the path runs into a symlink loop")
                elif error.errno == errno.EACCES:
                    refusal = FileRefused(Reason.PERMISSION_DENIED, "permission denied while resolving the path")
                elif refusal is None:
                    refusal = FileRefused(Reason.NOT_FOUND, "no such file or directory under the analysis roots")
                continue
            except RuntimeError:  # older Pythons report loops this way
                refusal = FileRefused(Reason.SYMLINK_LOOP, "the path runs into a symlink loop")
                continue
            if self.root_of(real) is not None:
                return real
        outside = FileRefused(Reason.OUTSIDE_ROOTS, "the path resolves outside the analysis roots")
        if refusal is not None and (refusal.reason is not Reason.NOT_FOUND or not escaped):
            raise refusal
        raise outside

    def _candidates(self, given: str) -> list[Path]:
        if os.path.isabs(given):
            return [Path(given)]
        candidates = [root / given for root in self.paths]
        if len(self.paths) > 1:
            first, _, rest = given.partition("/")
            candidates += [root / rest for root in self.paths if root.name == first]
        return candidates

    def root_of(self, real: Path) -> Path | None:
        found = self._containing(str(real))
        return found[0] if found is not None else None

    def _containing(self, text: str) -> tuple[Path, str, str] | None:
        # Component-wise containment: "/srv/proj-evil" is not inside "/srv/proj".
        for entry in self._prefixes:
            if text == entry[1] or text.startswith(entry[2]):
                return entry
        return None

    def target(self, real: Path) -> Target:
        text = str(real)
        found = self._containing(text)
        if found is None:
            raise FileRefused(Reason.OUTSIDE_ROOTS, "the path resolves outside the analysis roots")
        root, exact, prefix = found
        if any(text == p or text.startswith(inside) for p, inside in _PSEUDO_PREFIXES):
            raise FileRefused(Reason.NOT_REGULAR_FILE, "device and pseudo-filesystem files are not analysed")
        display = "." if text == exact else text[len(prefix) :]
        if len(self.paths) > 1:
            display = f"{root.name}/{display}" if display != "." else root.name
        return Target(real=real, root=root, display=display)


def _inside(directory: str) -> str:
    return directory if directory.endswith("/") else directory + "/"


_PSEUDO_PREFIXES = [(str(p), _inside(str(p))) for p in PSEUDO_FILESYSTEMS]


def read_confined(target: Target, *, max_bytes: int) -> bytes:
    """The file's bytes, opened without following any symlink, refusing non-regular files."""
    parts = target.real.relative_to(target.root).parts
    if not parts:
        raise FileRefused(Reason.NOT_REGULAR_FILE, "the path is a directory, not a file")
    try:
        dir_fd = os.open(target.root, _DIR_FLAGS)
    except OSError as error:
        raise _refusal(error) from None
    try:
        for part in parts[:-1]:
            try:
                next_fd = os.open(part, _DIR_FLAGS, dir_fd=dir_fd)
            except OSError as error:
                raise _refusal(error) from None
            os.close(dir_fd)
            dir_fd = next_fd
        try:
            before = os.stat(parts[-1], dir_fd=dir_fd, follow_symlinks=False)
        except OSError as error:
            raise _refusal(error) from None
        _check_regular(before.st_mode)
        if before.st_size > max_bytes:
            raise FileRefused(Reason.TOO_LARGE, f"{before.st_size} bytes; the limit is {max_bytes} per file")
        try:
            fd = os.open(parts[-1], _OPEN_FLAGS, dir_fd=dir_fd)
        except OSError as error:
            raise _refusal(error) from None
    finally:
        os.close(dir_fd)
    try:
        info = os.fstat(fd)
        _check_regular(info.st_mode)
        if (info.st_dev, info.st_ino) != (before.st_dev, before.st_ino):
            raise FileRefused(Reason.READ_ERROR, "the file changed while it was being opened")
        if info.st_size > max_bytes:
            raise FileRefused(Reason.TOO_LARGE, f"{info.st_size} bytes; the limit is {max_bytes} per file")
        chunks: list[bytes] = []
        remaining = max_bytes + 1
        while remaining > 0:
            chunk = os.read(fd, min(remaining, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= len(chunk)
    except OSError as error:
        raise _refusal(error) from None
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if len(data) > max_bytes:
        raise FileRefused(Reason.TOO_LARGE, f"more than {max_bytes} bytes; the limit per file")
    return data


def _check_regular(mode: int) -> None:
    if stat.S_ISDIR(mode):
        raise FileRefused(Reason.NOT_REGULAR_FILE, "the path is a directory, not a file")
    if not stat.S_ISREG(mode):
        kind = "FIFO" if stat.S_ISFIFO(mode) else "device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "special"
        raise FileRefused(Reason.NOT_REGULAR_FILE, f"not a regular file ({kind})")


def _refusal(error: OSError) -> FileRefused:
    if error.errno in (errno.EACCES, errno.EPERM):
        return FileRefused(Reason.PERMISSION_DENIED, "permission denied")
    if error.errno == errno.ELOOP:
        return FileRefused(Reason.READ_ERROR, "the file was replaced by a symlink while it was being opened")
    if error.errno in (errno.ENOENT, errno.ENOTDIR):
        return FileRefused(Reason.NOT_FOUND, "the file disappeared while it was being opened")
    return FileRefused(Reason.READ_ERROR, f"could not read the file ({errno.errorcode.get(error.errno or 0, 'EIO')})")


def walk(roots: Roots, directory: Path, *, limit: int) -> Iterator[Path]:
    """Source files under a directory (real paths), honouring .gitignore files, at most `limit`.

    Directory symlinks are not followed (a file symlink is yielded and re-checked by the caller);
    VCS, virtualenv and cache directories are skipped. Only files of a supported language by name
    are yielded: a directory's README or images are not errors.
    """
    root = roots.root_of(directory)
    if root is None:
        return
    # .gitignore files in the directories above it (up to the root) apply too.
    parts = directory.relative_to(root).parts
    # (directory as text, with a trailing "/", its .gitignore): paths below it are matched relative to it
    specs: list[tuple[str, pathspec.GitIgnoreSpec]] = []
    for depth in range(len(parts)):
        above = str(root.joinpath(*parts[:depth]))
        spec = _gitignore(above)
        if spec is not None:
            specs.append((_inside(above), spec))
    yielded = 0
    visited = 0
    stack: list[tuple[str, list[tuple[str, pathspec.GitIgnoreSpec]]]] = [(str(directory), specs)]
    while stack:
        current, active = stack.pop()
        own = _gitignore(current)
        if own is not None:
            active = [*active, (_inside(current), own)]
        try:
            with os.scandir(current) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError:
            continue
        subdirs: list[str] = []
        for entry in entries:
            visited += 1
            if visited > limit * 50:  # a bound on the walk itself, not just on what it yields
                return
            path = entry.path  # text below a real directory: pathlib objects only for what is yielded
            try:
                is_dir = entry.is_dir(follow_symlinks=False)
            except OSError:
                continue
            if is_dir and entry.name in SKIPPED_DIRS:
                continue
            if _ignored(active, path, is_dir):
                continue
            if is_dir:
                subdirs.append(path)
            elif detect_from_name(entry.name) is not None:
                yield Path(path)
                yielded += 1
                if yielded >= limit:
                    return
        stack.extend((sub, active) for sub in reversed(subdirs))


def _gitignore(directory: str) -> pathspec.GitIgnoreSpec | None:
    path = os.path.join(directory, ".gitignore")
    try:
        info = os.stat(path, follow_symlinks=False)
        if not stat.S_ISREG(info.st_mode) or info.st_size > 1 << 20:
            return None
        with open(path, encoding="utf-8", errors="replace") as file:
            lines = file.read().splitlines()
    except OSError:
        return None
    return pathspec.GitIgnoreSpec.from_lines(lines)


def _ignored(active: list[tuple[str, pathspec.GitIgnoreSpec]], path: str, is_dir: bool) -> bool:
    for base, spec in active:
        relative = path[len(base) :] + ("/" if is_dir else "")
        if spec.match_file(relative):
            return True
    return False
