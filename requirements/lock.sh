#!/usr/bin/env bash
# Regenerate gpu.lock and cpu.lock from the .in files (every transitive package pinned, with hashes).
# Needs uv (pip install uv); resolves for Linux x86-64, CPython 3.11, from PyPI only (no local wheel store).
# The CPU lock is constrained by the GPU lock: a package on both sides has the same version.
set -euo pipefail
cd "$(dirname "$0")"
common=(--python-version 3.11 --python-platform x86_64-manylinux_2_28 --generate-hashes
        --index-url https://pypi.org/simple --no-config --quiet)
uv pip compile "${common[@]}" gpu.in -o gpu.lock
uv pip compile "${common[@]}" cpu.in -c gpu.lock --override cpu-overrides.txt -o cpu.lock
