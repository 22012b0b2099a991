#ifndef SINEW_ACCESSLOG_H
#define SINEW_ACCESSLOG_H

/* Access log: one JSON object per line (DESIGN.md §7), off by default.
 * Each line is formatted into a bounded stack buffer and written with one
 * write(2) to an O_APPEND fd, so lines from several workers never
 * interleave. Values are JSON-escaped; over-long values are truncated,
 * never allowed to break the line. Never logs bodies or secrets
 * (Authorization, Cookie values are not logged at all). */

#include <stdint.h>
#include <sys/socket.h>

#include "sinew/common.h"

/* Longest line written, '\n' included; longer values are truncated. */
#define SN_ACCESS_LOG_LINE_MAX 8192

struct sn_access_log;

/* Opens path for appending ("-" is stdout). NULL with errno on failure. */
struct sn_access_log *sn_access_log_open(const char *path);
void sn_access_log_close(struct sn_access_log *log);

struct sn_access_entry {
	int64_t start_unix_us;          /* request start, wall clock */
	const char *direction;          /* "outbound" / "inbound" */
	struct sn_str method;
	struct sn_str path;             /* as sent, query included */
	struct sn_str authority;
	const char *protocol;           /* "HTTP/1.1", "HTTP/2" */
	const char *grpc_status;        /* gRPC: the call's grpc-status ("0", "14"...); NULL: none */
	int response_code;              /* 0: none sent */
	const char *response_flags;     /* "-" or the sinew-error reason */
	uint64_t bytes_received;        /* request body bytes */
	uint64_t bytes_sent;            /* response body bytes */
	double duration_ms;
	double upstream_service_time_ms;/* < 0: none */
	const char *upstream_cluster;   /* may be NULL */
	const char *upstream_host;      /* "ip:port" or NULL */
	const char *route_name;         /* may be NULL */
	uint32_t attempts;
	struct sn_str request_id;       /* x-request-id */
	struct sn_str user_agent;
	struct sn_str forwarded_for;
	const char *downstream_remote;  /* "ip:port" */
	const char *source_workload;
	const char *destination_service;
};

/* Formats and writes one line. Thread-safe. Returns 0 or SN_EIO. */
int sn_access_log_write(struct sn_access_log *log, const struct sn_access_entry *e);

/* Formats one line into buf (for tests). Returns its length incl. '\n'
 * (no NUL is added), or 0 if size is too small for even a line of empty
 * values (about 1 KiB). At most SN_ACCESS_LOG_LINE_MAX bytes are used. */
size_t sn_access_log_format(const struct sn_access_entry *e, char *buf, size_t size);

#endif
