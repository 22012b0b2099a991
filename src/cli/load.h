#ifndef SINEW_CLI_LOAD_H
#define SINEW_CLI_LOAD_H

/* `sinew load`, shared between its engine (load.c) and its report
 * (load_report.c). Private to src/cli/. */

#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#include "sinew/hist.h"

#define SN_LOAD_MAX_HEADERS 32
#define SN_LOAD_MAX_CONNECTIONS 65536
#define SN_LOAD_MAX_BODY (64u << 20)

/* What to send and how fast. Strings are borrowed from argv. */
struct sn_load_opts {
	const char *url;
	char host[256];                /* Host header value (host[:port] as in the URL) */
	const char *path;              /* origin-form target, "/" by default */
	struct sockaddr_storage addr;  /* resolved once, before the run */
	socklen_t addrlen;
	const char *method;
	const char *headers[SN_LOAD_MAX_HEADERS];   /* "name: value" */
	size_t num_headers;
	size_t body_size;
	double qps;                    /* 0: as fast as the connections go (closed loop) */
	unsigned connections;
	uint64_t duration_ns;          /* 0: no limit by time */
	uint64_t requests;             /* 0: no limit by count */
	uint64_t timeout_ns;           /* per request, and per connect */
	uint64_t max_queue;            /* requests waiting for a free connection */
	unsigned h2_streams;           /* --h2 N: HTTP/2, N streams per connection (then
					* `connections` counts streams); 0: HTTP/1.1 */
	int json;
	int quiet;
};

enum sn_load_err {
	SN_LOAD_ERR_CONNECT,   /* a connect attempt failed or timed out */
	SN_LOAD_ERR_TIMEOUT,   /* no complete response within --timeout */
	SN_LOAD_ERR_RESET,     /* connection reset or closed mid-exchange */
	SN_LOAD_ERR_PROTOCOL,  /* malformed response, or bytes nobody asked for */
	SN_LOAD_ERR_OVERFLOW,  /* dropped: the wait queue was full */
	SN_LOAD_ERR_UNSENT,    /* still waiting for a connection when the run ended */
	SN_LOAD_ERR_STATUS,    /* a complete response with status >= 400 */
	SN_LOAD_ERR_COUNT
};

const char *sn_load_err_str(enum sn_load_err e);

/* What happened. Latencies in nanoseconds. */
struct sn_load_result {
	uint64_t scheduled;      /* requests whose send time came within the run */
	uint64_t sent;
	uint64_t completed;      /* complete responses, any status */
	uint64_t errors[SN_LOAD_ERR_COUNT];
	uint64_t status[600];    /* by code, 100..599 */
	uint64_t status_other;
	uint64_t bytes_sent;
	uint64_t bytes_received;
	uint64_t connects;       /* successful connects (incl. reconnects) */
	uint64_t max_backlog;    /* most requests ever waiting for a connection */
	uint64_t elapsed_ns;     /* the rate's denominator, see load.c */
	int interrupted;         /* stopped early by SIGINT/SIGTERM */
	struct sn_hist latency;  /* response done - scheduled send (corrected) */
	struct sn_hist service;  /* response done - actual send */
	struct sn_hist send_lag; /* actual send - scheduled send */
};

uint64_t sn_load_errors_total(const struct sn_load_result *r);

/* Writes the human-readable report / the JSON document to f. */
void sn_load_report_text(FILE *f, const struct sn_load_opts *o, const struct sn_load_result *r);
void sn_load_report_json(FILE *f, const struct sn_load_opts *o, const struct sn_load_result *r);

#endif
