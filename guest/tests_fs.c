/* virtio-fs (device ID 26), driven directly with FUSE requests (fs.h): mica --share DIR,tag=TAG
 * and `fs_tag=TAG` on the command line. The share is the host's fixture
 * (tests/integration/guest_fs.sh), which checks the host side afterwards:
 *   hello.txt  the lines "mica-fs NNNNN\n" for NNNNN = 00000 .. 00999 (14000 bytes)
 *   a/         a directory (with a file b: tests_fs_hostile.c)
 *
 * fs: the tag is fs_tag's and there is a request queue; INIT answers major 7; LOOKUP hello.txt
 * is a regular file of 14000 bytes and GETATTR agrees; OPEN + READ return the pattern (whole,
 * at an offset, nothing at the end); CREATE guest.txt + two WRITEs (the host checks the file:
 * "guest-fs NNNNN\n" for 00000 .. 00599), GETATTR shows its size and a READ gives it back;
 * CREATE with O_TRUNC over the existing guest.txt: the same node id, an empty file in the
 * reply and in GETATTR, written again;
 * OPENDIR + READDIR list hello.txt, a and guest.txt with their types; RELEASE(DIR); FORGET of
 * both nodes makes their ids stale. */
#include "fs.h"

#define HELLO_LINES 1000u
#define HELLO_LINE  14u  /* "mica-fs 00000\n" */
#define GUEST_LINES 600u
#define GUEST_LINE  15u  /* "guest-fs 00000\n" */

static struct fs fs;
static char pattern[GUEST_LINES * GUEST_LINE + 1];

/* Prints a failed request's details: the reply's error, or why the protocol broke. */
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

static void hello_line(unsigned i, char *out) { snprintf(out, HELLO_LINE + 1, "mica-fs %05u\n", i); }

/* Does data (len bytes at file offset off) match hello.txt's pattern? */
static bool hello_matches(const uint8_t *data, uint32_t len, uint64_t off, uint64_t *bad)
{
    char line[HELLO_LINE + 1];
    for (uint32_t i = 0; i < len; i++) {
        uint64_t at = off + i;
        hello_line((unsigned)(at / HELLO_LINE), line);
        if (data[i] != (uint8_t)line[at % HELLO_LINE]) {
            *bad = at;
            return false;
        }
    }
    return true;
}

/* Which of the wanted names a READDIR of node lists, with their DT_ types. */
struct dir_want {
    const char *name;
    unsigned type;
    bool seen;
};

static enum test_result list_dir(uint64_t node, struct dir_want *w, unsigned nw, unsigned *entries)
{
    uint64_t fh, off = 0;
    FS_OK(fs_open(&fs, node, FS_O_RDONLY | FS_O_DIRECTORY, true, &fh), "OPENDIR");
    *entries = 0;
    for (unsigned round = 0; round < 64; round++) {
        int r = fs_read(&fs, node, fh, off, 4096, true);
        FS_OK(r, "READDIR at offset %lu", off);
        if (r == 0)
            break;
        for (uint32_t at = 0; at < (uint32_t)r;) {
            struct fuse_dirent de;
            CHECK((uint32_t)r - at >= sizeof(de), "READDIR: a record header cut at byte %u of %d", at, r);
            memcpy(&de, fs.payload + at, sizeof(de));
            CHECK(de.namelen > 0 && de.namelen <= 255 && FUSE_DIRENT_SIZE(de.namelen) <= (uint32_t)r - at,
                  "READDIR: record at byte %u of %d: namelen %u", at, r, de.namelen);
            const char *name = (const char *)fs.payload + at + sizeof(de);
            for (unsigned i = 0; i < nw; i++)
                if (strlen(w[i].name) == de.namelen && !memcmp(w[i].name, name, de.namelen)) {
                    CHECK(de.type == w[i].type, "READDIR: %s has type %u, %u expected", w[i].name, de.type,
                          w[i].type);
                    w[i].seen = true;
                }
            off = de.off;
            at += (uint32_t)FUSE_DIRENT_SIZE(de.namelen);
            (*entries)++;
        }
    }
    FS_OK(fs_release(&fs, node, fh, true), "RELEASEDIR");
    return TEST_PASS;
}

/* CREATE name with O_RDWR | O_CREAT | O_TRUNC: the reply shows an empty regular file (so does
 * GETATTR: an existing file was truncated), two WRITEs (4096 bytes at 0, the rest at 4096) of
 * the guest pattern, GETATTR shows its size, a READ gives it back, RELEASE. */
