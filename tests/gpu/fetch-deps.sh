#!/bin/sh
# tests/gpu/fetch-deps.sh — run HERE (a Debian/Ubuntu machine with apt), before a device check:
# downloads the .deb files of the libraries lrsh builds against into .gpu-deps/ (git-ignored
# through .git/info/exclude), for the device machine, which has CUDA but cannot reach a package
# registry and may lack readline, OpenBLAS, LAPACKE, SentencePiece and cJSON. check.sh unpacks
# them into a private prefix there (never into /) when the system lacks the headers.
# Then pass carry: [".gpu-deps"] to the device tool's run.
set -eu
cd "$(dirname "$0")/../.."
PKGS="libreadline-dev libreadline8 libncurses-dev libsentencepiece-dev libsentencepiece0
      libopenblas-openmp-dev libopenblas0-openmp libopenblas-dev liblapacke-dev liblapacke libtmglib3
      libgfortran5 libquadmath0 libcjson-dev libcjson1"
grep -qx '/.gpu-deps/' .git/info/exclude 2>/dev/null || echo '/.gpu-deps/' >> .git/info/exclude
mkdir -p .gpu-deps
cd .gpu-deps
# shellcheck disable=SC2086
apt-get download $PKGS
du -sh .
