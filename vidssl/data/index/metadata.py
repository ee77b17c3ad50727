"""Probe video files for their metadata, remembering the answers in a SQLite cache.

Building an index needs each file's frame count and frame rate, and reading them means opening
the container (for ``seek_mode="exact"`` torchcodec even scans it). For tens of thousands of
files that is minutes; the second build of the same tree should take a blink. So every answer
is kept in :class:`MetadataCache`, keyed by the file's absolute path and the decoder backend, and
valid only while the file's size and ``mtime_ns`` are the ones it had when probed:

* a file that did not change is never opened again: a rebuild costs one ``stat`` per file and a
  few batched SQLite lookups;
* a file that changed (size or modification time) is probed again;
* a file that could not be read keeps its failure reason, so a corrupt file is not re-probed on
  every run either (until it changes).

The cache lives at ``$VIDSSL_CACHE_DIR/metadata.sqlite`` (default ``~/.cache/vidssl/``). It uses
WAL journaling and a busy timeout, so two processes building indexes at the same time share it
safely. A cache that cannot be opened (read-only directory, corrupt file) is skipped with a
warning: it never stops a build.
"""

from __future__ import annotations

import os
import sqlite3
import sys
import threading
import warnings
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Iterable, Sequence, Union

from vidssl.data.decoders.base import (
    DECODERS,
    DEFAULT_BACKEND,
    VideoMeta,
    decoder_class,
    one_line,
    probe_video,
)
from vidssl.data.deadline import DEFAULT_DECODE_TIMEOUT_S, TIMEOUT_REASON, DecodeDeadline
from vidssl.data.index.core import Failure
from vidssl.errors import ConfigError, DecoderStuckError, MissingDependencyError, VideoDecodeError

# 2: frames are numbered by the frame-exactness contract (docs/decoding.md): the best video
# stream for every backend, AVI with B-frames counted by decoding, rotation applied to the size,
# decord's refusals (10-bit, AV1, a best stream it cannot read); plus each file's seek_token
# (seeking verified by one whole decode). Version-1 answers are not reused.
SCHEMA_VERSION = 2
_TABLE = f"probes_v{SCHEMA_VERSION}"
CACHE_FILENAME = "metadata.sqlite"
# Probe with a pool only when there is enough work to repay starting it.
POOL_MIN_FILES = 32
# Show a progress bar (when ``progress=None``) from this many files to probe, on a terminal.
PROGRESS_MIN_FILES = 200
# Failures that depend on something other than the file's bytes are not cached.
_UNCACHED_REASONS = ("permission denied",)
_LOOKUP_CHUNK = 900  # below SQLite's oldest limit on bound variables (999)
_COMMIT_EVERY = 256

CacheArg = Union["MetadataCache", str, os.PathLike, bool, None]


def default_cache_path() -> str:
    """``$VIDSSL_CACHE_DIR/metadata.sqlite``, else ``~/.cache/vidssl/metadata.sqlite``."""
    return os.path.join(cache_root(), CACHE_FILENAME)


def cache_root() -> str:
    """``$VIDSSL_CACHE_DIR``, else ``~/.cache/vidssl``: where every vidssl cache lives."""
    return os.environ.get("VIDSSL_CACHE_DIR") or os.path.join(
        os.path.expanduser("~"), ".cache", "vidssl")


@dataclass(frozen=True)
class FileKey:
    """What a cached answer is valid for: the file's absolute path, size and mtime (ns)."""

    path: str
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, path: str, st: os.stat_result) -> "FileKey":
        return cls(path, int(st.st_size), int(st.st_mtime_ns))


