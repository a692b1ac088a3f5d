"""Compiles the C extensions when the project is built or installed (``pip install -e .``).

The trace pipeline's span encoder and the span store's SQLite access (its batch writer and
the grouping behind ``chatops stats``) are C (docs/development.md, "How the design reached
it"); each is one file with no dependency but Python's headers (the store's finds SQLite in
the running process), so they are compiled here with the C compiler Python was built with,
instead of through a second build system. A missing compiler fails the install in one line: without
them the bot cannot export spans at the speed its benchmark promises.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

SOURCES = [Path("telemetry") / "_span_codec.c", Path("telemetry") / "_store_sqlite.c"]


class CompileExtensions(BuildHookInterface):  # type: ignore[type-arg]
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        root = Path(self.root)
        for source in SOURCES:
            target = source.with_name(source.stem + sysconfig.get_config_var("EXT_SUFFIX"))
            compile_extension(root / source, root / target)
            if version != "editable":
                build_data["force_include"][str(root / target)] = str(target)
        build_data["pure_python"] = False
        build_data["infer_tag"] = True


def compile_extension(source: Path, target: Path) -> None:
    compiler = shlex.split(sysconfig.get_config_var("CC") or "cc")
    flags = ["-O2", "-DNDEBUG", "-fPIC", "-shared", "-Wall", "-I", sysconfig.get_paths()["include"]]
    libraries = ["-ldl"] if sys.platform.startswith("linux") else []  # dlopen before glibc 2.34
    if sys.platform == "darwin":
        flags += ["-undefined", "dynamic_lookup"]
    command = [*compiler, *flags, str(source), "-o", str(target), *libraries]
    try:
        subprocess.run(command, check=True, capture_output=True, text=True)
    except FileNotFoundError as exc:
        raise SystemExit(
            f"chatops-bot: no C compiler ({compiler[0]}) to build {source.name}: install gcc"
        ) from exc
    except subprocess.CalledProcessError as exc:
        raise SystemExit(f"chatops-bot: building {source.name} failed:\n{exc.stderr}") from exc
