#ifndef SINEW_HIST_H
#define SINEW_HIST_H

/* A log-linear latency histogram (HdrHistogram's layout, Gil Tene).
 *
 * Values are unsigned integers (the load generator records nanoseconds).
 * Buckets are powers of two, each split into SN_HIST_SUB_BUCKETS linear
 * sub-buckets: values below SN_HIST_SUB_BUCKETS are recorded exactly, and
 * above that every value is within 1/1024 (0.1 %) of what was recorded.
 * Memory is fixed at init by the highest trackable value (about 270 KiB
 * for one hour in nanoseconds); recording never allocates. Larger values
 * are clamped to the highest trackable one and counted in `clamped`. */

#include <stddef.h>
#include <stdint.h>

#define SN_HIST_SUB_BUCKET_BITS 11
#define SN_HIST_SUB_BUCKETS (1u << SN_HIST_SUB_BUCKET_BITS)

struct sn_hist {
	uint64_t *counts;     /* owned */
	size_t counts_len;
	uint64_t highest;     /* highest trackable value */
	uint64_t total;       /* values recorded */
	uint64_t clamped;     /* values above highest, recorded as highest */
	uint64_t min;         /* exact; UINT64_MAX while empty */
	uint64_t max;         /* exact (after clamping) */
	long double sum;      /* for the mean */
};

/* Allocates counters for values 0..highest (highest >= 2 * SN_HIST_SUB_BUCKETS).
 * Returns 0, SN_EINVAL or SN_ENOMEM. */
int sn_hist_init(struct sn_hist *h, uint64_t highest);
/* Frees the counters. Safe on a zeroed struct. */
void sn_hist_dispose(struct sn_hist *h);
/* Forgets every recorded value; keeps the counters' memory. */
void sn_hist_reset(struct sn_hist *h);

/* Records one value. O(1), no allocation. */
void sn_hist_record(struct sn_hist *h, uint64_t v);

/* Adds every value of src to dst (same highest). Returns 0 or SN_EINVAL. */
int sn_hist_add(struct sn_hist *dst, const struct sn_hist *src);

/* The value at percentile p (0 < p <= 100): the highest value equivalent
 * (same sub-bucket) to the one at rank ceil(p/100 * total), capped at the
 * exact max. 0 when empty. p >= 100 returns max. */
uint64_t sn_hist_percentile(const struct sn_hist *h, double p);

/* Mean of the recorded values (before bucketing); 0 when empty. */
double sn_hist_mean(const struct sn_hist *h);

/* Index of the counter that v falls in, and the lowest and highest values
 * sharing that counter (for tests and exporters). */
size_t sn_hist_index(const struct sn_hist *h, uint64_t v);
uint64_t sn_hist_lowest_at(const struct sn_hist *h, size_t index);
uint64_t sn_hist_highest_at(const struct sn_hist *h, size_t index);

#endif