class MetadataCache:
    """SQLite store of probe results: ``(path, backend) -> (size, mtime_ns, metadata | reason)``.

    One row per path and backend; a row only answers for the size and ``mtime_ns`` it was
    stored with, so a changed file misses and is probed again (its row is then replaced).

    Args:
        path: the SQLite file (created with its directory), or a directory to hold
            ``metadata.sqlite``; default :func:`default_cache_path`.

    Use as a context manager or call :meth:`close`. Safe to use from several processes at once
    (WAL mode, 60 s busy timeout); each process/thread must use its own ``MetadataCache``.
    """

    def __init__(self, path: str | os.PathLike | None = None):
        path = os.fspath(path) if path is not None else default_cache_path()
        if os.path.isdir(path):
            path = os.path.join(path, CACHE_FILENAME)
        self.path = os.path.abspath(os.path.expanduser(path))
        self._conn: sqlite3.Connection | None = None
        self._pid = -1
        self.disabled_reason: str | None = None
        self._lock = threading.Lock()

    # -- connection ---------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection | None:
        if self.disabled_reason is not None:
            return None
        if self._conn is not None and self._pid == os.getpid():
            return self._conn
        conn = None
        try:
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=60.0, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            # The schema version is in the table name: no migration, no DROP racing another
            # process; an older vidssl's table is simply left alone.
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {_TABLE} (path TEXT NOT NULL, backend TEXT NOT NULL,"
                " size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,"
                " num_frames INTEGER, fps REAL, width INTEGER, height INTEGER,"
                " error TEXT, seek_token INTEGER, PRIMARY KEY (path, backend)) WITHOUT ROWID")
            conn.commit()
        except (sqlite3.Error, OSError) as err:
            if conn is not None:
                conn.close()
            self.disabled_reason = f"{type(err).__name__}: {err}"
            warnings.warn(f"vidssl metadata cache {self.path} is unusable "
                          f"({self.disabled_reason}); building without it", stacklevel=3)
            return None
        self._conn, self._pid = conn, os.getpid()
        return conn

    def close(self) -> None:
        if self._conn is not None and self._pid == os.getpid():
            self._conn.close()
        self._conn = None

    def __enter__(self) -> "MetadataCache":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getstate__(self) -> dict:  # picklable: the connection is reopened where it is used
        return {"path": self.path}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["path"])

    def __repr__(self) -> str:
        return f"MetadataCache({self.path!r})"

    # -- queries ------------------------------------------------------------------------------

    def get_many(self, keys: Sequence[FileKey], backend: str) -> dict[str, VideoMeta | str]:
        """Cached answers for ``keys``: path -> ``VideoMeta``, or the failure reason (``str``).

        Paths whose row is absent or was stored for another size/mtime are left out.
        """
        conn = self._connect()
        if conn is None or not keys:
            return {}
        wanted = {k.path: k for k in keys}
        paths = list(wanted)
        found: dict[str, VideoMeta | str] = {}
        try:
            with self._lock:
                for start in range(0, len(paths), _LOOKUP_CHUNK):
                    chunk = paths[start:start + _LOOKUP_CHUNK]
                    marks = ",".join("?" * len(chunk))
                    rows = conn.execute(
                        "SELECT path, size, mtime_ns, num_frames, fps, width, height, error, "
                        "seek_token "
                        f"FROM {_TABLE} WHERE backend = ? AND path IN ({marks})",
                        [backend, *chunk]).fetchall()
                    for path, size, mtime_ns, nf, fps, w, h, error, token in rows:
                        key = wanted[path]
                        if key.size != size or key.mtime_ns != mtime_ns:
                            continue
                        found[path] = error if error is not None else VideoMeta(
                            nf, fps, w, h, int(token or 0))
        except sqlite3.Error as err:
            self._disable(err)
            return {}
        return found

    def put_many(self, entries: Iterable[tuple[FileKey, VideoMeta | str]], backend: str) -> None:
        """Store probe results (a ``VideoMeta`` or a failure reason) in one transaction."""
        rows = []
        for key, value in entries:
            if isinstance(value, str):
                if any(r in value.lower() for r in _UNCACHED_REASONS):
                    continue
                rows.append((key.path, backend, key.size, key.mtime_ns,
                             None, None, None, None, value, None))
            else:
                rows.append((key.path, backend, key.size, key.mtime_ns, int(value.num_frames),
                             float(value.fps), int(value.width), int(value.height), None,
                             int(value.seek_token)))
        conn = self._connect()
        if conn is None or not rows:
            return
        try:
            with self._lock, conn:
                conn.executemany(
                    f"INSERT OR REPLACE INTO {_TABLE} VALUES (?,?,?,?,?,?,?,?,?,?)", rows)
        except sqlite3.Error as err:
            self._disable(err)

    def __len__(self) -> int:
        conn = self._connect()
        return 0 if conn is None else conn.execute(f"SELECT COUNT(*) FROM {_TABLE}").fetchone()[0]

    def clear(self) -> None:
        """Forget every stored answer."""
        conn = self._connect()
        if conn is not None:
            with self._lock, conn:
                conn.execute(f"DELETE FROM {_TABLE}")

    def _disable(self, err: BaseException) -> None:
        self.disabled_reason = f"{type(err).__name__}: {err}"
        warnings.warn(f"vidssl metadata cache {self.path} failed ({self.disabled_reason}); "
                      "continuing without it", stacklevel=3)
        self.close()


