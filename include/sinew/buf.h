#ifndef SINEW_BUF_H
#define SINEW_BUF_H

/* Byte buffers from a per-worker pool.
 *
 * A buffer is a window [start, end) into storage of cap bytes. Storage of
 * the pool's standard size comes from a free list, so the steady state
 * allocates nothing; larger storage (a long request head, up to its
 * limit) is malloc'd and freed on release. Idle connections hold no
 * buffer at all: that is what keeps an idle keep-alive connection small. */

#include <stddef.h>
#include <sys/types.h>

#include "sinew/common.h"

#define SN_BUF_DEFAULT_SIZE 16384

struct sn_buf_pool {
	size_t size;        /* standard storage size */
	size_t max_cached;  /* free-list bound; beyond it storage is freed */
	size_t cached;
	size_t in_use;
	void *free_list;
};

struct sn_buf {
	char *base;         /* NULL: no storage held */
	size_t start;
	size_t end;
	size_t cap;
};

void sn_buf_pool_init(struct sn_buf_pool *pool, size_t size, size_t max_cached);
void sn_buf_pool_dispose(struct sn_buf_pool *pool);

/* Ensures b has storage (taking the pool's standard size if it has none)
 * and at least want free bytes after end, compacting first and growing up
 * to max_cap. Returns 0, SN_ELIMIT if max_cap would be exceeded, or
 * SN_ENOMEM. */
int sn_buf_reserve(struct sn_buf_pool *pool, struct sn_buf *b, size_t want, size_t max_cap);
/* Returns b's storage to the pool (or frees it) and empties b. */
void sn_buf_release(struct sn_buf_pool *pool, struct sn_buf *b);

static inline size_t sn_buf_len(const struct sn_buf *b)
{
	return b->end - b->start;
}
static inline char *sn_buf_data(const struct sn_buf *b)
{
	return b->base + b->start;
}
static inline size_t sn_buf_room(const struct sn_buf *b)
{
	return b->cap - b->end;
}
/* Drops n bytes from the front; an emptied buffer rewinds to 0. */
static inline void sn_buf_consume(struct sn_buf *b, size_t n)
{
	b->start += n;
	if (b->start >= b->end)
		b->start = b->end = 0;
}
/* Appends n bytes; the caller has reserved room. */
static inline void sn_buf_append(struct sn_buf *b, const void *p, size_t n)
{
	memcpy(b->base + b->end, p, n);
	b->end += n;
}

#endif
