/* The node table: one slot per known inode, found by id (slot and sequence number, see
 * hostfs/internal.h) or by (st_dev, st_ino) through a chained hash that grows with the table;
 * each node's place (parent and name) for finding it again. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hostfs/internal.h"

#define HASH_MIN 1024u

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

	n->next = fs->hash[k] ? fs->hash[k] - 1 : HOSTFS_NONE;
	fs->hash[k] = slot + 1;
}

static void hash_remove(struct hostfs *fs, uint32_t slot)
{
	struct hostfs_node *n = &fs->nodes[slot];
	uint32_t *head = &fs->hash[hash_key(fs, n->dev, n->ino)];
	uint32_t s = *head ? *head - 1 : HOSTFS_NONE;

	if (s == slot) {
		*head = n->next == HOSTFS_NONE ? 0 : n->next + 1;
		return;
	}
	while (s != HOSTFS_NONE && fs->nodes[s].next != slot)
		s = fs->nodes[s].next;
	if (s != HOSTFS_NONE)
		fs->nodes[s].next = n->next;
}

/* Doubles the buckets once the nodes outnumber them (if memory allows; chains only get longer
 * otherwise). */
static void hash_grow(struct hostfs *fs)
{
	uint32_t size = fs->hash_mask + 1, *h;

	if (fs->inodes_used < size || size >= fs->nnodes)
		return;
	h = calloc((size_t)size * 2, sizeof(*h));
	if (!h)
		return;
	free(fs->hash);
	fs->hash = h;
	fs->hash_mask = size * 2 - 1;
	for (uint32_t i = 0; i < fs->node_top; i++)
		if (fs->nodes[i].id)
			hash_insert(fs, i);
}

int hostfs_nodes_init(struct hostfs *fs, uint32_t max_inodes)
{
	fs->nnodes = max_inodes + 1;
	fs->node_bits = slot_bits(fs->nnodes);
	fs->hash_mask = HASH_MIN - 1;
	/* calloc: pages of slots never used are never touched. */
	fs->nodes = calloc(fs->nnodes, sizeof(*fs->nodes));
	fs->hash = calloc(HASH_MIN, sizeof(*fs->hash));
	if (!fs->nodes || !fs->hash)
		return -ENOMEM;
	fs->nodes[0].fd = -1;
	fs->node_top = 1;
	fs->node_free = HOSTFS_NONE;
	fs->lru_head = fs->lru_tail = HOSTFS_NONE;
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
	if (slot == 0 || slot >= fs->node_top || fs->nodes[slot].id != id)
		return NULL;
	return &fs->nodes[slot];
}

struct hostfs_node *hostfs_node_find(struct hostfs *fs, dev_t dev, ino_t ino)
{
	uint32_t head = fs->hash[hash_key(fs, dev, ino)];

	for (uint32_t s = head ? head - 1 : HOSTFS_NONE; s != HOSTFS_NONE; s = fs->nodes[s].next) {
		struct hostfs_node *n = &fs->nodes[s];

		if (n->ino == ino && n->dev == dev)
			return n;
	}
	return NULL;
}

bool hostfs_node_room(const struct hostfs *fs)
{
	return (fs->node_free != HOSTFS_NONE || fs->node_top < fs->nnodes) &&
	       fs->node_seq < (UINT64_MAX >> fs->node_bits);
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
	n->parent = HOSTFS_NONE;
	hash_insert(fs, 0);
}

int hostfs_node_add(struct hostfs *fs, int fd, const struct stat *st, uint64_t mnt_id,
		    bool pseudo, struct hostfs_node *parent, const char *name,
		    struct hostfs_node **out)
{
	struct hostfs_node *n;
	uint32_t slot;
	char *copy;

	if (!hostfs_node_room(fs))
		return -ENFILE;
	hash_grow(fs);
	copy = strdup(name);
	if (!copy)
		return -ENOMEM;
	if (fs->node_free != HOSTFS_NONE) {
		slot = fs->node_free;
		fs->node_free = fs->nodes[slot].next;
	} else {
		slot = fs->node_top++;
	}
	n = &fs->nodes[slot];
	n->id = ++fs->node_seq << fs->node_bits | slot;
	n->refs = 1;
	n->dev = st->st_dev;
	n->ino = st->st_ino;
	n->mnt_id = mnt_id;
	n->name = copy;
	n->fd = -1;
	n->type = pseudo ? S_IFDIR : (st->st_mode & S_IFMT);
	n->pseudo = pseudo;
	n->pinned = false;
	n->children = 0;
	n->parent = hostfs_node_slot(fs, parent);
	parent->children++;
	fs->inodes_used++;
	hash_insert(fs, slot);
	hostfs_node_attach(fs, n, fd);
	*out = n;
	return 0;
}

/* Frees n's slot if nothing holds it, then its parent's if that was the last thing holding it,
 * and so up: iterative, a path may be deep. */
static void node_release(struct hostfs *fs, struct hostfs_node *n)
{
	while (n != fs->nodes && n->refs == 0 && n->children == 0) {
		uint32_t slot = hostfs_node_slot(fs, n);
		struct hostfs_node *p = &fs->nodes[n->parent];

		hash_remove(fs, slot);
		hostfs_node_detach(fs, n);
		free(n->name);
		n->name = NULL;
		n->id = 0;
		n->next = fs->node_free;
		fs->node_free = slot;
		fs->inodes_used--;
		p->children--;
		n = p;
	}
}

int hostfs_node_move(struct hostfs *fs, struct hostfs_node *n, struct hostfs_node *parent,
		     const char *name)
{
	struct hostfs_node *old = &fs->nodes[n->parent];
	char *copy;

	if (n == fs->nodes || (old == parent && !strcmp(n->name, name)))
		return 0;
	for (struct hostfs_node *a = parent; a != fs->nodes; a = &fs->nodes[a->parent])
		if (a == n)
			return 0;
	copy = strdup(name);
	if (!copy)
		return -ENOMEM;
	free(n->name);
	n->name = copy;
	n->parent = hostfs_node_slot(fs, parent);
	parent->children++;
	old->children--;
	node_release(fs, old);
	return 0;
}

void hostfs_node_unref(struct hostfs *fs, struct hostfs_node *n, uint64_t count)
{
	n->refs -= count < n->refs ? count : n->refs;
	node_release(fs, n);
}

void hostfs_nodes_clear(struct hostfs *fs)
{
	for (uint32_t i = 1; i < fs->node_top; i++) {
		struct hostfs_node *n = &fs->nodes[i];

		if (!n->id)
			continue;
		hostfs_node_detach(fs, n);
		free(n->name);
	}
	/* Every slot goes back to never used. */
	memset(&fs->nodes[1], 0, (size_t)(fs->node_top - 1) * sizeof(*fs->nodes));
	memset(fs->hash, 0, (size_t)(fs->hash_mask + 1) * sizeof(*fs->hash));
	fs->nodes[0].children = 0;
	fs->node_top = 1;
	fs->node_free = HOSTFS_NONE;
	fs->inodes_used = 0;
	if (fs->nodes[0].id)
		hash_insert(fs, 0);
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
