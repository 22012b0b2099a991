#ifndef SINEW_ARENA_H
#define SINEW_ARENA_H

/* Region allocator: many small allocations, one free. Used for what lives
 * and dies together: a config snapshot, a parsed config file. Not
 * thread-safe; a finished arena may be read from any thread. */

#include <stddef.h>
#include <stdarg.h>
#include "sinew/common.h"

struct sn_arena_block;
struct sn_arena_cleanup;

struct sn_arena {
	struct sn_arena_block *head;
	size_t block_size;
	size_t total;  /* bytes handed out, for config_dump and limits */
	struct sn_arena_cleanup *cleanups;  /* run by sn_arena_free, the last added first */
};

/* Initializes an empty arena; blocks of block_size (0 = 16 KiB default). */
void sn_arena_init(struct sn_arena *a, size_t block_size);
/* Runs the cleanups, then frees every block. The arena may be reused
 * after sn_arena_init. */
void sn_arena_free(struct sn_arena *a);
/* Has sn_arena_free call fn(arg) (before any block goes, the last added
 * first), as nginx's pool cleanups: for what an object owns outside its
 * arena (a heap table, a file). 0, or SN_ENOMEM (nothing added). */
int sn_arena_on_free(struct sn_arena *a, void (*fn)(void *arg), void *arg);

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