def open_cache(cache: CacheArg) -> tuple[MetadataCache | None, bool]:
    """Resolve a ``cache=`` argument: ``(cache or None, whether the caller must close it)``.

    ``None``/``True`` -> the default cache; a path -> a cache there; a ``MetadataCache`` -> it;
    ``False`` -> no cache.
    """
    if cache is False:
        return None, False
    if cache is None or cache is True:
        return MetadataCache(), True
    if isinstance(cache, MetadataCache):
        return cache, False
    if isinstance(cache, (str, os.PathLike)):
        return MetadataCache(cache), True
    raise ConfigError(f"cache must be a path, a MetadataCache, True or False, not {cache!r}")


@dataclass
class ProbeResult:
    """Metadata for a list of paths, aligned with it.

    Attributes:
        metas: one ``VideoMeta`` per input path, ``None`` where it is missing or failed.
        missing: paths that do not exist.
        failed: paths that exist but could not be probed, with the reason.
        cached, probed: how many answers came from the cache / from opening the file.
    """

    metas: list[VideoMeta | None]
    missing: list[str] = field(default_factory=list)
    failed: list[Failure] = field(default_factory=list)
    cached: int = 0
    probed: int = 0


_probe_deadlines = threading.local()  # one per pool thread, so probes still run in parallel


def _probe_task(path: str, backend: str) -> VideoMeta | str:
    """Probe one file: its ``VideoMeta`` or a one-line failure reason (runs in pool workers).
    A file whose probe hangs is abandoned after ``DEFAULT_DECODE_TIMEOUT_S`` (see deadline.py)."""
    deadline = getattr(_probe_deadlines, "deadline", None)
    if deadline is None:
        deadline = _probe_deadlines.deadline = DecodeDeadline(DEFAULT_DECODE_TIMEOUT_S)
    try:
        return deadline.run(path, probe_video, path, backend)
    except VideoDecodeError as err:
        return err.reason
    except (MissingDependencyError, DecoderStuckError):  # not about this file: stop the build
        raise
    except Exception as err:  # noqa: BLE001 - a bad file must never stop the build
        return one_line(err)


