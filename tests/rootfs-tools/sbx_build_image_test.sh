#!/bin/sh
# sbx-build-image end to end: usage errors, --list (source tree and installed layout), a real build of the 'base'
# image through a cache (a hit the second time), and an interrupted build that must leave nothing behind.
#   sbx_build_image_test.sh SBX_BUILD_IMAGE
# Run as root, with the machine's apt sources reachable. The cache is $SBX_TEST_IMAGE_CACHE (default
# /var/cache/sbx-test/images) so that repeated runs do not rebuild; on a cold cache this takes about two builds of
# 'base' (one of them interrupted), under two minutes.
set -u
script=$1
cache=${SBX_TEST_IMAGE_CACHE:-/var/cache/sbx-test/images}
if [ "$(id -u)" -ne 0 ]; then
  echo "sbx_build_image_test: builds root filesystems with mmdebstrap: run as root" >&2
  exit 1
fi
tmp=$(mktemp -d /tmp/sbx-test-build-image-XXXXXX)
bg_pid=
cleanup() {
  [ -n "$bg_pid" ] && kill "$bg_pid" 2>/dev/null && wait "$bg_pid" 2>/dev/null
  rm -rf --one-file-system "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
passed=0
failed=0

check() {  # check NAME EXPECTED ACTUAL
  if [ "$2" = "$3" ]; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    printf 'FAIL %s\n  expected: %s\n  actual:   %s\n' "$1" "$2" "$3"
  fi
}

contains() {  # contains NAME NEEDLE HAYSTACK
  case $3 in *"$2"*) check "$1" ok ok ;; *) check "$1" "...$2..." "$3" ;; esac
}

# ---- usage errors: status 2 and the usage line, or status 1 and a message naming the problem ----
out=$("$script" 2>&1); rc=$?
check "no arguments: status 2" 2 "$rc"
contains "no arguments: usage" "usage: sbx-build-image NAME|--list" "$out"
out=$("$script" base --frobnicate 2>&1); rc=$?
check "unknown option: status 2" 2 "$rc"
contains "unknown option: named" "sbx-build-image: unknown option '--frobnicate'" "$out"
out=$("$script" base --output 2>&1); rc=$?
check "--output without a value: status 2" 2 "$rc"
out=$("$script" base python 2>&1); rc=$?
check "two names: status 2" 2 "$rc"
contains "two names: says so" "more than one NAME" "$out"
out=$("$script" base --list 2>&1); rc=$?
check "NAME with --list: status 2" 2 "$rc"
out=$("$script" no-such-image --output "$tmp/x.tar.zst" 2>&1); rc=$?
check "unknown image: status 1" 1 "$rc"
contains "unknown image: named, with a hint" "no image definition 'no-such-image'" "$out"
out=$("$script" 'Base!' 2>&1); rc=$?
check "a bad NAME: status 1" 1 "$rc"
contains "a bad NAME: refused" "'Base!' is not an image name" "$out"
out=$("$script" ../etc/passwd 2>&1); rc=$?
check "a path not ending in .conf: status 1" 1 "$rc"
contains "a path not ending in .conf: refused" "a definition file's name ends in .conf" "$out"
out=$("$script" base --sources "$tmp/none.sources" --output "$tmp/x.tar.zst" 2>&1); rc=$?
check "missing sources file: status 1" 1 "$rc"
contains "missing sources file: named" "sources file '$tmp/none.sources' does not exist" "$out"
out=$("$script" base --output "$tmp" 2>&1); rc=$?
check "--output a directory: status 1" 1 "$rc"
check "usage errors wrote nothing" "" "$(ls -A "$tmp")"
"$script" --help >/dev/null 2>&1; rc=$?
check "--help: status 0" 0 "$rc"

# ---- --list: the three definitions with their packages ----
out=$("$script" --list 2>&1); rc=$?
check "--list: status 0" 0 "$rc"
check "--list: base, no packages" "base bookworm minbase -" "$(echo "$out" | awk '$1 == "base"' | tr -s ' ')"
check "--list: python" "python bookworm minbase python3 python3-pip python3-venv" \
  "$(echo "$out" | awk '$1 == "python"' | tr -s ' ')"
check "--list: node" "node bookworm minbase nodejs npm" "$(echo "$out" | awk '$1 == "node"' | tr -s ' ')"

# Installed layout: libexec/sbx/sbx-build-image finds share/sbx/images; SBX_IMAGE_DEFS overrides.
mkdir -p "$tmp/inst/libexec/sbx" "$tmp/inst/share/sbx/images" "$tmp/defs"
cp "$script" "$tmp/inst/libexec/sbx/"
cp "$(dirname "$script")/images/node.conf" "$tmp/inst/share/sbx/images/"
out=$("$tmp/inst/libexec/sbx/sbx-build-image" --list 2>&1); rc=$?
check "installed layout: --list status 0" 0 "$rc"
check "installed layout: lists share/sbx/images" "node" "$(echo "$out" | awk 'NR > 1 { print $1 }')"
printf 'SUITE=bookworm\nVARIANT=minbase\nPACKAGES="curl"\nCHECK="curl --version"\n' >"$tmp/defs/mine.conf"
out=$(SBX_IMAGE_DEFS="$tmp/defs" "$tmp/inst/libexec/sbx/sbx-build-image" --list 2>&1); rc=$?
check "SBX_IMAGE_DEFS: used" "mine bookworm minbase curl" "$(echo "$out" | awk 'NR > 1' | tr -s ' ')"
printf 'SUITE=bookworm\nVARIANT=minbase\nPACKAGES="curl;rm"\nCHECK="true"\n' >"$tmp/defs/bad.conf"
out=$(SBX_IMAGE_DEFS="$tmp/defs" "$script" bad --output "$tmp/bad.tar.zst" 2>&1); rc=$?
check "bad definition: status 1" 1 "$rc"
contains "bad definition: names the field" "bad.conf: PACKAGES: 'curl;rm' is not a package name" "$out"
out=$("$script" "$tmp/defs/bad.conf" --output "$tmp/bad.tar.zst" 2>&1); rc=$?
contains "a definition file by path: read" "bad.conf: PACKAGES: 'curl;rm' is not a package name" "$out"
check "bad definition: wrote nothing" "defs inst" "$(find "$tmp" -mindepth 1 -maxdepth 1 -printf '%f\n' | sort | paste -sd' ')"
rm -rf "$tmp/inst" "$tmp/defs"

