#!/bin/bash
# The whole test suite, as CI runs it (.ci/run calls this):
#
#   tools/run-tests.sh [--quick] [--no-deps] [-- PYTEST_ARGS...]
#
# 1. installs missing Debian packages (tools/install-deps.sh)
# 2. build/      : meson setup + compile, unit tests (meson test --suite unit),
#                  integration tests (pytest tests/integration, junit XML)
# 3. build-asan/ : the same with -Db_sanitize=address,undefined -Dwerror=true
#                  (skipped with --quick)
# 4. build-fuzz/ : clang, -Dfuzzing=true, ASan+UBSan, -Dwerror=true: each
#                  libFuzzer target of tests/fuzz/ runs for IMD_FUZZ_SECONDS
#                  (default 30; 0 skips) and counts as one test (skipped
#                  with --quick)
#
# The last line printed is exactly "N passed, N failed", summed over every
# meson unit test (build*/meson-logs/testlog.json) and every pytest case
# (the junit XML); the exit status is non-zero when anything failed.
set -uo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
PY=/usr/bin/python3          # Debian's, with slixmpp/gi/pytest (not pyenv's)
export LANG="${LANG:-C.UTF-8}"

quick=0
deps=1
pytest_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1 ;;
    --no-deps) deps=0 ;;
    --) shift; pytest_args=("$@"); break ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) echo "run-tests: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done

total_pass=0
total_fail=0
summary=()

log() { printf '\n=== %s\n' "$*"; }

if [ $deps = 1 ]; then
  log "dependencies"
  if ! tools/install-deps.sh; then
    echo "run-tests: installing dependencies failed" >&2
    echo "0 passed, 1 failed"
    exit 1
  fi
fi

# count_unit BUILD -> "pass fail" from meson's testlog.json (one object per test)
count_unit() {
  local f="$1/meson-logs/testlog.json"
  [ -s "$f" ] || { echo "0 0"; return; }
  jq -rs '[ (map(select(.result == "OK" or .result == "EXPECTEDFAIL")) | length),
            (map(select(.result != "OK" and .result != "EXPECTEDFAIL"
                        and .result != "SKIP")) | length) ] | "\(.[0]) \(.[1])"' "$f"
}

# count_junit FILE -> "pass fail skipped"
count_junit() {
  "$PY" - "$1" <<'EOF'
import sys, xml.etree.ElementTree as ET
try:
    root = ET.parse(sys.argv[1]).getroot()
except Exception:
    print("0 1 0"); sys.exit()
suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
p = f = skipped = 0
for s in suites:
    t, fl, e, sk = (int(s.get(k, 0)) for k in ("tests", "failures", "errors", "skipped"))
    p += t - fl - e - sk
    f += fl + e
    skipped += sk
print(p, f, skipped)
EOF
}

# one_pass NAME BUILD_DIR [meson setup options...]
one_pass() {
  local name="$1" bdir="$2"; shift 2
  local p f s build_ok=1
  log "$name: build ($bdir)"
  if [ ! -f "$bdir/build.ninja" ]; then
    meson setup "$bdir" "$@" || build_ok=0
  fi
  if [ $build_ok = 1 ]; then
    meson compile -C "$bdir" || build_ok=0
  fi
  if [ $build_ok = 0 ]; then
    echo "run-tests: $name: build FAILED" >&2
    total_fail=$((total_fail + 1))
    summary+=("$name build: FAILED")
  fi

  log "$name: unit tests"
  rm -f "$bdir/meson-logs/testlog.json"
  if [ $build_ok = 1 ]; then
    meson test -C "$bdir" --suite unit --print-errorlogs --no-rebuild
  fi
  read -r p f < <(count_unit "$bdir")
  total_pass=$((total_pass + p)); total_fail=$((total_fail + f))
  summary+=("$name unit: $p passed, $f failed")

  log "$name: integration tests"
  local junit="$bdir/pytest-junit.xml"
  rm -f "$junit"
  mkdir -p "$bdir"
  local timeout_args=()
  if "$PY" -c 'import pytest_timeout' 2>/dev/null; then
    timeout_args=(--timeout=240)
  fi
  IMD_BUILD_DIR="$ROOT/$bdir" "$PY" -m pytest tests/integration -q \
      --junitxml="$junit" -o junit_family=xunit2 "${timeout_args[@]}" \
      "${pytest_args[@]}" </dev/null
  if [ -s "$junit" ]; then
    read -r p f s < <(count_junit "$junit")
  else
    p=0; f=1; s=0
    echo "run-tests: $name: pytest wrote no junit report" >&2
  fi
  total_pass=$((total_pass + p)); total_fail=$((total_fail + f))
  # skipped tests (not root, a tool missing) count as neither, but show
  summary+=("$name integration: $p passed, $f failed, $s skipped")
}

