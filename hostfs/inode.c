/* The node table: one slot per known inode, found by id (slot and sequence number, see
 * hostfs/internal.h) or by (st_dev, st_ino) through a chained hash. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hostfs/internal.h"

/* The fewest bits b with every slot index below 2^b - 1. */
static unsigned slot_bits(uint32_t nslots)
{
	unsigned b = 1;

	while ((1ull << b) - 1 < nslots)
		b++;
	return b;
}

static uint32_t hash_key(const struct hostfs *fs, dev_t dev, ino_t ino)
{
	uint64_t x = (uint64_t)ino * 0x9e3779b97f4a7c15ull ^ (uint64_t)dev * 0xc2b2ae3d27d4eb4full;

	x ^= x >> 31;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 29;
	return (uint32_t)x & fs->hash_mask;
}

static void hash_insert(struct hostfs *fs, uint32_t slot)
{
	struct hostfs_node *n = &fs->nodes[slot];
	uint32_t k = hash_key(fs, n->dev, n->ino);

	n->next = fs->hash[k];
	fs->hash[k] = slot;
}

static void hash_remove(struct hostfs *fs, uint32_t slot)
{
	struct hostfs_node *n = &fs->nodes[slot];
	uint32_t *p = &fs->hash[hash_key(fs, n->dev, n->ino)];

	while (*p != HOSTFS_NONE && *p != slot)
		p = &fs->nodes[*p].next;
	if (*p == slot)
		*p = n->next;
}

static void free_list_reset(struct hostfs *fs)
{
	fs->node_free = HOSTFS_NONE;
	for (uint32_t i = fs->nnodes - 1; i >= 1; i--) {
		if (fs->nodes[i].id)
			continue;
		fs->nodes[i].next = fs->node_free;
		fs->node_free = i;
	}
}

int hostfs_nodes_init(struct hostfs *fs, uint32_t max_inodes)
{
	uint32_t hsize = 64;

	fs->nnodes = max_inodes + 1;
	fs->node_bits = slot_bits(fs->nnodes);
	while (hsize < fs->nnodes)
		hsize <<= 1;
	fs->hash_mask = hsize - 1;
	fs->nodes = calloc(fs->nnodes, sizeof(*fs->nodes));
	fs->hash = malloc(hsize * sizeof(*fs->hash));
	if (!fs->nodes || !fs->hash)
		return -ENOMEM;
	memset(fs->hash, 0xff, hsize * sizeof(*fs->hash));
	for (uint32_t i = 0; i < fs->nnodes; i++)
		fs->nodes[i].fd = -1;
	free_list_reset(fs);
	return 0;
}

void hostfs_nodes_free(struct hostfs *fs)
{
	if (fs->nodes) {
		hostfs_nodes_clear(fs);
		if (fs->nodes[0].fd >= 0)
			close(fs->nodes[0].fd);
	}
	free(fs->nodes);
	free(fs->hash);
	fs->nodes = NULL;
	fs->hash = NULL;
}

struct hostfs_node *hostfs_node_get(struct hostfs *fs, uint64_t id)
{
	uint64_t slot;

	if (id == HOSTFS_ROOT_ID)
		return &fs->nodes[0];
	slot = id & ((1ull << fs->node_bits) - 1);
	if (slot == 0 || slot >= fs->nnodes || fs->nodes[slot].id != id)
		return NULL;
	return &fs->nodes[slot];
}

struct hostfs_node *hostfs_node_find(struct hostfs *fs, dev_t dev, ino_t ino)
{
	for (uint32_t s = fs->hash[hash_key(fs, dev, ino)]; s != HOSTFS_NONE; s = fs->nodes[s].next) {
		struct hostfs_node *n = &fs->nodes[s];

		if (n->ino == ino && n->dev == dev)
			return n;
	}
	return NULL;
}

bool hostfs_node_room(const struct hostfs *fs)
{
	return fs->node_free != HOSTFS_NONE && fs->node_seq < (UINT64_MAX >> fs->node_bits);
}

void hostfs_node_root(struct hostfs *fs, int fd, const struct stat *st, uint64_t mnt_id,
		      bool pseudo)
{
	struct hostfs_node *n = &fs->nodes[0];

	n->id = HOSTFS_ROOT_ID;
	n->dev = st->st_dev;
	n->ino = st->st_ino;
	n->mnt_id = mnt_id;
	n->fd = fd;
	n->type = S_IFDIR;
	n->pseudo = pseudo;
	hash_insert(fs, 0);
}

int hostfs_node_add(struct hostfs *fs, int fd, const struct stat *st, uint64_t mnt_id,
		    bool pseudo, struct hostfs_node **out)
{
	uint32_t slot = fs->node_free;
	struct hostfs_node *n;

	if (!hostfs_node_room(fs))
		return -ENFILE;
	n = &fs->nodes[slot];
	fs->node_free = n->next;
	n->id = ++fs->node_seq << fs->node_bits | slot;
	n->refs = 1;
	n->dev = st->st_dev;
	n->ino = st->st_ino;
	n->mnt_id = mnt_id;
	n->fd = fd;
	n->type = pseudo ? S_IFDIR : (st->st_mode & S_IFMT);
	n->pseudo = pseudo;
	hash_insert(fs, slot);
	fs->inodes_used++;
	*out = n;
	return 0;
}

static void node_drop(struct hostfs *fs, uint32_t slot)
{
	struct hostfs_node *n = &fs->nodes[slot];

	hash_remove(fs, slot);
	close(n->fd);
	n->fd = -1;
	n->id = 0;
	n->refs = 0;
	fs->inodes_used--;
}

void hostfs_node_unref(struct hostfs *fs, struct hostfs_node *n, uint64_t count)
{
	uint32_t slot = (uint32_t)(n - fs->nodes);

	if (slot == 0)
		return;
	n->refs -= count < n->refs ? count : n->refs;
	if (n->refs)
		return;
	node_drop(fs, slot);
	n->next = fs->node_free;
	fs->node_free = slot;
}

void hostfs_nodes_clear(struct hostfs *fs)
{
	for (uint32_t i = 1; i < fs->nnodes; i++)
		if (fs->nodes[i].id)
			node_drop(fs, i);
	free_list_reset(fs);
}

void hostfs_node_attr(const struct hostfs_node *n, struct stat *st)
{
	if (!n->pseudo)
		return;
	/* Identity and times stay the host's; the rest is an empty directory nobody may change. */
	st->st_mode = S_IFDIR | 0555;
	st->st_nlink = 2;
	st->st_size = 0;
	st->st_blocks = 0;
	st->st_rdev = 0;
}

void hostfs_forget(struct hostfs *fs, uint64_t id, uint64_t n)
{
	struct hostfs_node *node = hostfs_node_get(fs, id);

	if (node)
		hostfs_node_unref(fs, node, n);
}
