"""How the embedded sandbox compiles and runs each Sandbox-Fusion language it supports."""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Toolchain:
    source_name: str
    compile_argv: tuple[str, ...] | None  # None: interpreted
    run_argv: tuple[str, ...]


def system_python() -> str:
    """The interpreter for user code: the system one, never this project's virtual environment.

    A venv's interpreter often lives under a directory the unprivileged sandbox user
    cannot read (``/root/.pyenv``), and its site-packages are not the user's business.
    """
    for candidate in ("/usr/bin/python3", "/usr/local/bin/python3", "/bin/python3"):
        if os.access(candidate, os.X_OK):
            return candidate
    raise FileNotFoundError("no system python3 in /usr/bin, /usr/local/bin or /bin; pass python=PATH to the sandbox")


#: a JVM reserves gigabytes of address space by default; these make it start under RLIMIT_AS = 1 GiB
#: and within the process cap (one compiler thread, serial GC)
JVM_FLAGS = (
    "-Xmx256m",
    "-XX:CompressedClassSpaceSize=64m",
    "-XX:ReservedCodeCacheSize=64m",
    "-XX:+UseSerialGC",
    "-XX:TieredStopAtLevel=1",
    "-XX:CICompilerCount=1",
)
_JAVA_PUBLIC_CLASS = re.compile(r"^\s*public\s+(?:final\s+|abstract\s+)*class\s+([A-Za-z_$][\w$]*)", re.MULTILINE)


def for_code(language: str, toolchain: Toolchain, code: str) -> Toolchain:
    """Java must live in a file named after its public class (as Sandbox-Fusion does)."""
    if language != "java":
        return toolchain
    match = _JAVA_PUBLIC_CLASS.search(code)
    name = match.group(1) if match else "Main"
    rename = lambda argv: tuple({"Main.java": f"{name}.java", "Main": name}.get(a, a) for a in argv)  # noqa: E731
    return replace(
        toolchain,
        source_name=f"{name}.java",
        compile_argv=rename(toolchain.compile_argv),
        run_argv=rename(toolchain.run_argv),
    )


def toolchains(python: str | None = None) -> dict[str, Toolchain]:
    """Sandbox-Fusion language name -> toolchain, for the languages whose tools are installed."""
    found: dict[str, Toolchain] = {
        # -E -s: ignore PYTHON* variables and the user site; -B: no .pyc litter
        "python": Toolchain("main.py", None, (python or system_python(), "-E", "-s", "-B", "main.py")),
        "bash": Toolchain("main.sh", None, (shutil.which("bash") or "/bin/bash", "main.sh")),
    }
    node = shutil.which("node")
    if node:
        found["nodejs"] = Toolchain("main.js", None, (node, "main.js"))
    javac, java = shutil.which("javac"), shutil.which("java")
    if javac and java:
        found["java"] = Toolchain(
            # -ea: assertions on, as Sandbox-Fusion runs Java (test harnesses are written with `assert`)
            "Main.java",
            (javac, *(f"-J{flag}" for flag in JVM_FLAGS), "Main.java"),
            (java, "-ea", *JVM_FLAGS, "Main"),
        )
    gxx = shutil.which("g++")
    if gxx:
        # the flags Sandbox-Fusion uses (-std=c++17), plus -O2 as judges do
        found["cpp"] = Toolchain("main.cpp", (gxx, "-std=c++17", "-O2", "-o", "main", "main.cpp"), ("./main",))
    return found