# ---- a real build of base, through the cache ----
cached_base() {  # the cache's builds of base
  find "$cache" -maxdepth 1 -regextype egrep -regex '.*/base-[0-9a-f]{64}\.tar\.zst'
}
mkdir -p "$tmp/out"
out=$("$script" base --cache "$cache" --output "$tmp/out/base.tar.zst" --quiet 2>&1); rc=$?
check "build base: status 0" 0 "$rc"
echo "$out" | tail -n 1
contains "build base: summary names the output" "sbx-build-image: base: $tmp/out/base.tar.zst, " "$out"
check "build base: the output is there" yes "$([ -s "$tmp/out/base.tar.zst" ] && echo yes)"
check "build base: the tarball has etc/debian_version" ./etc/debian_version \
  "$(tar --zstd -tf "$tmp/out/base.tar.zst" 2>&1 | grep -x './etc/debian_version')"
check "build base: bookworm inside" 12 \
  "$(tar --zstd -xOf "$tmp/out/base.tar.zst" ./etc/debian_version 2>&1 | cut -d. -f1)"
check "build base: no man pages" 0 "$(tar --zstd -tf "$tmp/out/base.tar.zst" | grep -c '^\./usr/share/man/.')"
check "build base: one build of base in the cache" 1 \
  "$(cached_base | wc -l)"
check "build base: no temporary files left" "base.tar.zst" "$(ls -A "$tmp/out")"

rm -f "$tmp/out/base.tar.zst"
out=$("$script" base --cache "$cache" --output "$tmp/out/base.tar.zst" --quiet 2>&1); rc=$?
check "second build: status 0" 0 "$rc"
echo "$out" | tail -n 1
contains "second build: a cache hit" "cache hit" "$out"
check "second build: same tarball" "$(cached_base | xargs sha256sum | cut -d' ' -f1)" \
  "$(sha256sum <"$tmp/out/base.tar.zst" | cut -d' ' -f1)"
# Again onto the same output (already a hard link of the cached build).
"$script" base --cache "$cache" --output "$tmp/out/base.tar.zst" --quiet >/dev/null 2>&1; rc=$?
check "third build onto the same output: status 0" 0 "$rc"
check "third build: no temporary files left" "base.tar.zst" "$(ls -A "$tmp/out")"

# ---- a failing CHECK fails the build, and leaves nothing (the 'essential' variant: the quickest build) ----
mkdir -p "$tmp/fail/out" "$tmp/fail/tmp"
printf 'SUITE=bookworm\nVARIANT=essential\nPACKAGES=""\nCHECK="echo about to fail; exit 3"\n' >"$tmp/fail/broken.conf"
out=$(TMPDIR="$tmp/fail/tmp" "$script" "$tmp/fail/broken.conf" --output "$tmp/fail/out/broken.tar.zst" --quiet 2>&1)
rc=$?
check "failing check: status 1" 1 "$rc"
contains "failing check: says so, with the command" \
  "sbx-build-image: the image's check failed (status 3): echo about to fail; exit 3" "$out"
contains "failing check: shows its output" "| about to fail" "$out"
check "failing check: no output, no temporary file" "" "$(ls -A "$tmp/fail/out")"
check "failing check: no work directory" "" "$(ls -A "$tmp/fail/tmp")"

# ---- an interrupted build leaves nothing: no output, no temporary file, no work directory, no mount ----
mkdir -p "$tmp/int/out" "$tmp/int/tmp"
TMPDIR="$tmp/int/tmp" "$script" base --output "$tmp/int/out/base.tar.zst" >"$tmp/int/log" 2>&1 &
bg_pid=$!
# Wait until mmdebstrap is installing packages into the build root: well into the build.
i=0
while [ $i -lt 600 ] && ! grep -q "installing essential packages\|installing remaining packages" "$tmp/int/log" &&
    kill -0 "$bg_pid" 2>/dev/null; do
  sleep 0.1
  i=$((i + 1))
done
check "interrupt: the build was under way" yes \
  "$([ -n "$(ls -A "$tmp/int/tmp")" ] && kill -0 "$bg_pid" 2>/dev/null && echo yes)"
kill -TERM "$bg_pid"
wait "$bg_pid"; rc=$?
bg_pid=
check "interrupt: status 143" 143 "$rc"
contains "interrupt: says so" "interrupted by signal 15" "$(cat "$tmp/int/log")"
check "interrupt: no output, no temporary file" "" "$(ls -A "$tmp/int/out")"
check "interrupt: no work directory" "" "$(ls -A "$tmp/int/tmp")"
check "interrupt: no mount left" 0 "$(grep -c " $tmp/int" /proc/self/mountinfo)"
check "interrupt: no process left" "" "$(pgrep -f "$tmp/int" || true)"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