static enum test_result create_write(const char *name, struct fuse_entry_out *created)
{
    const uint32_t total = GUEST_LINES * GUEST_LINE;
    struct fuse_create_in ci = {.flags = FS_O_RDWR | FS_O_CREAT | FS_O_TRUNC, .mode = FS_S_IFREG | 0644,
                                .umask = 022};
    struct fuse_open_out opened;
    struct fuse_attr a;
    int r = fs_call(&fs, FUSE_CREATE, FUSE_ROOT_ID, &ci, sizeof(ci), name, (uint32_t)strlen(name) + 1,
                    sizeof(struct fuse_entry_out) + sizeof(struct fuse_open_out));
    FS_OK(r, "CREATE %s", name);
    CHECK(r == sizeof(struct fuse_entry_out) + sizeof(opened), "CREATE %s: payload of %d bytes", name, r);
    memcpy(created, fs.payload, sizeof(*created));
    memcpy(&opened, fs.payload + sizeof(*created), sizeof(opened));
    FS_OK(fs_getattr(&fs, created->nodeid, &a), "GETATTR %s after CREATE", name);
    CHECK((created->attr.mode & FS_S_IFMT) == FS_S_IFREG && created->nodeid > FUSE_ROOT_ID,
          "CREATE %s: node %lu mode 0x%x", name, created->nodeid, created->attr.mode);
    CHECK(created->attr.size == 0 && a.size == 0, "CREATE %s with O_TRUNC: the reply says %lu bytes, GETATTR %lu; "
          "0 expected", name, created->attr.size, a.size);
    for (uint32_t off = 0; off < total;) {
        uint32_t n = off ? total - off : 4096;
        struct fuse_write_in wi = {.fh = opened.fh, .offset = off, .size = n};
        struct fuse_write_out wo;
        r = fs_call(&fs, FUSE_WRITE, created->nodeid, &wi, sizeof(wi), pattern + off, n, sizeof(wo));
        FS_OK(r, "WRITE of %u bytes at %u", n, off);
        memcpy(&wo, fs.payload, sizeof(wo));
        CHECK(r == sizeof(wo) && wo.size == n, "WRITE of %u bytes at %u: payload %d, size %u", n, off, r, wo.size);
        off += n;
    }
    FS_OK(fs_getattr(&fs, created->nodeid, &a), "GETATTR %s", name);
    CHECK(a.size == total, "GETATTR %s: size %lu after writing %u bytes", name, a.size, total);
    r = fs_read(&fs, created->nodeid, opened.fh, 0, 16384, false);
    CHECK(r == (int)total && !memcmp(fs.payload, pattern, total), "READ %s back: %s %s", name, fs_err(r), why(r));
    FS_OK(fs_release(&fs, created->nodeid, opened.fh, false), "RELEASE %s", name);
    return TEST_PASS;
}

static enum test_result test_fs(void)
{
    struct vdev *d = fs_find(NULL);
    if (!d)
        return test_skip("no virtio-fs (mica --share DIR,tag=TAG)");
    const char *want_tag = cmdline_get("fs_tag");
    if (!want_tag || !*want_tag)
        return test_skip("virtio-fs present but no fs_tag=: the test needs the share of "
                         "tests/integration/guest_fs.sh");
    char tag[VIRTIO_FS_TAG_LEN + 1];
    fs_tag(d, tag);
    d = fs_find(want_tag);
    CHECK(d, "no virtio-fs has the tag '%s' (the first one's is '%s')", want_tag, tag);
    uint32_t nrq = vdev_config_read(d, FSCFG_NUM_REQUEST_QUEUES, 4);
    printf("# virtio-fs: tag '%s' on %s, %u request queue(s)\n", want_tag, vdev_transport_name(d), nrq);
    CHECK(nrq >= 1, "num_request_queues is %u", nrq);
    CHECK(fs_up(&fs, d), "bring-up failed (Status 0x%x)", vdev_status(d));

    struct fuse_init_out init;
    FS_OK(fs_init(&fs, &init), "INIT");
    printf("# virtio-fs: INIT %u.%u, max_write %u, max_readahead %u, flags 0x%x\n", init.major, init.minor,
           init.max_write, init.max_readahead, init.flags);
    CHECK(init.major == FUSE_KERNEL_VERSION, "INIT answered major %u, 7 expected", init.major);
    CHECK(init.max_write >= 4096, "INIT: max_write %u below 4096", init.max_write);

