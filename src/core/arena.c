/* Region allocator. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sinew/arena.h"

struct sn_arena_cleanup {
	struct sn_arena_cleanup *next;
	void (*fn)(void *arg);
	void *arg;
};

struct sn_arena_block {
	struct sn_arena_block *next;
	size_t size;
	size_t used;
	_Alignas(16) unsigned char data[];
};

void sn_arena_init(struct sn_arena *a, size_t block_size)
{
	a->head = NULL;
	a->block_size = block_size ? block_size : 16384;
	a->total = 0;
	a->cleanups = NULL;
}

void sn_arena_free(struct sn_arena *a)
{
	while (a->cleanups != NULL) {
		struct sn_arena_cleanup *c = a->cleanups;
		a->cleanups = c->next;
		c->fn(c->arg);
	}
	struct sn_arena_block *b = a->head;
	while (b != NULL) {
		struct sn_arena_block *next = b->next;
		free(b);
		b = next;
	}
	a->head = NULL;
	a->total = 0;
}

void *sn_arena_alloc(struct sn_arena *a, size_t size)
{
	struct sn_arena_block *b = a->head;
	size_t need = (size + 15) & ~(size_t)15;

	if (need < size)
		return NULL;
	if (b == NULL || b->size - b->used < need) {
		size_t bsize = need > a->block_size / 4 ? need : a->block_size;
		b = malloc(sizeof(*b) + bsize);
		if (b == NULL)
			return NULL;
		b->size = bsize;
		b->used = 0;
		if (bsize == need && a->head != NULL) {
			/* A large one-off: keep the current block for small ones. */
			b->next = a->head->next;
			a->head->next = b;
		} else {
			b->next = a->head;
			a->head = b;
		}
	}
	void *p = b->data + b->used;
	b->used += need;
	a->total += need;
	memset(p, 0, need);
	return p;
}

char *sn_arena_strndup(struct sn_arena *a, const char *s, size_t len)
{
	char *p = sn_arena_alloc(a, len + 1);
	if (p == NULL)
		return NULL;
	if (len)
		memcpy(p, s, len);
	p[len] = '\0';
	return p;
}

char *sn_arena_strdup(struct sn_arena *a, const char *s)
{
	return sn_arena_strndup(a, s, strlen(s));
}

char *sn_arena_printf(struct sn_arena *a, const char *fmt, ...)
{
	va_list ap;
	int n;
	char *p;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return NULL;
	p = sn_arena_alloc(a, (size_t)n + 1);
	if (p == NULL)
		return NULL;
	va_start(ap, fmt);
	vsnprintf(p, (size_t)n + 1, fmt, ap);
	va_end(ap);
	return p;
}

int sn_arena_on_free(struct sn_arena *a, void (*fn)(void *arg), void *arg)
{
	struct sn_arena_cleanup *c = sn_arena_alloc(a, sizeof(*c));
	if (c == NULL)
		return SN_ENOMEM;
	c->fn = fn;
	c->arg = arg;
	c->next = a->cleanups;
	a->cleanups = c;
	return 0;
}
