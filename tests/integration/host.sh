#!/usr/bin/env bash
# Bad invocations that mica refuses before it touches KVM, so they run on any host: each must
# exit 2 (or 125 where mica itself failed) with one line on stderr naming the problem, print
# nothing on stdout and leave no file behind (bad_case in lib.sh checks all four). The cases
# that need KVM to be reached are in host_kvm.sh, in the same format.
cd "$(dirname "$0")/../.."
. tests/integration/lib.sh

# Fixtures, shared by the cases (absolute paths: each case runs in its own directory).
F=$(realpath -m "$OUT/bad-fixtures")
rm -rf "$F" && mkdir -p "$F"
G=$(realpath "$GUEST")
LINUX=$(realpath -m build/linux/vmlinuz)
GENERIC=$(realpath -m "$(ls build/with-kvm/pkg/linux-image-*/boot/vmlinuz-* 2>/dev/null | head -n 1)")
printf 'not a kernel\n' >"$F/text"
: >"$F/empty"
cp "$G" "$F/unreadable" && chmod 000 "$F/unreadable"
head -c $(($(stat -c %s "$G") / 3)) "$G" >"$F/guest-third"
mkfifo "$F/fifo"
printf 'plain\n' >"$F/regular"
mkdir -m 555 "$F/ro-dir"
truncate -s 1M "$F/disk" "$F/disk-ro" "$F/disk-held"
chmod 444 "$F/disk-ro"
truncate -s 16M "$F/initrd-16M"
# Corrupt copies of the real kernels (boot/bzimage.c says what it can check without
# decompressing): cut at a third, setup_sects = 200, 64 KiB zeroed inside the compressed
# kernel, the boot flag gone.
bz_copies() { # SRC PREFIX
	local size
	[ -f "$1" ] || return 0
	size=$(stat -c %s "$1")
	head -c $((size / 3)) "$1" >"$F/$2-third"
	cp "$1" "$F/$2-setup200" && printf '\310' | dd of="$F/$2-setup200" bs=1 seek=$((0x1f1)) conv=notrunc status=none
	cp "$1" "$F/$2-zeroed" && dd if=/dev/zero of="$F/$2-zeroed" bs=64K seek=$((size / 2 / 65536)) count=1 conv=notrunc status=none
	cp "$1" "$F/$2-noflag" && printf '\0\0' | dd of="$F/$2-noflag" bs=1 seek=$((0x1fe)) conv=notrunc status=none
}
bz_copies "$LINUX" cloud
bz_copies "$GENERIC" generic
# Someone else holds the disk image's lock, as a running mica would (flock, exclusive): this
# script, on a descriptor of its own (mica opens the file anew, so it conflicts).
exec {held}<"$F/disk-held"
flock -x $held

