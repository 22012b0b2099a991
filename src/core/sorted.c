/* Sorted arrays (sinew/sorted.h). */
#include <stdlib.h>
#include <string.h>

#include "sinew/common.h"
#include "sinew/sorted.h"

size_t sn_lower_bound(const void *base, size_t n, size_t size, const void *key, sn_key_cmp cmp, int *found)
{
	const char *b = base;
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (cmp(key, b + mid * size) > 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (found != NULL)
		*found = lo < n && cmp(key, b + lo * size) == 0;
	return lo;
}

static int cmp_kv(const void *key, const void *elem)
{
	return strcmp(key, ((const struct sn_strmap_kv *)elem)->key);
}

void sn_strmap_free(struct sn_strmap *m)
{
	for (size_t i = 0; i < m->n; i++) {
		free(m->v[i].key);
		free(m->v[i].value);
	}
	free(m->v);
	memset(m, 0, sizeof(*m));
}

struct sn_strmap_kv *sn_strmap_get(const struct sn_strmap *m, const char *key)
{
	int found;
	size_t i = sn_lower_bound(m->v, m->n, sizeof(*m->v), key, cmp_kv, &found);
	return found ? &m->v[i] : NULL;
}

int sn_strmap_put(struct sn_strmap *m, const char *key, const char *value)
{
	int found;
	size_t i = sn_lower_bound(m->v, m->n, sizeof(*m->v), key, cmp_kv, &found);
	char *nv = strdup(value != NULL ? value : "");

	if (nv == NULL)
		return SN_ENOMEM;
	if (found) {
		free(m->v[i].value);
		m->v[i].value = nv;
		return 0;
	}
	if (m->n == m->cap) {
		size_t cap = m->cap ? m->cap * 2 : 16;
		struct sn_strmap_kv *grown = realloc(m->v, cap * sizeof(*grown));
		if (grown == NULL) {
			free(nv);
			return SN_ENOMEM;
		}
		m->v = grown;
		m->cap = cap;
	}
	char *nk = strdup(key);
	if (nk == NULL) {
		free(nv);
		return SN_ENOMEM;
	}
	memmove(&m->v[i + 1], &m->v[i], (m->n - i) * sizeof(*m->v));
	m->v[i].key = nk;
	m->v[i].value = nv;
	m->n++;
	return 0;
}

void sn_strmap_del(struct sn_strmap *m, const char *key)
{
	int found;
	size_t i = sn_lower_bound(m->v, m->n, sizeof(*m->v), key, cmp_kv, &found);
	if (!found)
		return;
	free(m->v[i].key);
	free(m->v[i].value);
	memmove(&m->v[i], &m->v[i + 1], (m->n - i - 1) * sizeof(*m->v));
	m->n--;
}
