"""A throwaway PostgreSQL server for the tests, run from the installed server binaries.

initdb into a temporary folder, a server on a unix socket in that folder and on a free
127.0.0.1 port (password authentication over TCP, trust over the socket), a database per
test, and the server stopped and its folder removed at the end. PostgreSQL refuses to run
as root, so under root the server runs as the ``postgres`` system user (Debian's package
makes it), else as ``nobody``, and its folder belongs to that user.

pytest-postgresql does the same for an ordinary user, but it runs ``pg_ctl`` as the
current user with no way to name another, so it cannot start a server as root, which
is how CI runs.
"""
from __future__ import annotations

import glob
import os
import pwd
import secrets
import shlex
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

SUPERUSER = "relsync"
SERVER_PROGRAMS = ("initdb", "pg_ctl", "postgres")
INSTALL_HINT = ("install the PostgreSQL server (Debian/Ubuntu: `apt-get install postgresql`; .ci/run does this as root), "
                "or put its bin folder (with initdb, pg_ctl and postgres) on PATH")


class NoPostgresServer(RuntimeError):
    """The PostgreSQL server binaries are not installed, or the server would not start."""


def _has_server(folder: Path) -> bool:
    return all((folder / program).is_file() for program in SERVER_PROGRAMS)


def find_bindir() -> Path:
    """The folder holding initdb, pg_ctl and postgres: from PATH, else ``pg_config --bindir``, else /usr/lib/postgresql/*/bin."""
    found = shutil.which("initdb")
    if found and _has_server(Path(found).resolve().parent):
        return Path(found).resolve().parent
    pg_config = shutil.which("pg_config")
    if pg_config:
        done = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        if done.returncode == 0 and _has_server(Path(done.stdout.strip())):
            return Path(done.stdout.strip())
    # Debian installs each major version side by side; the newest one wins.
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda path: int(Path(path).parent.name)
                      if Path(path).parent.name.isdigit() else 0)
    for folder in reversed(versions):
        if _has_server(Path(folder)):
            return Path(folder)
    raise NoPostgresServer(f"no PostgreSQL server binaries found (looked on PATH, in `pg_config --bindir` and in "
                           f"/usr/lib/postgresql/*/bin): {INSTALL_HINT}")


def _server_account() -> str | None:
    """The unprivileged account to run the server as when we are root (None: run it as ourselves)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return name
    raise NoPostgresServer("running as root, and neither a `postgres` nor a `nobody` account exists to run the server as")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class PostgresServer:
    """A running server: the superuser ``user`` logs in with ``password`` over TCP on ``port``."""

    folder: Path
    bindir: Path
    account: str | None
    port: int = 0
    user: str = SUPERUSER
    password: str = field(default_factory=lambda: secrets.token_urlsafe(18))
    databases: int = 0
    durable: bool = False
    """Commits wait for the disk, as a production server's do (benchmarks); tests skip that for speed."""

    @property
    def socket_dir(self) -> Path:
        return self.folder

    @property
    def data(self) -> Path:
        return self.folder / "data"

    def _run(self, program: str, *args: str) -> None:
        command = [str(self.bindir / program), *args]
        if self.account is not None:
            command = ["runuser", "-u", self.account, "--", *command]
        done = subprocess.run(command, cwd=self.folder, capture_output=True, text=True, timeout=120, check=False)
        if done.returncode != 0:
            log = self.folder / "server.log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise NoPostgresServer(f"{program} {' '.join(args[:1])} failed ({done.returncode}): "
                                   f"{done.stderr.strip() or done.stdout.strip()}\n{tail}")

    def start(self) -> None:
        """initdb, then start the server and wait until it accepts connections."""
        if self.account is not None:
            shutil.chown(self.folder, self.account)
        pwfile = self.folder / "pwfile"
        pwfile.write_text(self.password + "\n")
        if self.account is not None:
            shutil.chown(pwfile, self.account)
        self._run("initdb", "-D", str(self.data), "-U", self.user, f"--pwfile={pwfile}", "-E", "UTF8", "--locale=C",
                  "--auth-local=trust", "--auth-host=scram-sha-256", "--no-sync")
        pwfile.unlink()
        self.port = _free_port()
        options = ["-c", "listen_addresses=127.0.0.1", "-c", f"port={self.port}",
                   "-c", f"unix_socket_directories={self.socket_dir}"]
        if not self.durable:
            options += ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]
        self._run("pg_ctl", "start", "-D", str(self.data), "-l", str(self.folder / "server.log"), "-w", "-t", "60",
                  "-o", shlex.join(options))

    def stop(self) -> None:
        """Stop the server (fast shutdown) and remove its folder."""
        try:
            if (self.data / "postmaster.pid").exists():
                self._run("pg_ctl", "stop", "-D", str(self.data), "-m", "fast", "-w", "-t", "60")
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)

    def admin(self) -> psycopg.Connection[tuple[object, ...]]:
        """A superuser connection over the unix socket (trusted), autocommit, to the maintenance database."""
        return psycopg.connect(host=str(self.socket_dir), port=self.port, user=self.user, dbname="postgres",
                               autocommit=True)

    def create_database(self) -> str:
        """A new empty database; its ``postgresql://`` URL over TCP, without the password."""
        self.databases += 1
        name = f"relsync_test_{self.databases}"
        with self.admin() as connection:
            connection.execute(f'create database "{name}"')
        return self.url(name)

    def url(self, database: str) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"


def start_server(*, durable: bool = False) -> PostgresServer:
    """Start a new server in a fresh temporary folder (NoPostgresServer says why it could not).

    ``durable``: the server's defaults for fsync and commits (a benchmark's); else they are off (tests).
    """
    bindir = find_bindir()
    account = _server_account()
    # In /tmp, not under pytest's tmp_path or $TMPDIR: those can be private to root, where the server's account
    # must reach its own folder, and the socket's path must stay under the 107 bytes a unix socket's name allows.
    folder = tempfile.mkdtemp(prefix="relsync-pg-", dir="/tmp" if Path("/tmp").is_dir() else None)
    server = PostgresServer(Path(folder), bindir, account, durable=durable)
    try:
        server.start()
    except BaseException:
        server.stop()
        raise
    return server
