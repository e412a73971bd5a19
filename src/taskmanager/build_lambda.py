"""Build the Lambda code zip: ``python -m taskmanager.build_lambda --arch x86_64``.

The zip holds only what the Lambda runtime and the public Powertools layer lack: the
``taskmanager`` package, pydantic, pydantic-core, pydantic-settings and msgspec (with their
own small dependencies), PyJWT and cryptography (for the push WebSocket's JWT authorizer, the
one function that imports them; every function of the module runs the same zip) as wheels
for the target platform and Python version, and any ``--include``d processor modules. The
runtime ships boto3; Powertools comes from its public layer (the Terraform variable
``powertools_layer_arn``). Nothing from the ``dev`` extra goes in.

Lambda's code folder is read-only, so Python cannot cache what it compiles there: without
``.pyc`` files every cold start compiles every imported module again. So the zip carries
``__pycache__/*.cpython-3XX.pyc`` compiled by an interpreter of exactly the runtime's version
(``--python``, or found on PATH / in pyenv). The ``.pyc`` files use unchecked hash-based
invalidation (PEP 552): no timestamps, and Python loads them without re-reading the source.

pydantic-core is a compiled extension for one Python version and one architecture, so a
function of another runtime or architecture fails at its first import. The zip says what it
was built for twice: its name ends with ``-<runtime>-<architecture>.zip`` (the Terraform
modules compare it with ``lambda_package.runtime`` and ``.architecture`` at plan), and
``taskmanager-build.json`` inside records the runtime, architecture, platform and pinned
versions.

The zip is deterministic: the same inputs give a byte-identical file (sorted entries, fixed
timestamps and permissions, hash-based ``.pyc``, pinned dependency versions taken from the
building environment, so the zip runs the versions the tests ran).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Final

#: Runtimes the build supports: each needs an interpreter of that version to compile .pyc.
RUNTIMES: Final = ("python3.11", "python3.12", "python3.13")
ARCHITECTURES: Final = {"x86_64": "manylinux2014_x86_64", "arm64": "manylinux2014_aarch64"}
#: Distributions shipped in the zip (their dependencies are added from their metadata).
#: cryptography is named itself: PyJWT requires it only through its ``crypto`` extra.
BUNDLED_ROOTS: Final = ("pydantic", "pydantic-settings", "msgspec", "PyJWT", "cryptography")
#: Never shipped: provided by the runtime (boto3) or by the Powertools layer.
PROVIDED: Final = frozenset(
    {"boto3", "botocore", "s3transfer", "jmespath", "urllib3", "aws-lambda-powertools"}
)
#: At the top of the zip: what it was built for (runtime, architecture) and from (versions).
MANIFEST: Final = "taskmanager-build.json"
_EPOCH: Final = (1980, 1, 1, 0, 0, 0)
_SKIP_DIRS: Final = frozenset({"__pycache__", "bin"})


class BuildError(Exception):
    """The zip cannot be built as asked (no matching interpreter, pip failed, ...)."""


@dataclass(frozen=True)
class BuildResult:
    path: Path
    size: int
    pinned: tuple[str, ...]
    compiled_with: str | None


def zip_suffix(runtime: str, arch: str) -> str:
    """How the zip's name ends: the runtime and architecture its compiled parts are for."""
    return f"-{runtime}-{arch}.zip"


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pinned_requirements() -> tuple[str, ...]:
    """``name==version`` for the bundled distributions and their dependencies, as installed
    here (extras ignored), sorted."""
    seen: dict[str, str] = {}
    todo = list(BUNDLED_ROOTS)
    while todo:
        name = _canonical(todo.pop())
        if name in seen or name in PROVIDED:
            continue
        try:
            seen[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue  # a dependency for other Python versions only
        for requirement in importlib.metadata.requires(name) or []:
            if "extra ==" in requirement:
                continue
            match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement)
            if match:
                todo.append(match.group(0))
    return tuple(f"{name}=={version}" for name, version in sorted(seen.items()))