    /* hello.txt: lookup, attributes, content */
    struct fuse_entry_out hello;
    struct fuse_attr a;
    FS_OK(fs_lookup(&fs, FUSE_ROOT_ID, "hello.txt", &hello), "LOOKUP hello.txt");
    CHECK(hello.nodeid != 0 && hello.nodeid != FUSE_ROOT_ID, "LOOKUP hello.txt: node id %lu", hello.nodeid);
    CHECK((hello.attr.mode & FS_S_IFMT) == FS_S_IFREG, "LOOKUP hello.txt: mode 0x%x", hello.attr.mode);
    CHECK(hello.attr.size == HELLO_LINES * HELLO_LINE, "LOOKUP hello.txt: size %lu", hello.attr.size);
    FS_OK(fs_getattr(&fs, hello.nodeid, &a), "GETATTR hello.txt");
    CHECK(a.size == HELLO_LINES * HELLO_LINE && a.ino == hello.attr.ino && a.mode == hello.attr.mode,
          "GETATTR hello.txt: size %lu ino %lu mode 0x%x, LOOKUP said %lu %lu 0x%x", a.size, a.ino, a.mode,
          hello.attr.size, hello.attr.ino, hello.attr.mode);

    uint64_t fh, bad = 0;
    FS_OK(fs_open(&fs, hello.nodeid, FS_O_RDONLY, false, &fh), "OPEN hello.txt");
    int r = fs_read(&fs, hello.nodeid, fh, 0, 16384, false);
    FS_OK(r, "READ hello.txt");
    CHECK(r == (int)(HELLO_LINES * HELLO_LINE), "READ of 16384 bytes at 0 returned %d of the file's %u", r,
          HELLO_LINES * HELLO_LINE);
    CHECK(hello_matches(fs.payload, (uint32_t)r, 0, &bad), "READ: byte %lu differs from the pattern", bad);
    r = fs_read(&fs, hello.nodeid, fh, 7001, 100, false);
    CHECK(r == 100 && hello_matches(fs.payload, 100, 7001, &bad), "READ of 100 bytes at 7001: %s, byte %lu",
          fs_err(r), bad);
    r = fs_read(&fs, hello.nodeid, fh, HELLO_LINES * HELLO_LINE, 4096, false);
    CHECK(r == 0, "READ at the end of the file: %s %s, 0 bytes expected", fs_err(r), why(r));
    FS_OK(fs_release(&fs, hello.nodeid, fh, false), "RELEASE hello.txt");

    /* guest.txt: created, written in two requests, read back (the host checks it too); then
     * created again over itself, which truncates it, and written again. */
    for (unsigned i = 0; i < GUEST_LINES; i++)
        snprintf(pattern + i * GUEST_LINE, GUEST_LINE + 1, "guest-fs %05u\n", i);
    struct fuse_entry_out created, again;
    enum test_result t = create_write("guest.txt", &created);
    if (t != TEST_PASS)
        return t;
    CHECK(created.nodeid != hello.nodeid, "CREATE: node id %lu is hello.txt's", created.nodeid);
    t = create_write("guest.txt", &again);
    if (t != TEST_PASS)
        return t;
    CHECK(again.nodeid == created.nodeid, "CREATE over the existing guest.txt: node id %lu, %lu before (one "
          "id per inode while referenced)", again.nodeid, created.nodeid);

    /* the root directory */
    struct dir_want w[] = {{"hello.txt", FS_DT_REG, false}, {"a", FS_DT_DIR, false}, {"guest.txt", FS_DT_REG, false}};
    unsigned entries;
    t = list_dir(FUSE_ROOT_ID, w, ARRAY_SIZE(w), &entries);
    if (t != TEST_PASS)
        return t;
    for (unsigned i = 0; i < ARRAY_SIZE(w); i++)
        CHECK(w[i].seen, "READDIR of the root (%u entries) does not list %s", entries, w[i].name);
    printf("# virtio-fs: READDIR of the root: %u entries, hello.txt, a and guest.txt among them\n", entries);

    /* FORGET: hello.txt was looked up once, guest.txt created twice; forgotten, the ids are
     * stale. */
    CHECK(fs_forget(&fs, hello.nodeid, 1) && fs_forget(&fs, created.nodeid, 2), "FORGET: %s", fs.why);
    r = fs_getattr(&fs, hello.nodeid, &a);
    CHECK(r < 0 && r > FS_R_TIMEOUT, "GETATTR of hello.txt's forgotten node id: %s %s, an error expected",
          fs_err(r), why(r));
    r = fs_getattr(&fs, created.nodeid, &a);
    CHECK(r < 0 && r > FS_R_TIMEOUT, "GETATTR of guest.txt's forgotten node id: %s %s, an error expected",
          fs_err(r), why(r));
    FS_OK(fs_getattr(&fs, FUSE_ROOT_ID, &a), "GETATTR of the root after the FORGETs");
    CHECK((a.mode & FS_S_IFMT) == FS_S_IFDIR, "the root's mode is 0x%x", a.mode);
    CHECK(!(vdev_status(d) & VIRTIO_S_NEEDS_RESET), "Status 0x%x: NEEDS_RESET", vdev_status(d));
    return TEST_PASS;
}
TEST(fs, test_fs);
