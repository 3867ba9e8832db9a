/* The handle table: open files and directories, by fh (slot and sequence number, see
 * hostfs/internal.h). */
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "hostfs/internal.h"

static void free_list_reset(struct hostfs *fs)
{
	fs->handle_free = HOSTFS_NONE;
	for (uint32_t i = fs->max_handles; i-- > 0;) {
		fs->handles[i].next = fs->handle_free;
		fs->handle_free = i;
	}
}

int hostfs_handles_init(struct hostfs *fs, uint32_t max_handles)
{
	unsigned b = 1;

	while ((1ull << b) - 1 < max_handles)
		b++;
	fs->handle_bits = b;
	fs->handles = calloc(max_handles, sizeof(*fs->handles));
	if (!fs->handles)
		return -ENOMEM;
	for (uint32_t i = 0; i < max_handles; i++)
		fs->handles[i].fd = -1;
	free_list_reset(fs);
	return 0;
}

void hostfs_handles_free(struct hostfs *fs)
{
	if (fs->handles)
		hostfs_handles_clear(fs);
	free(fs->handles);
	fs->handles = NULL;
}

struct hostfs_handle *hostfs_handle_get(struct hostfs *fs, uint64_t fh)
{
	uint64_t slot = fh & ((1ull << fs->handle_bits) - 1);

	if (slot >= fs->max_handles || !fh || fs->handles[slot].id != fh)
		return NULL;
	return &fs->handles[slot];
}

bool hostfs_handle_room(const struct hostfs *fs)
{
	return fs->handle_free != HOSTFS_NONE && fs->handle_seq < (UINT64_MAX >> fs->handle_bits);
}

int hostfs_handle_add(struct hostfs *fs, int fd, uint64_t node_id, bool dir, bool writable,
		      struct hostfs_handle **out)
{
	uint32_t slot = fs->handle_free;
	struct hostfs_handle *h;

	if (!hostfs_handle_room(fs))
		return -ENFILE;
	h = &fs->handles[slot];
	fs->handle_free = h->next;
	h->id = ++fs->handle_seq << fs->handle_bits | slot;
	h->node_id = node_id;
	h->fd = fd;
	h->dir = dir;
	h->writable = writable;
	h->buf = NULL;
	h->pos = h->len = 0;
	h->cur_off = 0;
	fs->handles_used++;
	*out = h;
	return 0;
}

static void handle_drop(struct hostfs *fs, struct hostfs_handle *h)
{
	if (h->fd >= 0)
		close(h->fd);
	free(h->buf);
	h->buf = NULL;
	h->fd = -1;
	h->id = 0;
	fs->handles_used--;
}

void hostfs_handle_del(struct hostfs *fs, struct hostfs_handle *h)
{
	handle_drop(fs, h);
	h->next = fs->handle_free;
	fs->handle_free = (uint32_t)(h - fs->handles);
}

void hostfs_handles_clear(struct hostfs *fs)
{
	for (uint32_t i = 0; i < fs->max_handles; i++)
		if (fs->handles[i].id)
			handle_drop(fs, &fs->handles[i]);
	free_list_reset(fs);
}
