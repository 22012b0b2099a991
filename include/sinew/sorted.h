#ifndef SINEW_SORTED_H
#define SINEW_SORTED_H

/* Sorted arrays: the one binary search, and a small map of strings on it.
 * For sets read far more often than changed (a proxy's held resources,
 * sinewd's store index): lookups are O(log n), an insert moves the tail.
 * Not thread-safe. */

#include <stddef.h>

/* Compares a key with an element of the array. */
typedef int (*sn_key_cmp)(const void *key, const void *elem);

/* The index of the first of the n elements of size bytes at base (sorted
 * by cmp) that is not less than key: where key is, or would go. found (may
 * be NULL) is set when that element compares equal. */
size_t sn_lower_bound(const void *base, size_t n, size_t size, const void *key, sn_key_cmp cmp, int *found);

/* A map from strings to strings, both copied, sorted by key (strcmp). */
struct sn_strmap_kv {
	char *key;
	char *value;
};

struct sn_strmap {
	struct sn_strmap_kv *v;
	size_t n, cap;
};

/* Frees every entry; the map is empty and reusable after. */
void sn_strmap_free(struct sn_strmap *m);
/* The entry for key, or NULL. */
struct sn_strmap_kv *sn_strmap_get(const struct sn_strmap *m, const char *key);
/* Sets key to value (NULL: ""). 0 or SN_ENOMEM (the map unchanged). */
int sn_strmap_put(struct sn_strmap *m, const char *key, const char *value);
/* Removes key if present. */
void sn_strmap_del(struct sn_strmap *m, const char *key);

#endif
