/* Pooled byte buffers. */
#include <stdlib.h>

#include "sinew/buf.h"

void sn_buf_pool_init(struct sn_buf_pool *pool, size_t size, size_t max_cached)
{
	pool->size = size ? size : SN_BUF_DEFAULT_SIZE;
	pool->max_cached = max_cached;
	pool->cached = 0;
	pool->in_use = 0;
	pool->free_list = NULL;
}

void sn_buf_pool_dispose(struct sn_buf_pool *pool)
{
	while (pool->free_list != NULL) {
		void *next = *(void **)pool->free_list;
		free(pool->free_list);
		pool->free_list = next;
	}
	pool->cached = 0;
}

static char *pool_take(struct sn_buf_pool *pool)
{
	void *p = pool->free_list;
	if (p != NULL) {
		pool->free_list = *(void **)p;
		pool->cached--;
	} else {
		p = malloc(pool->size);
	}
	if (p != NULL)
		pool->in_use++;
	return p;
}

int sn_buf_reserve(struct sn_buf_pool *pool, struct sn_buf *b, size_t want, size_t max_cap)
{
	if (b->base == NULL) {
		b->base = pool_take(pool);
		if (b->base == NULL)
			return SN_ENOMEM;
		b->cap = pool->size;
		b->start = b->end = 0;
	}
	if (sn_buf_room(b) >= want)
		return 0;
	if (b->start > 0) {
		size_t len = sn_buf_len(b);
		memmove(b->base, b->base + b->start, len);
		b->start = 0;
		b->end = len;
		if (sn_buf_room(b) >= want)
			return 0;
	}
	size_t need = b->end + want;
	if (need > max_cap)
		return SN_ELIMIT;
	size_t ncap = b->cap * 2;
	while (ncap < need)
		ncap *= 2;
	if (ncap > max_cap)
		ncap = max_cap;
	char *n = malloc(ncap);
	if (n == NULL)
		return SN_ENOMEM;
	memcpy(n, b->base, b->end);
	sn_buf_release(pool, b);
	b->base = n;
	b->cap = ncap;
	b->end = need - want;
	b->start = 0;
	return 0;
}

void sn_buf_release(struct sn_buf_pool *pool, struct sn_buf *b)
{
	if (b->base == NULL)
		return;
	if (b->cap == pool->size) {
		pool->in_use--;
		if (pool->cached < pool->max_cached) {
			*(void **)b->base = pool->free_list;
			pool->free_list = b->base;
			pool->cached++;
		} else {
			free(b->base);
		}
	} else {
		free(b->base);
	}
	b->base = NULL;
	b->start = b->end = b->cap = 0;
}
