#!/usr/bin/env bash
# Builds dist/qahub, the one-file executable, from this checkout with the project's virtualenv
# (`make binary` creates it and installs the pinned PyInstaller first; it then calls this).
#
#   packaging/build.sh            build dist/qahub, print its size and the build time
#   PYTHON=... packaging/build.sh use another interpreter that has PyInstaller and the project
#
# The executable runs on Linux machines with the same or a newer glibc than the build
# machine's (PyInstaller bundles Python and every shared library but glibc): build on the
# oldest distribution you deploy to.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-.venv/bin/python}
if ! "$PYTHON" -c 'import PyInstaller' 2>/dev/null; then
  echo "build.sh: PyInstaller is not installed for $PYTHON (run: make binary)" >&2
  exit 2
fi
# PyInstaller reads the shared libraries it bundles with objdump and strips them with strip,
# both from binutils, which minimal images leave out (.ci/run installs it there).
for tool in objdump strip; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "build.sh: PyInstaller needs '$tool': install binutils (apt-get install binutils)" >&2
    exit 2
  fi
done

started=$(date +%s.%N)
# --clean: no state from an earlier build (a module removed from the package must not linger).
"$PYTHON" -m PyInstaller --noconfirm --clean --log-level WARN \
  --distpath dist --workpath build/pyinstaller packaging/qahub.spec
finished=$(date +%s.%N)

# The executable must at least start and know its version before anyone calls it built.
version=$(dist/qahub --version)
seconds=$("$PYTHON" -c "print(f'{$finished - $started:.1f}')")
megabytes=$("$PYTHON" -c "import os; print(f'{os.path.getsize(\"dist/qahub\") / 1e6:.1f}')")
echo "built dist/qahub ($version): ${megabytes} MB in ${seconds} s"
