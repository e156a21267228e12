# build.sh — the Makefile's own logic that a clean machine meets once: `make test` installs the
# packages (deps) and then checks their headers (depcheck) in one invocation, so the check must
# look when its recipe runs, not when make reads the Makefile (it did: a fresh machine's first
# `make test` stopped with "missing: run `make deps`" right after deps had installed them).
# Runs make on stand-ins: a header path under $TMP, a deps recipe that creates it, and a
# private BUILD, so the real build's stamps are not touched.
. tests/shell/testlib

command -v make >/dev/null || { skip make_present "no make here"; finish; exit; }
header="$TMP/header.h"
printf 'deps:\n\t@touch %s\n' "$header" > "$TMP/deps.mk"
# (a make of its own: not the jobserver of a `make -j2 test` this runs under)
mk() { env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -s --no-print-directory -f Makefile -f "$TMP/deps.mk" BUILD="$TMP/build" DEP_HEADERS="$header" "$@" 2>&1 | grep -v 'recipe for target'; }

out=$(mk depcheck)
check_contains depcheck_names_missing "$out" "$header missing: run \`make deps\` first"
out=$(mk deps depcheck)
check_eq depcheck_after_deps_same_make "" "$out"
out=$(mk depcheck)
check_eq depcheck_header_present "" "$out"
# goals that compile nothing leave the build's configuration as it is: after `make CUDA=0`, a
# `make help` or `make deps` (nvcc found again) made the next `make CUDA=0` rebuild everything
mk CUDA=0 depcheck >/dev/null
cp "$TMP/build/build-config" "$TMP/config-cuda0"
mk help >/dev/null
mk deps >/dev/null
check_eq config_kept_by_help_deps same "$(cmp -s "$TMP/build/build-config" "$TMP/config-cuda0" && echo same || echo changed)"

finish
