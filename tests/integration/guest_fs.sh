#!/usr/bin/env bash
# virtio-fs driven directly by the test guest (guest/tests_fs.c, guest/tests_fs_hostile.c):
# mica run --share DIR,tag=T over virtio-pci and virtio-mmio, `tests=fs,fs_hostile`. The share
# is built here:
#   share/hello.txt   "mica-fs NNNNN\n" for 00000 .. 00999, which the guest reads back
#   share/a/b, share/hello.txtX   names the guest must not reach by "a/b" or a name without NUL
#   share/escape -> ../canary, share/updir -> ..   symlinks pointing out of the share
#   share/null        a character device (mknod c 1 3), where we may make one
#   share/many/f0 ..  the share's inode bound (max_inodes=, set low here) + 64 empty files;
#                     the share holds 64 descriptors (max_fds=64), so the guest's walk over
#                     them also finds most of its nodes again by name (hostfs/fdcache.c)
#   canary            next to the share, with an old mtime
# Checked per transport:
#   fs-TRANSPORT         mica exits 0 and the guest's fs and fs_hostile tests pass;
#   fs-TRANSPORT-fds     the share found nodes again by name (--stats-json's "reopened"): with
#                        max_fds=64, the guest's GETATTRs of early flood nodes need that;
#   fs-TRANSPORT-write   share/guest.txt is what the guest wrote ("guest-fs NNNNN\n", 00000 ..
#                        00599), and nothing else appeared in the share;
#   fs-TRANSPORT-confined  the canary (content, mtime) and everything next to the share are as
#                        before; hello.txt and the fixture are intact.
# Needs KVM (scripts/with-kvm); tests/integration/kvm.sh calls it.
cd "$(dirname "$0")/../.."
. tests/integration/lib.sh

require_kvm

if ! "$MICA" --help 2>&1 | grep -q -- '--share'; then
	for t in pci mmio; do skip "fs-$t" "this mica has no --share option"; done
	exit 0
fi

# Outside the tree: under scripts/with-kvm the tree is 9p (no device nodes); /tmp is tmpfs.
DIR=$(mktemp -d /tmp/mica-guest-fs.XXXXXX)
trap 'rm -rf "$DIR"' EXIT
TAG=mica-guest-fs
MAX_INODES=2048
MAX_FDS=64
MANY=$((MAX_INODES + 64))
share=$DIR/share
canary=$DIR/canary

mkdir -p "$share/a" "$share/many"
seq -f 'mica-fs %05g' 0 999 >"$share/hello.txt"
cp "$share/hello.txt" "$DIR/hello.ref"
seq -f 'guest-fs %05g' 0 599 >"$DIR/guest.ref"
: >"$share/a/b"
: >"$share/hello.txtX"
ln -s ../canary "$share/escape"
ln -s .. "$share/updir"
nodev=0
if ! mknod "$share/null" c 1 3 2>/dev/null; then
	nodev=1
	echo "# mknod failed (not root?): the guest skips its device-node checks"
fi
(cd "$share/many" && seq -f 'f%g' 0 $((MANY - 1)) | xargs touch)
echo "canary: outside the share, never to change" >"$canary"
touch -d '2001-02-03 04:05:06' "$canary"
cp -p "$canary" "$DIR/canary.ref"

# snapshot: everything in DIR, the fixture in the share included (names, types, sizes, modes,
# mtimes, symlinks' targets), but the share directory itself (its mtime moves with guest.txt),
# share/guest.txt, and many/'s entries, which are counted.
snapshot() {
	(cd "$DIR" && find . -path ./share/many -prune -o -path ./share -o -path ./share/guest.txt -o \
		-printf '%p %y %s %m %T@ %l\n' | sort
	echo "many: $(find share/many -mindepth 1 | wc -l)")
}
# fs_counters JSON: "reopened" of the virtio-fs device at the end.
fs_counters() {
	python3 - "$1" <<'EOF' 2>/dev/null
import json, sys
for d in json.load(open(sys.argv[1]))["devices"]:
    if d.get("device") == "virtio-fs":
        print(d["reopened"])
EOF
}
before=$(snapshot)
top=$(cd "$share" && ls -A | sort | tr '\n' ' ')

for transport in pci mmio; do
	name=fs-$transport
	rm -f "$share/guest.txt"
	LIMIT=${LIMIT:-300} run_mica $name run --kernel "$GUEST" --mem 64M --transport $transport \
		--share "$share,tag=$TAG,max_inodes=$MAX_INODES,max_fds=$MAX_FDS" --stats-json "$OUT/$name.json" \
		--cmdline "tests=fs,fs_hostile fs_tag=$TAG fs_many=$MANY fs_max_inodes=$MAX_INODES fs_nodev=$nodev"
	tap_read "$OUT/$name.txt"
	expect $name "status 0, fs: '${tap[fs]:-missing}', fs_hostile: '${tap[fs_hostile]:-missing}'" \
		test "$rc" = 0 -a "${tap[fs]:-}" = ok -a "${tap[fs_hostile]:-}" = ok
	sed -n 's/^# \(virtio-fs\|fs_hostile\): /# '$transport': /p' "$OUT/$name.txt"
	reopened=$(fs_counters "$OUT/$name.json")
	expect $name-fds "nodes found again by name after their descriptors were closed for room (reopened: '$reopened')" \
		test "${reopened:-0}" -gt 0
	now=$(cd "$share" && ls -A | grep -vx guest.txt | sort | tr '\n' ' ')
	expect $name-write "share/guest.txt holds the guest's lines and nothing else appeared (share: $now)" \
		eval 'cmp -s "$share/guest.txt" "$DIR/guest.ref" && [ "$now" = "$top" ]'
	after=$(snapshot)
	printf '%s\n' "$before" >"$OUT/$name.before"
	printf '%s\n' "$after" >"$OUT/$name.after"
	expect $name-confined "the canary and everything next to the share are untouched, the fixture intact ($(diff "$OUT/$name.before" "$OUT/$name.after" | head -n 4 | tr '\n' ' '))" \
		eval '[ "$before" = "$after" ] && cmp -s "$canary" "$DIR/canary.ref" &&
		[ "$(stat -c %Y "$canary")" = "$(stat -c %Y "$DIR/canary.ref")" ] &&
		cmp -s "$share/hello.txt" "$DIR/hello.ref"'
done
