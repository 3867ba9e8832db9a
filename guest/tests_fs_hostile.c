/* fs_hostile (destructive: needs the host's fixture): a guest that attacks mica's virtio-fs with
 * FUSE requests no kernel would send. mica --share DIR,tag=TAG with `fs_tag=TAG fs_many=N`;
 * tests/integration/guest_fs.sh builds the share and checks afterwards that nothing outside it
 * changed. The share (besides tests_fs.c's files):
 *   a/b          a file in a directory: "a/b" as one name must not reach it
 *   hello.txtX   an empty file: a name without its NUL must not be read past its buffer
 *   escape       a symlink to ../canary (outside the share), updir a symlink to ..
 *   null         a character device (c 1 3; absent with fs_nodev=1)
 *   many/f0 ..   N empty files, N above the share's inode bound (fs_max_inodes=, which
 *                guest_fs.sh sets with --share ...,max_inodes=)
 *
 * Sections, each followed by a GETATTR of the root that must work:
 *   names    ".", "..", "", "a/b", a 300-byte name, a name without its NUL, an in.len that cuts
 *            the name short, an in.len past the buffers: errors (or no reply), never a node;
 *   links    escape and updir are symlinks (S_IFLNK) whose READLINK is the target; OPEN,
 *            OPENDIR and CREATE-with-O_TRUNC of escape fail; updir is no parent; null is a
 *            character device that no OPEN opens;
 *   nodes    unknown node ids and handles are errors; FORGET twice, of the root, of an unknown
 *            id and a BATCH_FORGET whose count lies: later requests work, the forgotten id
 *            is stale;
 *   framing  a header shorter than fuse_in_header, no reply buffer, reply room for 8 bytes and
 *            for a header alone, a READ of 1 MiB into 4 KiB: nothing written past the room, no
 *            truncated success; opcode 9999 is ENOSYS;
 *   inodes   LOOKUPs of many/f* without FORGET, 64 in flight: ENFILE once the bound is reached
 *            (at most the bound, at least the bound - 8 successes), every further new name
 *            ENFILE too; GETATTR of early ones works (found again by name: max_fds); after a
 *            BATCH_FORGET of them all, the names refused before are found;
 *   after    INIT again, GETATTR and LOOKUP work; Status has no NEEDS_RESET. */
#include "fs.h"

static struct fs fs;
static uint8_t *raw; /* 4 pages for hand-made requests */
#define RAW_PAGES 4

static const char *why(int r) { return r == FS_R_TIMEOUT || r == FS_R_BADREPLY ? fs.why : ""; }
#define FS_OK(r, ...)                                                                            \
    do {                                                                                         \
        int r_ = (r);                                                                            \
        if (r_ < 0) {                                                                            \
            char w_[96];                                                                         \
            snprintf(w_, sizeof(w_), __VA_ARGS__);                                               \
            return test_fail("%s: %s %s", w_, fs_err(r_), why(r_));                              \
        }                                                                                        \
    } while (0)
/* A request that must fail with an errno from mica (not a timeout, not a broken reply). */
#define FS_REFUSED(r, ...)                                                                       \
    do {                                                                                         \
        int r_ = (r);                                                                            \
        if (r_ >= 0 || r_ <= FS_R_TIMEOUT) {                                                     \
            char w_[96];                                                                         \
            snprintf(w_, sizeof(w_), __VA_ARGS__);                                               \
            return test_fail("%s: %s %s, an error expected", w_, fs_err(r_), why(r_));           \
        }                                                                                        \
    } while (0)
