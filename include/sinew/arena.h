#ifndef SINEW_ARENA_H
#define SINEW_ARENA_H

/* Region allocator: many small allocations, one free. Used for what lives
 * and dies together: a config snapshot, a parsed config file. Not
 * thread-safe; a finished arena may be read from any thread. */

#include <stddef.h>
#include <stdarg.h>
#include "sinew/common.h"

struct sn_arena_block;

struct sn_arena {
	struct sn_arena_block *head;
	size_t block_size;
	size_t total;  /* bytes handed out, for config_dump and limits */
};

/* Initializes an empty arena; blocks of block_size (0 = 16 KiB default). */
void sn_arena_init(struct sn_arena *a, size_t block_size);
/* Frees every block. The arena may be reused after sn_arena_init. */
void sn_arena_free(struct sn_arena *a);

/* Returns zeroed memory aligned to 16, owned by the arena; NULL on ENOMEM. */
void *sn_arena_alloc(struct sn_arena *a, size_t size);
/* Copies len bytes and NUL-terminates. NULL on ENOMEM. */
char *sn_arena_strndup(struct sn_arena *a, const char *s, size_t len);
char *sn_arena_strdup(struct sn_arena *a, const char *s);
/* printf into the arena. NULL on ENOMEM. */
char *sn_arena_printf(struct sn_arena *a, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#define sn_arena_new(a, type) ((type *)sn_arena_alloc((a), sizeof(type)))
#define sn_arena_new_array(a, type, n) ((type *)sn_arena_alloc((a), sizeof(type) * (n)))

#endif
