/* --share's option string: PATH[,tag=TAG][,ro][,timeout=SECONDS] into struct fs_opts. */
#include <errno.h>
#include <string.h>

#include "devices/virtio/fs.h"
#include "tests/unit/test.h"

static void defaults(void)
{
	struct fs_opts o;
	struct err e = { "" };

	CHECK_EQ(fs_parse_opts("/srv/share", &o, &e), 0);
	CHECK(!strcmp(o.path, "/srv/share"));
	CHECK(!strcmp(o.tag, FS_DEFAULT_TAG));
	CHECK(!o.ro && !o.timeout_set);
	CHECK_EQ(fs_opts_timeout(&o), FS_TIMEOUT_RW);
	CHECK_EQ(fs_parse_opts("/srv/share,ro", &o, &e), 0);
	CHECK(o.ro);
	CHECK_EQ(fs_opts_timeout(&o), FS_TIMEOUT_RO);
}

static void every_option(void)
{
	struct fs_opts o;
	struct err e = { "" };

	CHECK_EQ(fs_parse_opts("/a,,b,tag=root-fs,ro,timeout=30", &o, &e), 0);
	CHECK(!strcmp(o.path, "/a,b"));
	CHECK(!strcmp(o.tag, "root-fs"));
	CHECK(o.ro && o.timeout_set);
	CHECK_EQ(o.timeout, 30);
	CHECK_EQ(fs_opts_timeout(&o), 30);
	/* timeout=0 is allowed: no caching at all, on a read-only share too. */
	CHECK_EQ(fs_parse_opts("/,timeout=0,ro", &o, &e), 0);
	CHECK_EQ(fs_opts_timeout(&o), 0);
	/* The longest tag the config space holds. */
	CHECK_EQ(fs_parse_opts("/,tag=abcdefghijklmnopqrstuvwxyz0123456789", &o, &e), 0);
	CHECK_EQ(strlen(o.tag), FS_TAG_MAX);
	/* hostfs's bounds: 0 is its default; hostfs_open checks the rest (max_fds >= 16). */
	CHECK(o.max_inodes == 0 && o.max_fds == 0);
	CHECK_EQ(fs_parse_opts("/x,max_inodes=4194304,max_fds=64", &o, &e), 0);
	CHECK_EQ(o.max_inodes, 4194304);
	CHECK_EQ(o.max_fds, 64);
	/* Extended attributes are served unless xattr=off. */
	CHECK(!o.no_xattr);
	CHECK_EQ(fs_parse_opts("/x,xattr=off", &o, &e), 0);
	CHECK(o.no_xattr);
	CHECK_EQ(fs_parse_opts("/x,xattr=off,xattr=on", &o, &e), 0);
	CHECK(!o.no_xattr);
	/* The last of a repeated option wins, as for --disk. */
	CHECK_EQ(fs_parse_opts("/x,tag=a,tag=b", &o, &e), 0);
	CHECK(!strcmp(o.tag, "b"));
}

static void errors(void)
{
	static const struct {
		const char *spec, *msg;
	} bad[] = {
		{ "", "give a directory" },
		{ ",ro", "give a directory" },
		{ "/x,rw", "unknown option 'rw'" },
		{ "/x,ro=1", "unknown option 'ro=1'" },
		{ "/x,tag", "unknown option 'tag'" },
		{ "/x,tag=", "tag ''" },
		{ "/x,tag=abcdefghijklmnopqrstuvwxyz01234567890", "1 to 36 printable" },
		{ "/x,tag=a b", "tag 'a b'" },
		{ "/x,tag=caf\xc3\xa9", "printable" },
		{ "/x,timeout=", "timeout ''" },
		{ "/x,timeout=-1", "timeout '-1'" },
		{ "/x,timeout=1.5", "timeout '1.5'" },
		{ "/x,timeout=99999999999", "whole seconds" },
		{ "/x,timeout=31536001", "0 to 31536000" },
		{ "/x,ro,", "empty option" },
		{ "/x,max_inodes=0", "max_inodes '0': give a number from 1 to 4194304" },
		{ "/x,max_inodes=4194305", "max_inodes '4194305'" },
		{ "/x,max_fds=lots", "max_fds 'lots'" },
		{ "/x,max_fds", "unknown option 'max_fds'" },
		{ "/x,xattr=no", "xattr 'no': give on or off" },
		{ "/x,xattr", "unknown option 'xattr'" },
	};
	struct fs_opts o;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct err e = { "" };

		CHECK_EQ(fs_parse_opts(bad[i].spec, &o, &e), -EINVAL);
		if (!strstr(e.msg, bad[i].msg) || !strstr(e.msg, "--share") || strchr(e.msg, '\n'))
			printf("#   '%s': got '%s'\n", bad[i].spec, e.msg);
		CHECK(strstr(e.msg, bad[i].msg));
		CHECK(strstr(e.msg, "--share"));
		CHECK(!strchr(e.msg, '\n'));
	}
}

static void long_path(void)
{
	static char spec[PATH_MAX + 8];
	struct fs_opts o;
	struct err e = { "" };

	memset(spec, 'a', PATH_MAX);
	spec[0] = '/';
	spec[PATH_MAX] = '\0';
	CHECK_EQ(fs_parse_opts(spec, &o, &e), -EINVAL);
	CHECK(strstr(e.msg, "too long"));
	spec[PATH_MAX - 1] = '\0';
	CHECK_EQ(fs_parse_opts(spec, &o, &e), 0);
	CHECK_EQ(strlen(o.path), PATH_MAX - 1);
}

TEST_MAIN("fs_opts", T(defaults), T(every_option), T(errors), T(long_path))