def default_workers() -> int:
    """``min(4, usable CPUs)``."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    return max(1, min(4, cpus))


def check_backend(backend: str) -> None:
    DECODERS.key(backend)  # the registry's one-line ConfigError for an unknown name


def probe_files(
    paths: Sequence[str],
    backend: str = DEFAULT_BACKEND,
    cache: CacheArg = None,
    workers: int | None = None,
    pool: str = "thread",
    progress: bool | None = None,
) -> ProbeResult:
    """Metadata of ``paths``, from the cache where it is still valid, else by probing.

    Args:
        paths: video files (made absolute; the order of the result follows this list).
        backend: decoder used to probe (part of the cache key).
        cache: a ``MetadataCache``, a path for one, ``None`` for the default, ``False`` for none.
        workers: probing threads/processes; default ``min(4, CPUs)``. A pool is only started
            when more than ``POOL_MIN_FILES`` files need probing.
        pool: ``"thread"`` (default; the decoders release the GIL while opening files) or
            ``"process"`` (spawned processes; for backends that do not).
        progress: show a rich progress bar; default: when at least ``PROGRESS_MIN_FILES``
            files need probing and stderr is a terminal.

    Missing files and files that fail to probe are reported in the result, never raised.

    Raises:
        ConfigError: unknown backend, bad ``workers``/``pool``.
        MissingDependencyError: the backend's package is not installed (and a file needs it).
    """
    check_backend(backend)
    if pool not in ("thread", "process"):
        raise ConfigError(f"pool must be 'thread' or 'process', not {pool!r}")
    if workers is not None and (not isinstance(workers, int) or workers < 1):
        raise ConfigError(f"workers must be a positive integer, not {workers!r}")
    paths = [os.path.abspath(os.fspath(p)) for p in paths]
    result = ProbeResult(metas=[None] * len(paths))
    keys: dict[int, FileKey] = {}
    for i, path in enumerate(paths):
        try:
            st = os.stat(path)
        except FileNotFoundError:
            result.missing.append(path)
            continue
        except OSError as err:
            result.failed.append(Failure(path, f"cannot stat: {err.strerror or err}"))
            continue
        keys[i] = FileKey.of(path, st)

    store, owned = open_cache(cache)
    try:
        known = store.get_many(list(keys.values()), backend) if store is not None else {}
        todo: list[int] = []
        answers: dict[int, VideoMeta | str] = {}
        for i, key in keys.items():
            if key.path in known:
                answers[i] = known[key.path]
                result.cached += 1
            else:
                todo.append(i)
        if todo:
            decoder_class(backend).check_available()  # MissingDependencyError, once, up front
            for i, value in _run_probes([paths[i] for i in todo], todo, backend, store, keys,
                                        workers, pool, progress):
                answers[i] = value
            result.probed = len(todo)
    finally:
        if owned and store is not None:
            store.close()

    for i in sorted(answers):
        value = answers[i]
        if isinstance(value, str):
            result.failed.append(Failure(paths[i], value))
        else:
            result.metas[i] = value
    return result


def _run_probes(paths: list[str], ids: list[int], backend: str, store: MetadataCache | None,
                keys: dict[int, FileKey], workers: int | None, pool: str,
                progress: bool | None) -> Iterable[tuple[int, VideoMeta | str]]:
    """Probe ``paths`` (serially or in a pool), storing answers in ``store`` as they arrive."""
    n = len(paths)
    workers = default_workers() if workers is None else workers
    if n <= POOL_MIN_FILES:
        workers = 1
    show = progress if progress is not None else (
        n >= PROGRESS_MIN_FILES and sys.stderr.isatty())
    bar = None
    if show:
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                   TimeRemainingColumn)

        bar = Progress(TextColumn("probing videos"), BarColumn(), MofNCompleteColumn(),
                       TimeRemainingColumn(), transient=True)
        task = bar.add_task("probe", total=n)
        bar.start()
    pending: list[tuple[FileKey, VideoMeta | str]] = []
    try:
        if workers == 1:
            stream = (_probe_task(p, backend) for p in paths)
            executor = None
        elif pool == "thread":
            executor = ThreadPoolExecutor(workers, thread_name_prefix="vidssl-probe")
            stream = executor.map(_probe_task, paths, [backend] * n)
        else:
            import multiprocessing

            executor = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
            stream = executor.map(_probe_task, paths, [backend] * n, chunksize=16)
        try:
            for i, value in zip(ids, stream):
                if not (isinstance(value, str) and value.startswith(TIMEOUT_REASON)):
                    pending.append((keys[i], value))  # a hang may be transient: not cached
                if len(pending) >= _COMMIT_EVERY and store is not None:
                    store.put_many(pending, backend)
                    pending = []
                if bar is not None:
                    bar.advance(task)
                yield i, value
        finally:
            if executor is not None:
                executor.shutdown(wait=True, cancel_futures=True)
    finally:
        if store is not None and pending:
            store.put_many(pending, backend)  # keep what was probed even if interrupted
        if bar is not None:
            bar.stop()
