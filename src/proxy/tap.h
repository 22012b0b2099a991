#ifndef SINEW_PROXY_TAP_H
#define SINEW_PROXY_TAP_H

/* Tap: the live request stream behind `sinew tap` and `sinew top`
 * (docs/observability.md "Tap"). sinewd asks a proxy over the control link
 * to tap ("tap": an id, filters, whether bodies go too, headers to redact,
 * how long); the proxy's workers match each finished exchange against the
 * taps in force and send what matched back as "tapEvent" messages, which
 * sinewd relays to whoever asked. Who may ask is sinewd's decision (its tap
 * token); the proxy only answers its control plane.
 *
 * Cost when nobody taps: one relaxed atomic load per exchange. */

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "sinew/h1.h"

#define SN_TAP_MAX 8                 /* taps in force at once on one proxy */
#define SN_TAP_MAX_REDACT 16         /* header names a tap redacts, beyond the four always redacted */
#define SN_TAP_MAX_BODY 4096         /* body bytes an event carries, each way */
#define SN_TAP_RATE 100              /* events a second per tap; more are counted as dropped */
#define SN_TAP_MAX_DURATION_MS 3600000u
#define SN_TAP_FIELDS_BYTES 8192     /* response fields kept per tapped exchange */

struct sn_proxy;
struct sn_exchange;
struct sn_fx_summary;
struct fy_node;

/* One tap in force (tap.c). */
struct sn_tap_entry {
	char id[40];
	unsigned dirs;                   /* SN_FILTER_OUTBOUND | SN_FILTER_INBOUND */
	char method[24];                 /* "" any */
	char path[256];                  /* a prefix; "" any */
	char authority[256];             /* "" any; else the authority, or its host without the port */
	int status_lo, status_hi;        /* 0, 0: any */
	int bodies;
	char redact[SN_TAP_MAX_REDACT][64];   /* lower case */
	unsigned n_redact;
	uint64_t expires_us;             /* sn_clock_us() */
	/* rate: a token bucket, SN_TAP_RATE a second */
	double tokens;
	uint64_t refill_us;
	uint64_t dropped;                /* not sent since the last event that was */
};

struct sn_taps {
	pthread_mutex_t lock;            /* guards e[] and n */
	atomic_uint active;              /* n, read by workers without the lock */
	struct sn_tap_entry e[SN_TAP_MAX];
	unsigned n;
};

/* What a tapped exchange keeps beyond its summary: the response's fields
 * (their views die with the upstream buffer) and, with bodies, the first
 * SN_TAP_MAX_BODY bytes each way. Owned by the exchange (ex_release). */
struct sn_tap_capture {
	int bodies;
	char fields[SN_TAP_FIELDS_BYTES];   /* "name\0value\0" ... */
	size_t fields_len;
	unsigned n_fields;
	int fields_cut;
	char req_body[SN_TAP_MAX_BODY];
	size_t req_body_len;
	uint64_t req_body_seen;
	int req_body_whole;              /* taken whole with the head: not again as it streams */
	char resp_body[SN_TAP_MAX_BODY];
	size_t resp_body_len;
	uint64_t resp_body_seen;
};

int sn_tap_init(struct sn_proxy *p);
void sn_tap_free(struct sn_proxy *p);
/* Loop thread: sinewd's "tap" (add 1) or "untap" (add 0) message. */
void sn_tap_on_message(struct sn_proxy *p, int add, struct fy_node *root);
/* Loop thread: the link to sinewd closed: its taps end with it. */
void sn_tap_clear(struct sn_proxy *p);

static inline int sn_tap_active(struct sn_taps *t)
{
	return t != NULL && atomic_load_explicit(&t->active, memory_order_relaxed) != 0;
}

/* Workers (filter_tap.c). Whether a tap in force may want this request
 * (all but the status known), and whether one of those wants bodies. */
int sn__tap_prematch(struct sn_proxy *p, unsigned dir, const struct sn_h1_request *req, int *bodies);
/* The exchange is over: an event to every tap it matches. */
void sn__tap_record(struct sn_exchange *ex, const struct sn_fx_summary *s, const struct sn_tap_capture *cap);

/* The exchange's hooks into a capture (exchange.c). */
void sn__tap_capture_head(struct sn_tap_capture *c, const struct sn_h1_response *r);
void sn__tap_capture_body(struct sn_tap_capture *c, int response, const char *p, size_t n);

#endif