def _version_of(python: str) -> str | None:
    try:
        done = subprocess.run(
            [python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except OSError:
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def find_interpreter(runtime: str) -> str | None:
    """An interpreter of the runtime's Python version: this one, PATH, or pyenv's versions."""
    wanted = runtime.removeprefix("python")
    if f"{sys.version_info[0]}.{sys.version_info[1]}" == wanted:
        return sys.executable
    candidates: list[str] = []
    on_path = shutil.which(runtime)
    if on_path:
        candidates.append(on_path)
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    candidates += sorted(str(p) for p in pyenv_root.glob(f"versions/{wanted}.*/bin/{runtime}"))
    candidates += [f"/usr/bin/{runtime}", f"/usr/local/bin/{runtime}"]
    for candidate in candidates:
        if Path(candidate).exists() and _version_of(candidate) == wanted:
            return candidate
    return None


def _install_wheels(target: Path, requirements: tuple[str, ...], runtime: str, arch: str) -> None:
    command = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-deps",  # the closure is pinned explicitly
        "--no-compile",  # .pyc are compiled below, by the runtime's Python version
        "--only-binary=:all:",
        "--implementation",
        "cp",
        "--python-version",
        runtime.removeprefix("python"),
        "--platform",
        ARCHITECTURES[arch],
        "--target",
        str(target),
        *requirements,
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise BuildError(f"pip could not fetch the wheels:\n{done.stderr.strip()}")


def _copy_tree(source: Path, destination: Path) -> None:
    shutil.copytree(
        source,
        destination,
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo"),
        dirs_exist_ok=True,
    )


def _compile(python: str, root: Path) -> None:
    """Compile every .py under ``root`` with ``python``; file names as Lambda sees them."""
    done = subprocess.run(
        [
            python,
            "-m",
            "compileall",
            "-q",
            "--invalidation-mode",
            "unchecked-hash",
            "-s",
            str(root),
            "-p",
            "/var/task",
            str(root),
        ],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONHASHSEED": "0", "SOURCE_DATE_EPOCH": "315532800"},
    )
    if done.returncode != 0:
        raise BuildError(f"compileall failed:\n{done.stdout}{done.stderr}")


def _files(root: Path) -> list[Path]:
    found: list[Path] = []
    for directory, dirnames, filenames in os.walk(root):
        relative = Path(directory).relative_to(root)
        if relative == Path() and "bin" in dirnames:
            dirnames.remove("bin")  # console scripts of the wheels: not importable, not needed
        found += [Path(directory, f) for f in filenames]
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def _write_manifest(
    root: Path, *, runtime: str, arch: str, requirements: tuple[str, ...], pyc: bool
) -> None:
    manifest = {
        "runtime": runtime,
        "architecture": arch,
        "platform": ARCHITECTURES[arch],
        "requirements": list(requirements),
        "pyc": pyc,
    }
    (root / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")


def write_zip(root: Path, output: Path) -> None:
    """A zip of ``root`` that depends only on the files' names and contents."""
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_suffix(".zip.partial")
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for path in _files(root):
            info = zipfile.ZipInfo(path.relative_to(root).as_posix(), date_time=_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3  # unix, so the permissions below are honoured
            info.external_attr = (0o100644 & 0xFFFF) << 16
            archive.writestr(info, path.read_bytes(), compresslevel=9)
    partial.replace(output)


def build(
    *,
    arch: str,
    runtime: str = "python3.12",
    output: Path | None = None,
    includes: tuple[Path, ...] = (),
    python: str | None = None,
    compile_pyc: bool = True,
) -> BuildResult:
    """Build the zip; see the module docstring."""
    if arch not in ARCHITECTURES:
        raise BuildError(f"unknown architecture {arch!r}; use one of {sorted(ARCHITECTURES)}")
    if runtime not in RUNTIMES:
        raise BuildError(f"unsupported runtime {runtime!r}; use one of {list(RUNTIMES)}")
    suffix = zip_suffix(runtime, arch)
    output = output or Path("dist", "lambda", f"taskmanager{suffix}")
    if not output.name.endswith(suffix):
        raise BuildError(
            f"output {output}: the name must end with {suffix}, the runtime and architecture "
            "the zip is built for; the Terraform modules compare it with lambda_package"
        )
    interpreter: str | None = None
    if compile_pyc:
        interpreter = python or find_interpreter(runtime)
        if interpreter is None or _version_of(interpreter) != runtime.removeprefix("python"):
            raise BuildError(
                f"no {runtime} interpreter found to compile .pyc files for the {runtime} "
                "runtime; pass --python PATH, or --no-compile to ship sources only "
                "(every cold start then compiles what it imports)"
            )
    for include in includes:
        if not include.exists():
            raise BuildError(f"--include {include}: no such file or directory")
    requirements = pinned_requirements()
    package = Path(__file__).resolve().parent
    with tempfile.TemporaryDirectory(prefix="taskmanager-lambda-") as scratch:
        root = Path(scratch, "root")
        root.mkdir()
        _install_wheels(root, requirements, runtime, arch)
        _copy_tree(package, root / "taskmanager")
        for include in includes:
            if include.is_dir():
                _copy_tree(include, root / include.name)
            else:
                shutil.copyfile(include, root / include.name)
        if interpreter is not None:
            _compile(interpreter, root)
        _write_manifest(
            root,
            runtime=runtime,
            arch=arch,
            requirements=requirements,
            pyc=interpreter is not None,
        )
        write_zip(root, output)
    return BuildResult(output, output.stat().st_size, requirements, interpreter)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m taskmanager.build_lambda",
        description="Build the deterministic Lambda code zip (taskmanager, pydantic, PyJWT).",
    )
    parser.add_argument("--arch", required=True, choices=sorted(ARCHITECTURES))
    parser.add_argument("--runtime", default="python3.12", choices=RUNTIMES)
    parser.add_argument(
        "--output",
        type=Path,
        help="zip path ending in -<runtime>-<arch>.zip "
        "(default dist/lambda/taskmanager-<runtime>-<arch>.zip)",
    )
    parser.add_argument(
        "--include",
        type=Path,
        action="append",
        default=[],
        help="a processor module or package to add at the zip's top level (repeatable)",
    )
    parser.add_argument("--python", help="interpreter of the runtime's version for .pyc")
    parser.add_argument(
        "--no-compile", action="store_true", help="ship no .pyc (slower cold starts)"
    )
    args = parser.parse_args(argv)
    try:
        result = build(
            arch=args.arch,
            runtime=args.runtime,
            output=args.output,
            includes=tuple(args.include),
            python=args.python,
            compile_pyc=not args.no_compile,
        )
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{result.path} {result.size} bytes")
    if result.compiled_with is None:
        print("warning: no .pyc in the zip", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