bad_table <<'TABLE'
# name                 status  stderr ERE                                          [marks] args
kernel-missing          2  "cannot use kernel .*No such file or directory"      run --kernel "$F/nope"
kernel-unreadable       2  "cannot use kernel .*Permission denied"   @nobody    run --kernel "$F/unreadable"
kernel-empty            2  "cannot use kernel .*empty"                          run --kernel "$F/empty"
kernel-directory        2  "cannot use kernel .*not a regular file"             run --kernel "$F"
kernel-fifo             2  "cannot use kernel .*not a regular file"             run --kernel "$F/fifo"
kernel-text             2  "neither an ELF64 x86_64 kernel nor a Linux bzImage" run --kernel "$F/text"
kernel-elf-not-kernel   2  "an ELF file, but not an executable"                 run --kernel /bin/sh
kernel-elf-truncated    2  "truncated or corrupt ELF file"                      run --kernel "$F/guest-third"
bzimage-truncated       2  "truncated or corrupt kernel image: its header says" @needs=$F/cloud-third run --kernel "$F/cloud-third"
bzimage-setup-sects     2  "truncated or corrupt kernel image: its header says" @needs=$F/cloud-setup200 run --kernel "$F/cloud-setup200"
bzimage-zeroed          2  "truncated or corrupt kernel image: its CRC-32"      @needs=$F/cloud-zeroed run --kernel "$F/cloud-zeroed"
bzimage-no-boot-flag    2  "without the 0xAA55 boot flag"                       @needs=$F/cloud-noflag run --kernel "$F/cloud-noflag"
bzimage-generic-truncated 2 "truncated or corrupt kernel image"                 @needs=$F/generic-third run --kernel "$F/generic-third"
bzimage-generic-zeroed  2  "truncated or corrupt kernel image: its CRC-32"      @needs=$F/generic-zeroed run --kernel "$F/generic-zeroed"
initrd-missing          2  "cannot use initrd .*No such file"                   run --kernel "$G" --initrd "$F/nope"
initrd-fifo             2  "cannot use initrd .*not a regular file"             run --kernel "$G" --initrd "$F/fifo"
initrd-for-elf-kernel   2  "--initrd is only for Linux kernels"                 run --kernel "$G" --initrd "$F/regular"
initrd-larger-than-ram  2  "initrd .* is larger than the guest's RAM"           @needs=$LINUX run --kernel "$LINUX" --initrd "$F/initrd-16M" --mem 8M
mem-zero                2  "^mica: --mem 0: out of range"                       run --kernel "$G" --mem 0
mem-one                 2  "^mica: --mem 1: out of range"                       run --kernel "$G" --mem 1
mem-negative            2  "^mica: --mem -5: not a size"                        run --kernel "$G" --mem -5
mem-99999G              2  "^mica: --mem 99999G: out of range"                  run --kernel "$G" --mem 99999G
mem-bad-suffix          2  "^mica: --mem 12Q: not a size"                       run --kernel "$G" --mem 12Q
mem-more-than-host      2  "--mem 1024G: this host has .* of RAM and swap.*give at most --mem [0-9]+[GM]$" run --kernel "$G" --mem 1T
mem-more-than-mappable  2  "--mem 2G: this process cannot map that much guest RAM" @as=1000000 run --kernel "$G" --mem 2G
cpus-zero               2  "^mica: --cpus 0: give a whole number from 1 to 64"  run --kernel "$G" --cpus 0
cpus-65                 2  "^mica: --cpus 65: give a whole number from 1 to 64" run --kernel "$G" --cpus 65
cpus-abc                2  "^mica: --cpus abc: give a whole number"             run --kernel "$G" --cpus abc
timeout-bad             2  "^mica: --timeout soon: give a positive number"      run --kernel "$G" --timeout soon
no-command              2  "no command given"
unknown-command         2  "unknown command 'frob'"                             frob
no-kernel               2  "no kernel given"                                    run
unknown-option          2  "unknown option --frobnicate"                        run --kernel "$G" --frobnicate
kernel-missing-value    2  "^mica: --kernel needs a value"                      run --kernel
mem-missing-value       2  "^mica: --mem needs a value"                         run --kernel "$G" --mem
stray-argument          2  "unexpected argument 'extra'"                        run --kernel "$G" extra
kernel-twice            2  "^mica: --kernel given twice; give it once"          run --kernel "$G" --kernel "$G"
mem-twice               2  "^mica: --mem given twice"                           run --kernel "$G" --mem 64M --mem 128M
control-empty           2  "^mica: --control: empty value"                      run --kernel "$G" --control ""
stats-json-empty        2  "^mica: --stats-json: empty value"                   run --kernel "$G" --stats-json ""
transport-bogus         2  "^mica: --transport bogus: give mmio, mmio-legacy, pci or pci-transitional" run --kernel "$G" --transport bogus
rng-transport-bogus     2  "^mica: --rng=bogus: give mmio"                      run --kernel "$G" --rng=bogus
console-bogus           2  "^mica: --console tty: give serial or virtio"        run --kernel "$G" --console tty
acpi-bogus              2  "^mica: --acpi maybe: give on or off"                run --kernel "$G" --acpi maybe
seccomp-bogus           2  "^mica: --seccomp maybe: give on or off"             run --kernel "$G" --seccomp maybe
landlock-bogus          2  "^mica: --landlock maybe: give on or off"            run --kernel "$G" --landlock maybe
seccomp-probe-bogus     2  "^mica: --debug-seccomp-probe disk: give loop, vcpu, io or fs" run --kernel "$G" --debug-seccomp-probe disk
seccomp-twice           2  "^mica: --seccomp given twice; give it once"       run --kernel "$G" --seccomp on --seccomp off
disk-missing            2  "cannot open image .*/nope: No such file"            run --kernel "$G" --disk "$F/nope"
disk-directory          2  "cannot open image .*: Is a directory"               run --kernel "$G" --disk "$F"
disk-read-only-no-ro    2  "cannot open image .*disk-ro for writing: Permission denied \(add ,ro for a read-only disk\)" @nobody run --kernel "$G" --disk "$F/disk-ro"
disk-held               2  "image .*disk-held is in use by another process"     run --kernel "$G" --disk "$F/disk-held"
disk-held-ro            2  "image .*disk-held is in use by another process"     run --kernel "$G" --disk "$F/disk-held,ro"
disk-unknown-option     2  "--disk .*unknown option 'frob'"                     run --kernel "$G" --disk "$F/disk,frob"
disk-bad-cache          2  "--disk .*bad cache mode 'fast'"                     run --kernel "$G" --disk "$F/disk,cache=fast"
disk-no-path            2  "--disk ,ro: empty image path"                       run --kernel "$G" --disk ,ro
net-unknown-kind        2  "--net bridge: unknown network"                      run --kernel "$G" --net bridge
net-hostfwd-malformed   2  "--net: hostfwd=tcp:nonsense: give"                  run --kernel "$G" --net user,hostfwd=tcp:nonsense
net-tap-no-ifname       2  "--net tap: give the interface"                      run --kernel "$G" --net tap
control-missing-dir     2  "--control .*/no/such/sock: no directory"            run --kernel "$G" --control "$T/no/such/sock"
control-not-a-socket    2  "--control .*regular: the file exists and is not a socket" run --kernel "$G" --control "$F/regular"
stats-json-missing-dir  2  "--stats-json .*: cannot write there: No such file"  run --kernel "$G" --stats-json "$T/no/such/stats.json"
stats-json-directory    2  "--stats-json .*: cannot write there: Is a directory" run --kernel "$G" --stats-json "$F"
stats-json-read-only-dir 2 "--stats-json .*: cannot write there: Permission denied" @nobody run --kernel "$G" --stats-json "$F/ro-dir/stats.json"
stats-json-removed      2  "--control .*regular: the file exists and is not a socket" run --kernel "$G" --stats-json "$T/stats.json" --control "$F/regular"
json-and-stats-json     2  "^mica: --stats-json given twice; give it once \(--json and --stats-json are the same\)" run --kernel "$G" --json "$T/a.json" --stats-json "$T/b.json"
json-missing-dir        2  "--json .*: cannot write there: No such file"        run --kernel "$G" --json "$T/no/such/run.json"
junit-missing-dir       2  "--junit .*: cannot write there: No such file"       run --kernel "$G" --junit "$T/no/such/junit.xml"
junit-twice             2  "^mica: --junit given twice; give it once"           run --kernel "$G" --junit "$T/a.xml" --junit "$T/b.xml"
serial-log-missing-dir  2  "^mica: --serial-log .*/no/such/log: cannot write there: No such file or directory" run --kernel "$G" --serial-log "$T/no/such/log"
expect-bad-regex        2  "^mica: --expect 'ok \[': .*; give a POSIX extended regular expression" run --kernel "$G" --expect "ok [" --serial-log "$T/left.log"
timestamps-without-log  2  "^mica: --timestamps stamps the lines of --serial-log: give --serial-log FILE too" run --kernel "$G" --timestamps
sandbox-timestamps-alone 2 "^mica: --timestamps stamps the lines of --serial-log" sandbox --timestamps -- true
fail-on-empty           2  "^mica: --fail-on: empty value"                      run --kernel "$G" --fail-on ""
end-on-missing          2  "^mica: --end-on needs a value"                      run --kernel "$G" --end-on
sandbox-bad-regex       2  "^mica: --fail-on 'a\(': .*regular expression"     sandbox --fail-on "a(" -- true
share-missing           2  "^mica: --share .*/nope: No such file or directory; give an existing directory" run --kernel "$G" --share "$F/nope"
share-file              2  "^mica: --share .*/regular: not a directory"         run --kernel "$G" --share "$F/regular"
share-same-tag          2  "^mica: --share .*: tag x is already used"           run --kernel "$G" --share "$F,tag=x" --share "$F,tag=x"
share-bad-option        2  "^mica: --share"                                     run --kernel "$G" --share "$F,frob"
share-long-tag          2  "^mica: --share"                                     run --kernel "$G" --share "$F,tag=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
sandbox-kernel-missing  2  "^mica: --kernel .*/nope: No such file or directory; give a Linux bzImage" sandbox --kernel "$F/nope" -- true
sandbox-kernel-not-linux 2 "^mica: --kernel .*/regular: .*"                                   sandbox --kernel "$F/regular" -- true
sandbox-rw-missing      2  "^mica: --rw .*/nope: No such file or directory; give an existing directory" sandbox --rw "$F/nope" -- true
sandbox-rw-file         2  "^mica: --rw .*/regular: not a directory"            sandbox --rw "$F/regular" -- true
sandbox-rw-root         2  "^mica: --rw /: the whole host writable is not offered" sandbox --rw / -- true
sandbox-modules-missing 2  "^mica: .*--modules"                                 @needs=$LINUX sandbox --kernel "$LINUX" --modules "$F/nope" -- true
sandbox-log-unwritable  2  "^mica: --log .*: No such file or directory; give a file mica can write" @needs=$LINUX sandbox --kernel "$LINUX" --log "$T/no/such/log" -- true
sandbox-mem-bad         2  "^mica: --mem 12Q: not a size"      sandbox --mem 12Q -- true
sandbox-cpus-bad        2  "^mica: --cpus 0: give a whole number from 1 to 64" sandbox --cpus 0 -- true
sandbox-timeout-bad     2  "^mica: --timeout soon: give a positive number"     sandbox --timeout soon -- true
sandbox-unknown-option  2  "^mica: unknown option --frob; see mica sandbox --help" sandbox --frob -- true
sandbox-twice           2  "^mica: --mem given twice; give it once"            sandbox --mem 1G --mem 2G -- true
sandbox-empty-value     2  "^mica: --log: empty value"                         sandbox --log "" -- true
bench-missing-kernel    2  "^mica: bench exits: cannot use kernel .*nope.*No such file" bench exits --kernel "$F/nope" --json "$T/exits.json"
bench-linux-kernel      2  "bench exits: cannot use kernel .*a Linux kernel, not mica's test guest" @needs=$LINUX bench exits --kernel "$LINUX" --json "$T/exits.json"
bench-json-missing-dir  2  "bench exits: --json .*: cannot write there"         bench exits --kernel "$G" --json "$T/no/such/exits.json"
bench-unknown-option    2  "bench: unknown option --frob"                       bench exits --frob
TABLE

exec {held}<&-

# Not errors: --help and --version.
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
