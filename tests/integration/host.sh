#!/usr/bin/env bash
# Command-line and input-file errors: checked before KVM is touched, so they run on any host.
# Each must exit 2 with one line naming the problem, and never dump core.
cd "$(dirname "$0")/../.."
. tests/integration/lib.sh

# usage_error NAME PATTERN ARGS...: status 2, one line on stderr matching PATTERN, no stdout.
usage_error() {
	local name=$1 pattern=$2; shift 2
	run_mica "$name" "$@"
	local lines
	lines=$(wc -l <"$OUT/$name.err")
	expect "$name" "want status 2 and one line matching '$pattern'" \
		test "$rc" = 2 -a "$lines" = 1 -a ! -s "$OUT/$name.out" -a -n "$(grep -- "$pattern" "$OUT/$name.err")"
}

usage_error cli-missing-kernel "No such file" run --kernel "$OUT/does-not-exist"
printf 'not a kernel\n' >"$OUT/not-a-kernel"
usage_error cli-not-elf "neither an ELF64 x86_64 kernel nor a Linux bzImage" run --kernel "$OUT/not-a-kernel"
usage_error cli-elf-not-kernel "not an executable" run --kernel /bin/sh
usage_error cli-directory "not a regular file" run --kernel "$OUT"
: >"$OUT/empty"
usage_error cli-empty "empty" run --kernel "$OUT/empty"
usage_error cli-mem-zero "--mem 0" run --kernel "$GUEST" --mem 0
usage_error cli-mem-bad-suffix "--mem 12Q" run --kernel "$GUEST" --mem 12Q
usage_error cli-cpus-zero "--cpus 0" run --kernel "$GUEST" --cpus 0
usage_error cli-cpus-too-many "--cpus 65" run --kernel "$GUEST" --cpus 65
usage_error cli-timeout-bad "--timeout" run --kernel "$GUEST" --timeout soon
usage_error cli-no-kernel "no kernel given" run
usage_error cli-unknown-option "unknown option --frobnicate" run --kernel "$GUEST" --frobnicate
usage_error cli-initrd-missing "cannot use initrd" run --kernel "$GUEST" --initrd "$OUT/does-not-exist"

# An unreadable kernel: root reads anything, so drop to nobody for this one.
cp "$GUEST" "$OUT/unreadable-kernel" && chmod 000 "$OUT/unreadable-kernel"
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null; then
	WRAP="setpriv --reuid=nobody --regid=nogroup --clear-groups" \
		usage_error cli-unreadable "Permission denied" run --kernel "$OUT/unreadable-kernel"
else
	usage_error cli-unreadable "Permission denied" run --kernel "$OUT/unreadable-kernel"
fi

run_mica cli-help --help
expect cli-help "mica --help prints usage and exits 0" \
	test "$rc" = 0 -a -n "$(grep 'mica run --kernel' "$OUT/cli-help.txt")"
run_mica cli-version --version
expect cli-version "mica --version exits 0" test "$rc" = 0 -a -n "$(grep '^mica ' "$OUT/cli-version.txt")"

# Without /dev/kvm, mica says so and points at the way out. Where the host has one, a private
# mount namespace with an empty /dev hides it (root).
nokvm_wrap=
if [ -e /dev/kvm ] && unshare -m true 2>/dev/null; then
	printf '#!/bin/sh\nmount -t tmpfs tmpfs /dev && exec "$@"\n' >"$OUT/nokvm.sh"
	chmod +x "$OUT/nokvm.sh"
	nokvm_wrap="unshare -m $OUT/nokvm.sh"
fi
if [ ! -e /dev/kvm ] || [ -n "$nokvm_wrap" ]; then
	WRAP=$nokvm_wrap run_mica cli-no-kvm run --kernel "$GUEST"
	expect cli-no-kvm "no /dev/kvm: status 2 and a hint" \
		test "$rc" = 2 -a -n "$(grep '/dev/kvm does not exist.*scripts/with-kvm' "$OUT/cli-no-kvm.err")"
else
	skip cli-no-kvm "this host has /dev/kvm, and no mount namespace (unshare -m) can hide it"
fi
