/* Log-linear histogram: see include/sinew/hist.h.
 *
 * Layout (HdrHistogram with unit magnitude 0 and 2048 sub-buckets): the
 * first 2048 counters hold the values 0..2047 exactly; after that each
 * power of two [2^k, 2^(k+1)) for k >= 11 has 1024 counters, each
 * 2^(k-10) wide. */
#include <stdlib.h>
#include <string.h>

#include "sinew/common.h"
#include "sinew/hist.h"

#define HALF_BITS (SN_HIST_SUB_BUCKET_BITS - 1)
#define HALF (1u << HALF_BITS)
#define SUB_MASK ((uint64_t)SN_HIST_SUB_BUCKETS - 1)

static size_t index_of(uint64_t v)
{
	int pow2ceil = 64 - __builtin_clzll(v | SUB_MASK);
	int bucket = pow2ceil - SN_HIST_SUB_BUCKET_BITS;
	uint64_t sub = v >> bucket;

	return ((size_t)(bucket + 1) << HALF_BITS) + (size_t)(sub - HALF);
}

size_t sn_hist_index(const struct sn_hist *h, uint64_t v)
{
	(void)h;
	return index_of(v);
}

static void split(size_t i, int *bucket, uint64_t *sub)
{
	int b = (int)(i >> HALF_BITS) - 1;
	uint64_t s = (i & (HALF - 1)) + HALF;

	if (b < 0) {
		s -= HALF;
		b = 0;
	}
	*bucket = b;
	*sub = s;
}

uint64_t sn_hist_lowest_at(const struct sn_hist *h, size_t i)
{
	int b;
	uint64_t s;

	(void)h;
	split(i, &b, &s);
	return s << b;
}

uint64_t sn_hist_highest_at(const struct sn_hist *h, size_t i)
{
	int b;
	uint64_t s;

	(void)h;
	split(i, &b, &s);
	return (s << b) + ((uint64_t)1 << b) - 1;
}

int sn_hist_init(struct sn_hist *h, uint64_t highest)
{
	memset(h, 0, sizeof(*h));
	if (highest < 2u * SN_HIST_SUB_BUCKETS || highest > (UINT64_MAX >> 2))
		return SN_EINVAL;
	h->counts_len = index_of(highest) + 1;
	h->counts = calloc(h->counts_len, sizeof(*h->counts));
	if (h->counts == NULL)
		return SN_ENOMEM;
	h->highest = highest;
	h->min = UINT64_MAX;
	return 0;
}

void sn_hist_dispose(struct sn_hist *h)
{
	free(h->counts);
	h->counts = NULL;
	h->counts_len = 0;
}

void sn_hist_reset(struct sn_hist *h)
{
	memset(h->counts, 0, h->counts_len * sizeof(*h->counts));
	h->total = 0;
	h->clamped = 0;
	h->min = UINT64_MAX;
	h->max = 0;
	h->sum = 0;
}

void sn_hist_record(struct sn_hist *h, uint64_t v)
{
	if (SN_UNLIKELY(v > h->highest)) {
		v = h->highest;
		h->clamped++;
	}
	h->counts[index_of(v)]++;
	h->total++;
	h->sum += (long double)v;
	if (v < h->min)
		h->min = v;
	if (v > h->max)
		h->max = v;
}

int sn_hist_add(struct sn_hist *dst, const struct sn_hist *src)
{
	if (dst->counts_len != src->counts_len)
		return SN_EINVAL;
	for (size_t i = 0; i < src->counts_len; i++)
		dst->counts[i] += src->counts[i];
	dst->total += src->total;
	dst->clamped += src->clamped;
	dst->sum += src->sum;
	if (src->min < dst->min)
		dst->min = src->min;
	if (src->max > dst->max)
		dst->max = src->max;
	return 0;
}

uint64_t sn_hist_percentile(const struct sn_hist *h, double p)
{
	uint64_t rank, seen = 0;

	if (h->total == 0)
		return 0;
	if (p >= 100.0)
		return h->max;
	if (p < 0.0)
		p = 0.0;
	/* rank = ceil(p/100 * total), at least 1. 99.9 is not exact in binary:
	 * shave a millionth so that p99.9 of 1000 values is the 999th, not the
	 * 1000th. */
	long double r = (long double)p / 100.0L * (long double)h->total - 1e-6L;
	rank = (uint64_t)r;
	if ((long double)rank < r)
		rank++;
	if (rank == 0)
		rank = 1;
	for (size_t i = 0; i < h->counts_len; i++) {
		seen += h->counts[i];
		if (seen >= rank) {
			uint64_t v = sn_hist_highest_at(h, i);
			return v < h->max ? v : h->max;
		}
	}
	return h->max;
}

double sn_hist_mean(const struct sn_hist *h)
{
	if (h->total == 0)
		return 0.0;
	return (double)(h->sum / (long double)h->total);
}