one_pass "default" build -Dwerror=true

if [ $quick = 0 ]; then
  export ASAN_OPTIONS="halt_on_error=1:abort_on_error=0:print_stacktrace=1:detect_leaks=1:strict_string_checks=1:detect_stack_use_after_return=1"
  export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
  one_pass "sanitizers" build-asan \
    -Db_sanitize=address,undefined -Dwerror=true -Db_lundef=false
  unset ASAN_OPTIONS UBSAN_OPTIONS
fi

# ---- fuzzing (issue 7) ---------------------------------------------------
# build-fuzz/: clang, -Dfuzzing=true, ASan+UBSan; builds only the libFuzzer
# targets of tests/fuzz/. Each fuzzes a scratch copy of its seed corpus
# (tests/fuzz/corpus/TARGET/; the repository is not touched) for
# IMD_FUZZ_SECONDS (default 30; 0 skips fuzzing) and counts as one test.
# A crashing input is kept in build-fuzz/fuzz-artifacts/; add it to the
# corpus with the fix, and the unit tests' replay keeps checking it.
FUZZ_TARGETS=(fuzz-xml fuzz-jid fuzz-scram fuzz-bus-args fuzz-host-meta)
fuzz_pass() {
  local bdir=build-fuzz seconds="${IMD_FUZZ_SECONDS:-30}" scratch t p=0 f=0
  local artifacts="$ROOT/$bdir/fuzz-artifacts" args
  [ "$seconds" = 0 ] && return 0
  log "fuzzing: build ($bdir, clang)"
  if { [ -f "$bdir/build.ninja" ] ||
       CC=clang meson setup "$bdir" -Dfuzzing=true -Dwerror=true \
         -Db_sanitize=address,undefined -Db_lundef=false; } &&
     meson compile -C "$bdir" "${FUZZ_TARGETS[@]}"; then
    :
  else
    echo "run-tests: fuzzing: build FAILED" >&2
    total_fail=$((total_fail + 1))
    summary+=("fuzzing build: FAILED")
    return 0
  fi
  scratch=$(mktemp -d)
  mkdir -p "$artifacts"
  for t in "${FUZZ_TARGETS[@]}"; do
    log "fuzzing: $t for ${seconds}s"
    mkdir -p "$scratch/$t"
    cp tests/fuzz/corpus/"$t"/* "$scratch/$t/"
    args=(-max_total_time="$seconds" -timeout=10 -rss_limit_mb=512
          -print_final_stats=1 -artifact_prefix="$artifacts/$t-")
    [ -f "tests/fuzz/$t.dict" ] && args+=(-dict="tests/fuzz/$t.dict")
    # A smaller quarantine than the default 256 MiB keeps -rss_limit_mb for real blow-ups.
    if ASAN_OPTIONS="halt_on_error=1:abort_on_error=0:print_stacktrace=1:detect_leaks=1:detect_stack_use_after_return=1:quarantine_size_mb=64" \
       UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1" \
       timeout $((seconds + 120)) "$bdir/tests/fuzz/$t" "${args[@]}" "$scratch/$t" \
         >"$bdir/$t.log" 2>&1; then
      p=$((p + 1))
      grep -E '^(#[0-9]+[[:space:]]+DONE|stat::number_of_executed_units|stat::average_exec_per_sec)' "$bdir/$t.log"
      summary+=("fuzz $t: passed")
    else
      f=$((f + 1))
      tail -n 60 "$bdir/$t.log"
      echo "run-tests: fuzzing: $t FAILED (log $bdir/$t.log, input in $artifacts/)" >&2
      summary+=("fuzz $t: FAILED")
    fi
  done
  rm -rf "$scratch"
  total_pass=$((total_pass + p)); total_fail=$((total_fail + f))
}
# ---- end of fuzzing -------------------------------------------------------

if [ $quick = 0 ]; then
  fuzz_pass
fi

log "summary"
for s in "${summary[@]}"; do echo "  $s"; done
echo "$total_pass passed, $total_fail failed"
if [ $total_fail -gt 0 ] || [ $total_pass -eq 0 ]; then
  exit 1
fi
exit 0