#define RUN(section)                           \
    do {                                       \
        enum test_result t_ = section();       \
        if (t_ != TEST_PASS)                   \
            return t_;                         \
        t_ = still_answers(#section);          \
        if (t_ != TEST_PASS)                   \
            return t_;                         \
    } while (0)

static enum test_result still_answers(const char *after)
{
    struct fuse_attr a;
    int r = fs_getattr(&fs, FUSE_ROOT_ID, &a);
    CHECK(r == 0 && (a.mode & FS_S_IFMT) == FS_S_IFDIR, "after %s: GETATTR of the root: %s %s (mode 0x%x)", after,
          fs_err(r), why(r), a.mode);
    CHECK(!(vdev_status(fs.d) & VIRTIO_S_NEEDS_RESET), "after %s: Status 0x%x", after, vdev_status(fs.d));
    printf("# fs_hostile: %s: done, the device answers\n", after);
    return TEST_PASS;
}

/* A LOOKUP under the root whose name buffer holds the string name (with its NUL) but whose
 * descriptor covers only its first n bytes, and whose in.len claims len_claim bytes of name.
 * Returns what fs_check_reply does; used 0 (no reply) is FS_R_NOREPLY. */
#define FS_R_NOREPLY (-10002)
static int lookup_raw(const char *name, uint32_t n, uint32_t len_claim, struct fuse_entry_out *e)
{
    uint8_t *hdr = raw, *nm = raw + PAGE_SIZE, *out = raw + 2 * PAGE_SIZE;
    uint64_t unique = fs_hdr(&fs, hdr, FUSE_LOOKUP, FUSE_ROOT_ID,
                             (uint32_t)sizeof(struct fuse_in_header) + len_claim);
    memcpy(nm, name, strlen(name) + 1);
    memset(out, 0x5a, PAGE_SIZE);
    struct vbuf b[3] = {{virt_to_phys(hdr), sizeof(struct fuse_in_header)},
                        {virt_to_phys(nm), n},
                        {virt_to_phys(out), sizeof(struct fuse_out_header) + sizeof(*e)}};
    uint32_t used;
    if (!fs_chain(&fs, fs.req, b, 2, 1, &used))
        return FS_R_TIMEOUT;
    if (used == 0)
        return FS_R_NOREPLY;
    int r = fs_check_reply(&fs, (const struct fuse_out_header *)out, used, unique, b[2].len);
    if (r >= 0 && e)
        memcpy(e, out + sizeof(struct fuse_out_header), sizeof(*e));
    return r;
}

static enum test_result sec_names(void)
{
    struct fuse_entry_out e, a, b;
    static const char *const bad[] = {".", "..", "", "a/b", "/a", "hello.txt/", "../canary"};
    for (unsigned i = 0; i < ARRAY_SIZE(bad); i++)
        FS_REFUSED(fs_lookup(&fs, FUSE_ROOT_ID, bad[i], &e), "LOOKUP '%s'", bad[i]);
    char longname[301];
    memset(longname, 'n', 300);
    longname[300] = '\0';
    FS_REFUSED(fs_lookup(&fs, FUSE_ROOT_ID, longname, &e), "LOOKUP of a 300-byte name");

    /* The control: a/b is there, one component at a time. */
    FS_OK(fs_lookup(&fs, FUSE_ROOT_ID, "a", &a), "LOOKUP a");
    CHECK((a.attr.mode & FS_S_IFMT) == FS_S_IFDIR, "a: mode 0x%x", a.attr.mode);
    FS_OK(fs_lookup(&fs, a.nodeid, "b", &b), "LOOKUP b in a");
    FS_REFUSED(fs_lookup(&fs, b.nodeid, "x", &e), "LOOKUP under a regular file");
    CHECK(fs_forget(&fs, b.nodeid, 1) && fs_forget(&fs, a.nodeid, 1), "FORGET: %s", fs.why);

    /* "hello.txt" without its NUL, its buffer followed by "X\0": reading past the buffer finds
     * hello.txtX, taking the bytes as the name finds hello.txt; both are wrong. */
    static const char nonul[] = "hello.txtX";
    int r = lookup_raw(nonul, 9, 9, &e);
    CHECK(r < 0 && r > FS_R_TIMEOUT, "LOOKUP of 'hello.txt' without its NUL: %s %s (node %lu), an error expected",
          fs_err(r), why(r), r >= 0 ? e.nodeid : 0);
    /* in.len cuts "hello.txt\0" after "hello": the name has no NUL within the request. */
    r = lookup_raw("hello.txt", 10, 5, &e);
    CHECK(r < 0 && r > FS_R_TIMEOUT, "LOOKUP with in.len ending the name at 'hello': %s %s, an error expected",
          fs_err(r), why(r));
    /* in.len claims 4 KiB more than the buffers hold. */
    r = lookup_raw("hello.txt", 10, 10 + 4096, &e);
    CHECK((r < 0 && r > FS_R_TIMEOUT) || r == FS_R_NOREPLY,
          "LOOKUP with in.len 4 KiB past its buffers: %s %s, an error or no reply expected", fs_err(r), why(r));
    printf("# fs_hostile: in.len past the buffers: %s\n", r == FS_R_NOREPLY ? "no reply" : fs_err(r));
    return TEST_PASS;
}

static enum test_result readlink_is(uint64_t node, const char *want)
{
    int r = fs_call(&fs, FUSE_READLINK, node, NULL, 0, NULL, 0, 4096);
    FS_OK(r, "READLINK of the link to %s", want);
    CHECK((size_t)r == strlen(want) && !memcmp(fs.payload, want, (size_t)r),
          "READLINK: %d bytes '%.*s', '%s' expected", r, r, (const char *)fs.payload, want);
    return TEST_PASS;
}

static enum test_result sec_links(void)
{
    struct fuse_entry_out esc, up, dev, e;
    uint64_t fh;
    FS_OK(fs_lookup(&fs, FUSE_ROOT_ID, "escape", &esc), "LOOKUP escape");
    CHECK((esc.attr.mode & FS_S_IFMT) == FS_S_IFLNK, "escape (a symlink to ../canary): mode 0x%x", esc.attr.mode);
    enum test_result t = readlink_is(esc.nodeid, "../canary");
    if (t != TEST_PASS)
        return t;
    FS_REFUSED(fs_open(&fs, esc.nodeid, FS_O_RDONLY, false, &fh), "OPEN of the symlink escape");
    FS_REFUSED(fs_open(&fs, esc.nodeid, FS_O_WRONLY | FS_O_TRUNC, false, &fh), "OPEN O_WRONLY|O_TRUNC of escape");
    FS_REFUSED(fs_open(&fs, esc.nodeid, FS_O_RDONLY | FS_O_DIRECTORY, true, &fh), "OPENDIR of escape");
    struct fuse_create_in ci = {.flags = FS_O_WRONLY | FS_O_CREAT | FS_O_TRUNC, .mode = FS_S_IFREG | 0644};
    FS_REFUSED(fs_call(&fs, FUSE_CREATE, FUSE_ROOT_ID, &ci, sizeof(ci), "escape", 7,
                       sizeof(struct fuse_entry_out) + sizeof(struct fuse_open_out)),
               "CREATE O_TRUNC over the symlink escape");
    FS_REFUSED(fs_lookup(&fs, esc.nodeid, "x", &e), "LOOKUP under the symlink escape");

    FS_OK(fs_lookup(&fs, FUSE_ROOT_ID, "updir", &up), "LOOKUP updir");
    CHECK((up.attr.mode & FS_S_IFMT) == FS_S_IFLNK, "updir (a symlink to ..): mode 0x%x", up.attr.mode);
    t = readlink_is(up.nodeid, "..");
    if (t != TEST_PASS)
        return t;
    FS_REFUSED(fs_lookup(&fs, up.nodeid, "canary", &e), "LOOKUP canary with updir (a symlink to ..) as parent");
    FS_REFUSED(fs_open(&fs, up.nodeid, FS_O_RDONLY | FS_O_DIRECTORY, true, &fh), "OPENDIR of updir");
    CHECK(fs_forget(&fs, esc.nodeid, 1) && fs_forget(&fs, up.nodeid, 1), "FORGET: %s", fs.why);

    if (cmdline_get_u64("fs_nodev", 0)) {
        printf("# fs_hostile: no device node in the share (fs_nodev=1): its checks skipped\n");
        return TEST_PASS;
    }
    FS_OK(fs_lookup(&fs, FUSE_ROOT_ID, "null", &dev), "LOOKUP null (a device node)");
    CHECK((dev.attr.mode & FS_S_IFMT) == FS_S_IFCHR, "null (mknod c 1 3): mode 0x%x", dev.attr.mode);
    printf("# fs_hostile: null: mode 0x%x rdev 0x%x\n", dev.attr.mode, dev.attr.rdev);
    FS_REFUSED(fs_open(&fs, dev.nodeid, FS_O_RDONLY, false, &fh), "OPEN O_RDONLY of the device node");
    FS_REFUSED(fs_open(&fs, dev.nodeid, FS_O_RDWR, false, &fh), "OPEN O_RDWR of the device node");
    struct fuse_create_in cd = {.flags = FS_O_RDWR | FS_O_CREAT, .mode = FS_S_IFREG | 0644};
    FS_REFUSED(fs_call(&fs, FUSE_CREATE, FUSE_ROOT_ID, &cd, sizeof(cd), "null", 5,
                       sizeof(struct fuse_entry_out) + sizeof(struct fuse_open_out)),
               "CREATE (no O_EXCL) over the device node");
    CHECK(fs_forget(&fs, dev.nodeid, 1), "FORGET: %s", fs.why);
    return TEST_PASS;
}

static enum test_result sec_nodes(void)
{
    static const uint64_t unknown[] = {0, 0xdeadbeef, ~0ULL};
    struct fuse_attr a;
    struct fuse_entry_out e, h1, h2;
    uint64_t fh;
    for (unsigned i = 0; i < ARRAY_SIZE(unknown); i++) {
        FS_REFUSED(fs_getattr(&fs, unknown[i], &a), "GETATTR of node id 0x%lx", unknown[i]);
        FS_REFUSED(fs_lookup(&fs, unknown[i], "hello.txt", &e), "LOOKUP under node id 0x%lx", unknown[i]);
        FS_REFUSED(fs_open(&fs, unknown[i], FS_O_RDONLY, false, &fh), "OPEN of node id 0x%lx", unknown[i]);
    }
    FS_OK(fs_lookup(&fs, FUSE_ROOT_ID, "hello.txt", &h1), "LOOKUP hello.txt");
    FS_REFUSED(fs_read(&fs, h1.nodeid, 0xdeadbeef, 0, 64, false), "READ of hello.txt with an unknown handle");
    FS_REFUSED(fs_read(&fs, FUSE_ROOT_ID, 0xdeadbeef, 0, 4096, true), "READDIR of the root with an unknown handle");

    /* Forgotten twice, then far too often; the root "forgotten"; an unknown id forgotten. */
    CHECK(fs_forget(&fs, h1.nodeid, 1) && fs_forget(&fs, h1.nodeid, 1) && fs_forget(&fs, h1.nodeid, ~0ULL) &&
              fs_forget(&fs, FUSE_ROOT_ID, ~0ULL) && fs_forget(&fs, 0xdeadbeef, 1),
          "FORGET: %s", fs.why);
    FS_REFUSED(fs_getattr(&fs, h1.nodeid, &a), "GETATTR of hello.txt's node id forgotten (twice)");
    /* BATCH_FORGET whose count claims 1000 entries with one there. */
    struct fuse_forget_one one = {0xdeadbeef, 1};
    uint8_t *p = raw;
    struct fuse_batch_forget_in bf = {.count = 1000};
    uint32_t len = (uint32_t)(sizeof(struct fuse_in_header) + sizeof(bf) + sizeof(one)), used;
    fs_hdr(&fs, p, FUSE_BATCH_FORGET, 0, len);
    memcpy(p + sizeof(struct fuse_in_header), &bf, sizeof(bf));
    memcpy(p + sizeof(struct fuse_in_header) + sizeof(bf), &one, sizeof(one));
    struct vbuf b = {virt_to_phys(p), len};
    CHECK(fs_chain(&fs, fs.hiprio, &b, 1, 0, &used), "BATCH_FORGET with a lying count: %s", fs.why);

    FS_OK(fs_lookup(&fs, FUSE_ROOT_ID, "hello.txt", &h2), "LOOKUP hello.txt after the FORGETs");
    CHECK(h2.nodeid != h1.nodeid, "hello.txt came back with its forgotten node id %lu", h1.nodeid);
    FS_OK(fs_getattr(&fs, h2.nodeid, &a), "GETATTR hello.txt");
    CHECK(a.size == 14000, "GETATTR hello.txt: size %lu", a.size);
    CHECK(fs_forget(&fs, h2.nodeid, 1), "FORGET: %s", fs.why);
    return TEST_PASS;
}

/* A GETATTR of the root as a hand-made chain: the readable part is hdr_len bytes of a proper
 * header (claiming in_len), the writable part room bytes (none when room is 0) in a page of
 * 0x5a. Checks that nothing past room was written; returns the reply's verdict, FS_R_NOREPLY
 * for used 0. */
static int getattr_raw(uint32_t hdr_len, uint32_t in_len, uint32_t room, bool *overrun)
{
    uint8_t *hdr = raw, *out = raw + 2 * PAGE_SIZE;
    struct fuse_getattr_in gi = {0};
    uint64_t unique = fs_hdr(&fs, hdr, FUSE_GETATTR, FUSE_ROOT_ID, in_len);
    memcpy(hdr + sizeof(struct fuse_in_header), &gi, sizeof(gi));
    memset(out, 0x5a, PAGE_SIZE);
    struct vbuf b[2] = {{virt_to_phys(hdr), hdr_len}, {virt_to_phys(out), room}};
    uint32_t used;
    if (!fs_chain(&fs, fs.req, b, 1, room ? 1 : 0, &used))
        return FS_R_TIMEOUT;
    *overrun = used > room;
    for (uint32_t i = room; i < PAGE_SIZE; i++)
        *overrun |= out[i] != 0x5a;
    if (used == 0)
        return FS_R_NOREPLY;
    return fs_check_reply(&fs, (const struct fuse_out_header *)out, used, unique, room);
}

static enum test_result sec_framing(void)
{
    const uint32_t full = sizeof(struct fuse_in_header) + sizeof(struct fuse_getattr_in);
    const uint32_t reply = sizeof(struct fuse_out_header) + sizeof(struct fuse_attr_out);
    bool over = false;
    int r;

    r = getattr_raw(full, full, reply, &over); /* the control */
    CHECK(r == sizeof(struct fuse_attr_out) && !over, "GETATTR of the root by hand: %s %s", fs_err(r), why(r));
    r = getattr_raw(24, 24, reply, &over);
    CHECK(((r < 0 && r > FS_R_TIMEOUT) || r == FS_R_NOREPLY) && !over,
          "a 24-byte header (in.len 24): %s %s%s, an error or no reply expected", fs_err(r), why(r),
          over ? ", written past the room" : "");
    r = getattr_raw(24, full, reply, &over);
    CHECK(((r < 0 && r > FS_R_TIMEOUT) || r == FS_R_NOREPLY) && !over,
          "a 24-byte buffer whose in.len says %u: %s %s", full, fs_err(r), why(r));
    r = getattr_raw(full, full, 0, &over);
    CHECK(r == FS_R_NOREPLY, "GETATTR without a reply buffer: %s %s, used 0 expected", fs_err(r), why(r));
    r = getattr_raw(full, full, 8, &over);
    CHECK(r == FS_R_NOREPLY && !over, "GETATTR with 8 bytes of reply room: %s %s%s, used 0 expected", fs_err(r),
          why(r), over ? ", written past the room" : "");
    r = getattr_raw(full, full, sizeof(struct fuse_out_header) + 50, &over);
    CHECK(((r < 0 && r > FS_R_TIMEOUT) || r == FS_R_NOREPLY) && !over,
          "GETATTR with room for the header and 50 bytes: %s %s%s, an error or no reply expected", fs_err(r), why(r),
          over ? ", written past the room" : "");
    printf("# fs_hostile: reply room for the header alone: %s\n", r == FS_R_NOREPLY ? "no reply" : fs_err(r));

    r = fs_call(&fs, 9999, FUSE_ROOT_ID, NULL, 0, NULL, 0, 64);
    CHECK(r == -FS_ENOSYS, "opcode 9999: %s %s, ENOSYS expected", fs_err(r), why(r));
    r = fs_call(&fs, 0, FUSE_ROOT_ID, NULL, 0, NULL, 0, 64);
    CHECK(r < 0 && r > FS_R_TIMEOUT, "opcode 0: %s %s, an error expected", fs_err(r), why(r));

    /* READ of 1 MiB with 4 KiB of room: at most 4 KiB, nothing past it. */
    struct fuse_entry_out h;
    uint64_t fh;
    FS_OK(fs_lookup(&fs, FUSE_ROOT_ID, "hello.txt", &h), "LOOKUP hello.txt");
    FS_OK(fs_open(&fs, h.nodeid, FS_O_RDONLY, false, &fh), "OPEN hello.txt");
    uint8_t *hdr = raw, *out = raw + 2 * PAGE_SIZE;
    struct fuse_read_in ri = {.fh = fh, .offset = 0, .size = 1 << 20};
    uint64_t unique = fs_hdr(&fs, hdr, FUSE_READ, h.nodeid, sizeof(struct fuse_in_header) + sizeof(ri));
    memcpy(hdr + sizeof(struct fuse_in_header), &ri, sizeof(ri));
    memset(out, 0x5a, 2 * PAGE_SIZE);
    struct vbuf b[2] = {{virt_to_phys(hdr), sizeof(struct fuse_in_header) + sizeof(ri)},
                        {virt_to_phys(out), sizeof(struct fuse_out_header) + 4096}};
    uint32_t used;
    CHECK(fs_chain(&fs, fs.req, b, 1, 1, &used), "READ of 1 MiB: %s", fs.why);
    over = used > b[1].len;
    for (uint32_t i = b[1].len; i < 2 * PAGE_SIZE; i++)
        over |= out[i] != 0x5a;
    CHECK(!over, "READ of 1 MiB into 4 KiB: used %u, written past the room", used);
    r = used ? fs_check_reply(&fs, (const struct fuse_out_header *)out, used, unique, b[1].len) : FS_R_NOREPLY;
    CHECK(r != FS_R_BADREPLY, "READ of 1 MiB into 4 KiB: %s", fs.why);
    if (r > 0)
        CHECK(!memcmp(out + sizeof(struct fuse_out_header), "mica-fs 00000\nmica-fs 00001\n", 28),
              "READ of 1 MiB into 4 KiB: %d bytes, not the file's", r);
    printf("# fs_hostile: READ of 1 MiB into 4 KiB: %s\n", r == FS_R_NOREPLY ? "no reply" : fs_err(r));
    FS_OK(fs_release(&fs, h.nodeid, fh, false), "RELEASE hello.txt");
    CHECK(fs_forget(&fs, h.nodeid, 1), "FORGET: %s", fs.why);
    return TEST_PASS;
}

/* ---- inodes: LOOKUPs without FORGET until the bound ---- */

#define SLOT_SIZE 256 /* in: header + name (< 64); out at +64: header + entry (144) */
#define SLOT_OUT  64
#define SLOT_REPLY (sizeof(struct fuse_out_header) + sizeof(struct fuse_entry_out))

struct flood {
    uint64_t many;                   /* node id of many/ */
    struct fuse_forget_one *held;    /* the nodes looked up, one reference each */
    uint32_t nheld, enfile, next;    /* next: the next f<N> to look up */
    uint64_t first_enfile;           /* index of the first name refused */
    uint8_t *slots;
    uint64_t unique[64];
};

/* Looks up f<next> .. in batches of up to `batch` in flight until `count` names have been asked
 * (stop_at_enfile: or until a batch saw ENFILE). Every reply is a node or ENFILE. */
static enum test_result flood_run(struct flood *f, uint32_t count, unsigned batch, bool stop_at_enfile,
                                  uint32_t *ok, uint32_t *refused)
{
    struct virtq *vq = fs.req;
    uint32_t end = f->next + count;
    *ok = *refused = 0;
    while (f->next < end) {
        unsigned n = 0;
        for (; n < batch && f->next < end; n++, f->next++) {
            uint8_t *s = f->slots + n * SLOT_SIZE;
            char name[24];
            int nl = snprintf(name, sizeof(name), "f%u", f->next) + 1;
            f->unique[n] = fs_hdr(&fs, s, FUSE_LOOKUP, f->many, (uint32_t)(sizeof(struct fuse_in_header) + nl));
            memcpy(s + sizeof(struct fuse_in_header), name, (size_t)nl);
            struct vbuf b[2] = {{virt_to_phys(s), (uint32_t)(sizeof(struct fuse_in_header) + nl)},
                                {virt_to_phys(s + SLOT_OUT), SLOT_REPLY}};
            CHECK(vq_add(vq, b, 1, 1, (void *)(uintptr_t)(n + 1), false) >= 0, "flood: no room in the queue");
        }
        vq_kick(vq);
        CHECK(vq_wait_used(vq, (uint16_t)n, FS_TIMEOUT),
              "flood: %u LOOKUPs in flight, %u back within 5 s", n, (uint16_t)(vq_used_idx(vq) - vq->last_used));
        bool saw = false;
        for (unsigned k = 0; k < n; k++) {
            void *tok;
            uint32_t used;
            CHECK(vq_pop(vq, &tok, &used), "flood: used entry %u of %u missing", k, n);
            unsigned i = (unsigned)(uintptr_t)tok - 1;
            uint8_t *out = f->slots + i * SLOT_SIZE + SLOT_OUT;
            int r = fs_check_reply(&fs, (const struct fuse_out_header *)out, used, f->unique[i], SLOT_REPLY);
            uint32_t idx = f->next - n + i;
            if (r == -FS_ENFILE) {
                if (!f->enfile++)
                    f->first_enfile = idx;
                (*refused)++;
                saw = true;
                continue;
            }
            CHECK(r == (int)sizeof(struct fuse_entry_out), "flood: LOOKUP many/f%u: %s %s", idx, fs_err(r), why(r));
            struct fuse_entry_out e;
            memcpy(&e, out + sizeof(struct fuse_out_header), sizeof(e));
            CHECK(e.nodeid > FUSE_ROOT_ID && (e.attr.mode & FS_S_IFMT) == FS_S_IFREG,
                  "flood: LOOKUP many/f%u: node %lu mode 0x%x", idx, e.nodeid, e.attr.mode);
            f->held[f->nheld++] = (struct fuse_forget_one){e.nodeid, 1};
            (*ok)++;
        }
        if (saw && stop_at_enfile)
            break;
    }
    return TEST_PASS;
}

static enum test_result sec_inodes(void)
{
    uint32_t nmany = (uint32_t)cmdline_get_u64("fs_many", 0);
    uint32_t bound = (uint32_t)cmdline_get_u64("fs_max_inodes", 0);
    CHECK(bound > 0, "needs fs_max_inodes= (the share's max_inodes=)");
    CHECK(nmany >= bound + 64, "fs_many=%u: the share needs at least fs_max_inodes + 64 = %u files in many/", nmany,
          bound + 64);
    struct flood f = {0};
    struct fuse_entry_out m, e;
    FS_OK(fs_lookup(&fs, FUSE_ROOT_ID, "many", &m), "LOOKUP many");
    f.many = m.nodeid;
    f.held = alloc_pages(ALIGN_UP((size_t)nmany * sizeof(*f.held), PAGE_SIZE) / PAGE_SIZE);
    f.slots = alloc_pages(64 * SLOT_SIZE / PAGE_SIZE);
    CHECK(f.held && f.slots, "out of memory for %u node ids", nmany);
    unsigned batch = fs.req->num / 2 < 64 ? fs.req->num / 2 : 64;
    uint32_t ok, refused;

    enum test_result t = flood_run(&f, nmany - 32, batch, true, &ok, &refused);
    if (t != TEST_PASS)
        return t;
    printf("# fs_hostile: %u LOOKUPs found their file, then ENFILE from many/f%lu on (bound %u)\n", f.nheld,
           f.first_enfile, bound);
    CHECK(f.enfile, "%u LOOKUPs of distinct files without FORGET, no ENFILE (bound %u)", f.nheld, bound);
    /* Held: the root, many/ and the flood's nodes. */
    CHECK(f.nheld + 2 <= bound + 1 && f.nheld + 2 + 8 >= bound,
          "ENFILE after %u nodes held besides the root and many/; the bound is %u", f.nheld, bound);
    CHECK(f.enfile == f.next - f.first_enfile, "after the first ENFILE (f%lu), %u of the %lu later names refused",
          f.first_enfile, f.enfile, f.next - f.first_enfile);
    t = flood_run(&f, 16, batch, false, &ok, &refused);
    if (t != TEST_PASS)
        return t;
    CHECK(ok == 0 && refused == 16, "at the bound, 16 more names: %u found, %u refused", ok, refused);
    int r = fs_lookup(&fs, FUSE_ROOT_ID, "hello.txt", &e);
    CHECK(r == -FS_ENFILE, "at the bound, LOOKUP hello.txt: %s %s, ENFILE expected", fs_err(r), why(r));
    t = still_answers("the inode flood");
    if (t != TEST_PASS)
        return t;
    /* Nodes looked up early: mica closed their descriptors for room long ago (the share holds
     * fewer than the bound, max_fds=), so each GETATTR finds its file again by name. */
    uint32_t checked = 0;
    for (uint32_t i = 0; i < f.nheld; i += 61, checked++) {
        struct fuse_attr a;
        r = fs_getattr(&fs, f.held[i].nodeid, &a);
        CHECK(r >= 0 && (a.mode & FS_S_IFMT) == FS_S_IFREG, "GETATTR of the flood's node %u (many/f%u): %s %s", i, i,
              fs_err(r), why(r));
    }
    printf("# fs_hostile: GETATTR of %u of the flood's nodes, from the first on: all found\n", checked);

    CHECK(fs_batch_forget(&fs, f.held, f.nheld), "BATCH_FORGET of %u nodes: %s", f.nheld, fs.why);
    uint32_t forgotten = f.nheld;
    f.nheld = 0;
    f.next = (uint32_t)f.first_enfile;
    t = flood_run(&f, 16, batch, false, &ok, &refused);
    if (t != TEST_PASS)
        return t;
    CHECK(ok == 16 && refused == 0, "after forgetting %u nodes, the 16 names refused before: %u found, %u refused",
          forgotten, ok, refused);
    printf("# fs_hostile: after a BATCH_FORGET of %u nodes, the names refused before are found\n", forgotten);
    CHECK(fs_batch_forget(&fs, f.held, f.nheld) && fs_forget(&fs, f.many, 1), "FORGET: %s", fs.why);
    return TEST_PASS;
}

static enum test_result test_fs_hostile(void)
{
    const char *tag = cmdline_get("fs_tag");
    if (!fs_find(NULL))
        return test_skip("no virtio-fs (mica --share DIR,tag=TAG)");
    CHECK(tag && *tag, "needs fs_tag= and fs_many= with the share of tests/integration/guest_fs.sh");
    struct vdev *d = fs_find(tag);
    CHECK(d, "no virtio-fs has the tag '%s'", tag);
    if (!raw)
        raw = alloc_pages(RAW_PAGES);
    CHECK(raw, "out of memory");
    CHECK(fs_up(&fs, d), "bring-up failed (Status 0x%x)", vdev_status(d));
    struct fuse_init_out init;
    FS_OK(fs_init(&fs, &init), "INIT");
    CHECK(init.major == FUSE_KERNEL_VERSION, "INIT answered major %u", init.major);

    RUN(sec_names);
    RUN(sec_links);
    RUN(sec_nodes);
    RUN(sec_framing);
    RUN(sec_inodes);

    /* The driver starts over without a reset: INIT again, then requests work. */
    FS_OK(fs_init(&fs, &init), "INIT again");
    CHECK(init.major == FUSE_KERNEL_VERSION, "INIT again answered major %u", init.major);
    struct fuse_entry_out h;
    FS_OK(fs_lookup(&fs, FUSE_ROOT_ID, "hello.txt", &h), "LOOKUP hello.txt after INIT again");
    CHECK(h.attr.size == 14000, "hello.txt: size %lu", h.attr.size);
    CHECK(fs_forget(&fs, h.nodeid, 1), "FORGET: %s", fs.why);
    return still_answers("INIT again");
}
TEST_DESTRUCTIVE(fs_hostile, test_fs_hostile);
