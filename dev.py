#!/usr/bin/env python3
"""Developer entry point, standard library only, so a fresh machine needs nothing but Python 3.11+.

    python3 dev.py serve    # create .venv, install, migrate, load the demo site, serve on 127.0.0.1:8000
    python3 dev.py test     # create .venv, install, run the whole suite (SQLite and PostgreSQL, browser tests)

Other commands: ``test --fast`` (skip slow browser/server tests), ``bench`` (benchmarks),
``train`` (re-train the plate recogniser), ``install`` (environment only).
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / "bin"
STAMP = VENV / ".parkinglot-installed"
CHROMIUM = "/usr/bin/chromium"
TEST_FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"  # the synthetic-plate tests measure DejaVu faces
TRAINING_FONTS = [
    "fonts-dejavu-core", "fonts-dejavu-extra", "fonts-liberation", "fonts-liberation2",
    "fonts-freefont-ttf", "fonts-urw-base35", "fonts-croscore", "fonts-roboto-unhinted",
    "fonts-open-sans", "fonts-b612", "fonts-league-spartan", "fonts-cantarell", "fonts-bebas-neue",
    "fonts-adf-universalis", "fonts-clear-sans", "fonts-cabin", "fonts-karla", "fonts-lato",
    "fonts-manrope", "fonts-oxygen", "fonts-opendin", "fonts-routed-gothic",
]


def log(msg: str) -> None:
    print(f"[dev] {msg}", flush=True)


def run(cmd: list[str], **kw) -> None:
    log(" ".join(cmd))
    subprocess.run(cmd, check=True, cwd=ROOT, **kw)


def _install_fingerprint() -> str:
    h = hashlib.sha256()
    for name in ("pyproject.toml", "constraints.txt"):
        h.update((ROOT / name).read_bytes())
    return h.hexdigest()


def ensure_env() -> None:
    """Create the virtualenv and install the project with its test extras (only when needed)."""
    if sys.version_info < (3, 11):
        sys.exit("parkinglot needs Python 3.11 or newer")
    if not (BIN / "python").exists():
        run([sys.executable, "-m", "venv", str(VENV)])
    want = _install_fingerprint()
    if STAMP.exists() and STAMP.read_text() == want:
        return
    run([str(BIN / "python"), "-m", "pip", "install", "--disable-pip-version-check", "-q",
         "-c", "constraints.txt", "-e", ".[test]"])
    STAMP.write_text(want)


def apt_install(packages: list[str]) -> bool:
    """Install Debian packages when we can (root or passwordless sudo); say so when we cannot."""
    if not shutil.which("apt-get"):
        log(f"apt-get not available; please install: {' '.join(packages)}")
        return False
    prefix: list[str] = [] if os.geteuid() == 0 else ["sudo", "-n"]
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    try:
        run(prefix + ["apt-get", "install", "-y", "-q", "--no-install-recommends", *packages], env=env)
        return True
    except (subprocess.CalledProcessError, FileNotFoundError):
        try:
            run(prefix + ["apt-get", "update", "-q"], env=env)
            run(prefix + ["apt-get", "install", "-y", "-q", "--no-install-recommends", *packages], env=env)
            return True
        except (subprocess.CalledProcessError, FileNotFoundError):
            log(f"could not install {' '.join(packages)}")
            return False


def ensure_chromium() -> None:
    """Browser tests drive Debian's chromium through Playwright (no browser download)."""
    if not Path(CHROMIUM).exists():
        apt_install(["chromium"])


def ensure_test_fonts() -> None:
    """The font tests measure Debian's DejaVu faces (fonts-dejavu-core): installed like chromium."""
    if not Path(TEST_FONT).exists():
        apt_install(["fonts-dejavu-core"])


def cmd_install(_args: list[str]) -> None:
    ensure_env()


def cmd_serve(args: list[str]) -> None:
    ensure_env()
    parkinglot = str(BIN / "parkinglot")
    run([parkinglot, "db", "upgrade"])
    run([parkinglot, "demo", "--if-empty"])
    log("serving on http://127.0.0.1:8000 (demo logins are printed above and in instance/DEMO.txt)")
    os.execv(parkinglot, [parkinglot, "serve", *args])


def cmd_test(args: list[str]) -> None:
    ensure_env()
    ensure_test_fonts()
    pytest_args = list(args)
    if "--fast" in pytest_args:
        pytest_args.remove("--fast")
        pytest_args = ["-m", "not slow", *pytest_args]
    else:
        ensure_chromium()
    os.execv(str(BIN / "python"), [str(BIN / "python"), "-m", "pytest", *pytest_args])


def cmd_bench(args: list[str]) -> None:
    ensure_env()
    os.execv(str(BIN / "python"), [str(BIN / "python"), str(ROOT / "benchmarks" / "run_all.py"), *args])


def cmd_train(args: list[str]) -> None:
    ensure_env()
    apt_install(TRAINING_FONTS)
    os.execv(str(BIN / "parkinglot"), [str(BIN / "parkinglot"), "train-recognizer", *args])


COMMANDS = {"install": cmd_install, "serve": cmd_serve, "test": cmd_test, "bench": cmd_bench, "train": cmd_train}


def main(argv: list[str]) -> None:
    if not argv or argv[0] not in COMMANDS:
        print(__doc__)
        sys.exit(2)
    COMMANDS[argv[0]](argv[1:])


if __name__ == "__main__":
    main(sys.argv[1:])
