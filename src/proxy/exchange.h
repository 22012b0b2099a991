#ifndef SINEW_EXCHANGE_H
#define SINEW_EXCHANGE_H

/* Connection and exchange objects shared by exchange.c and upstream.c. */

#include "proxy.h"

#define SN_MAX_HEADERS_ARRAY (SN_H1_DEFAULT_MAX_HEADERS + 1)

/* An upstream HTTP/1.1 connection to one endpoint. Busy (ex != NULL) or
 * idle in its host's LIFO pool, watched for EOF while idle. */
struct sn_uconn {
	struct sn_io io;
	struct sn_xprt x;            /* plain, or mTLS (ISTIO_MUTUAL) */
	struct sn_worker *w;
	struct sn_host *host;
	struct sn_uconn *next_idle;
	struct sn_exchange *ex;
	struct sn_buf in;
	struct sn_timer timer;       /* connect timeout, then idle timeout */
	uint32_t requests;           /* served on this connection */
	uint32_t max_requests;       /* 0: unlimited */
	uint32_t idle_timeout_ms;
	unsigned connected : 1;
	unsigned reused : 1;         /* this attempt reuses a pooled connection */
	unsigned can_write : 1;
	unsigned can_read : 1;
	unsigned eof : 1;
	unsigned idle : 1;
	unsigned hup : 1;            /* epoll reported hang-up/error: read until EOF */
	unsigned handshaking : 1;    /* the transport's handshake is not done yet */
	char *tls_id;                /* the server ID expected (pool key with host); NULL: plaintext */
	struct sn_task reclaim;
};

enum sn_attempt_failure {
	SN_FAIL_CONNECT = 1,
	SN_FAIL_RESET,        /* connection closed or errored before a response head */
	SN_FAIL_TIMEOUT,      /* per-try timeout */
	SN_FAIL_PROTOCOL,     /* malformed response head */
};

/* upstream.c */
/* Gets an idle pooled connection to host or opens a new one (non-blocking
 * connect with the cluster's connect timeout). force_new skips the pool.
 * tls_id: for mTLS, the SPIFFE ID the endpoint must present (a pooled
 * connection is reused only for the same expectation); NULL: plaintext.
 * Returns 0, SN_ELIMIT when the host's connection bound is reached, or
 * SN_EIO when the socket can't even be created. */
int sn_uconn_acquire(struct sn_worker *w, struct sn_host *host, const struct sn_cluster *c,
		     struct sn_exchange *ex, int force_new, const char *tls_id, struct sn_uconn **out);
/* Detaches u from its exchange. reusable: back to the idle pool;
 * otherwise closed. */
void sn_uconn_release(struct sn_worker *w, struct sn_uconn *u, int reusable);
/* Hands out u's transport (the exchange switched protocols: the socket now
 * belongs to a tunnel). u keeps its buffers until sn_uconn_destroy, which
 * the caller does next. */
void sn_uconn_detach(struct sn_worker *w, struct sn_uconn *u, struct sn_xprt *out);

/* exchange.c: upstream events for the exchange that owns u. */
void sn_exchange_on_upstream(struct sn_exchange *ex, unsigned events);
void sn_exchange_on_connect_timeout(struct sn_exchange *ex);

#endif
