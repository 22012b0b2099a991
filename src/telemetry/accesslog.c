/* JSON-lines access log (sinew/accesslog.h).
 *
 * A line is built in a bounded buffer with the fields in a fixed order.
 * Each string gets at most its own cap and never more than the space left
 * after reserving room for every later field at its shortest (key, a
 * number, or an empty truncated string), so whatever the input the line
 * closes with "}\n" and stays within the buffer. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sinew/accesslog.h"
#include "sinew/common.h"
#include "sinew/json.h"

struct sn_access_log {
	int fd;
	int owns_fd;   /* 0 for stdout */
};

struct sn_access_log *sn_access_log_open(const char *path)
{
	struct sn_access_log *log = calloc(1, sizeof(*log));
	int saved;

	if (!log)
		return NULL;
	if (strcmp(path, "-") == 0) {
		log->fd = STDOUT_FILENO;
		return log;
	}
	log->fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
	if (log->fd < 0) {
		saved = errno;
		free(log);
		errno = saved;
		return NULL;
	}
	log->owns_fd = 1;
	return log;
}

void sn_access_log_close(struct sn_access_log *log)
{
	if (!log)
		return;
	if (log->owns_fd)
		close(log->fd);
	free(log);
}

enum field_type {
	F_TIME,     /* int64 unix microseconds -> RFC 3339 UTC, ms */
	F_STR,      /* struct sn_str; p == NULL -> null */
	F_CSTR,     /* const char *; NULL -> null */
	F_INT,      /* int64 */
	F_U64,
	F_MS,       /* double milliseconds, 3 decimals; < 0 or NaN -> null */
};

struct field {
	const char *key;
	enum field_type type;
	size_t max;   /* F_STR, F_CSTR: cap on the quoted value, in bytes */
	union {
		struct sn_str s;
		const char *c;
		int64_t i;
		uint64_t u;
		double d;
	} v;
};

/* Longest number a field can print: "-9223372036854775808". */
#define NUM_MAX 20
/* "2024-01-02T03:04:05.678Z" quoted, with a 5-digit year to spare. */
#define TIME_MAX 28

/* Smallest room a field needs after its key: strings may shrink to a
 * bare marker; everything else prints in full. */
static size_t field_min(const struct field *f)
{
	switch (f->type) {
	case F_TIME:
		return TIME_MAX;
	case F_STR:
	case F_CSTR:
		return 2 + SN_JSON_TRUNCATED_LEN;
	default:
		return NUM_MAX;
	}
}

static int put_time(struct sn_json_out *o, int64_t us)
{
	char tmp[48];
	struct tm tm;
	time_t sec;
	size_t n;

	if (us < 0)
		us = 0;
	sec = (time_t)(us / 1000000);
	if (!gmtime_r(&sec, &tm) || tm.tm_year + 1900 > 99999)
		return sn_json_out_raw(o, "null", 4);
	n = strftime(tmp, sizeof(tmp), "\"%Y-%m-%dT%H:%M:%S", &tm);
	if (n == 0)
		return sn_json_out_raw(o, "null", 4);
	tmp[n++] = '.';
	tmp[n++] = (char)('0' + us / 100000 % 10);
	tmp[n++] = (char)('0' + us / 10000 % 10);
	tmp[n++] = (char)('0' + us / 1000 % 10);
	tmp[n++] = 'Z';
	tmp[n++] = '"';
	return sn_json_out_raw(o, tmp, n);
}

static int put_ms(struct sn_json_out *o, double ms)
{
	if (!(ms >= 0))
		return sn_json_out_raw(o, "null", 4);
	if (ms > 1e12)   /* 30 years; keeps the number within NUM_MAX */
		ms = 1e12;
	return sn_json_out_fixed3(o, (int64_t)(ms * 1000.0 + 0.5));
}

static int put_value(struct sn_json_out *o, const struct field *f, size_t room)
{
	size_t max = SN_MIN(f->max, room);

	switch (f->type) {
	case F_TIME:
		return put_time(o, f->v.i);
	case F_STR:
		if (!f->v.s.p)
			return sn_json_out_raw(o, "null", 4);
		return sn_json_out_str(o, f->v.s.p, f->v.s.len, max) < 0 ? SN_ELIMIT : 0;
	case F_CSTR:
		if (!f->v.c)
			return sn_json_out_raw(o, "null", 4);
		return sn_json_out_str(o, f->v.c, strlen(f->v.c), max) < 0 ? SN_ELIMIT : 0;
	case F_INT:
		return sn_json_out_i64(o, f->v.i);
	case F_U64:
		return sn_json_out_u64(o, f->v.u);
	case F_MS:
		return put_ms(o, f->v.d);
	}
	return SN_EINVAL;
}

#define S(k, val, cap) { k, F_STR, cap, { .s = (val) } }
#define C(k, val, cap) { k, F_CSTR, cap, { .c = (val) } }

size_t sn_access_log_format(const struct sn_access_entry *e, char *buf, size_t size)
{
	/* Caps keep one long value from crowding out the others; the path
	 * gets most of the line. */
	struct field fields[] = {
		{ "start_time", F_TIME, 0, { .i = e->start_unix_us } },
		C("direction", e->direction, 32),
		S("method", e->method, 64),
		S("path", e->path, 4096),
		S("authority", e->authority, 512),
		C("protocol", e->protocol, 32),
		{ "response_code", F_INT, 0, { .i = e->response_code } },
		C("grpc_status", e->grpc_status, 8),
		C("response_flags", e->response_flags, 256),
		{ "bytes_received", F_U64, 0, { .u = e->bytes_received } },
		{ "bytes_sent", F_U64, 0, { .u = e->bytes_sent } },
		{ "duration_ms", F_MS, 0, { .d = e->duration_ms } },
		{ "upstream_service_time_ms", F_MS, 0, { .d = e->upstream_service_time_ms } },
		C("upstream_cluster", e->upstream_cluster, 256),
		C("upstream_host", e->upstream_host, 128),
		C("route_name", e->route_name, 256),
		{ "attempts", F_U64, 0, { .u = e->attempts } },
		S("request_id", e->request_id, 256),
		S("user_agent", e->user_agent, 1024),
		S("x_forwarded_for", e->forwarded_for, 1024),
		C("downstream_remote_address", e->downstream_remote, 128),
		C("source_workload", e->source_workload, 256),
		C("destination_service", e->destination_service, 256),
	};
	size_t reserve[SN_ARRAY_LEN(fields) + 1];
	struct sn_json_out o;
	size_t n = SN_ARRAY_LEN(fields);

	if (size > SN_ACCESS_LOG_LINE_MAX)
		size = SN_ACCESS_LOG_LINE_MAX;
	/* reserve[i]: what fields i.. need at least, plus "}\n". */
	reserve[n] = 2;
	for (size_t i = n; i-- > 0;)
		reserve[i] = reserve[i + 1] + strlen(fields[i].key) + 4 + field_min(&fields[i]);
	if (size < reserve[0])
		return 0;

	sn_json_out_init(&o, buf, size);
	for (size_t i = 0; i < n; i++) {
		const struct field *f = &fields[i];
		size_t room;

		/* The reserve guarantees room for the key: ,"key": */
		sn_json_out_raw(&o, i ? ",\"" : "{\"", 2);
		sn_json_out_raw(&o, f->key, strlen(f->key));
		sn_json_out_raw(&o, "\":", 2);
		/* What is left once the later fields have their minimum. */
		room = o.cap - o.len - reserve[i + 1];
		if (put_value(&o, f, room) != 0)
			return 0;   /* unreachable given the reserve */
	}
	if (sn_json_out_raw(&o, "}\n", 2) != 0)
		return 0;
	return o.len;
}

int sn_access_log_write(struct sn_access_log *log, const struct sn_access_entry *e)
{
	char line[SN_ACCESS_LOG_LINE_MAX];
	size_t n = sn_access_log_format(e, line, sizeof(line));
	size_t off = 0;

	if (n == 0) {   /* cannot happen with a full-size buffer */
		errno = EINVAL;
		return SN_EIO;
	}
	while (off < n) {
		ssize_t w = write(log->fd, line + off, n - off);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return SN_EIO;
		}
		/* A short write (full disk, a pipe) leaves the rest to a second
		 * write; only then can another writer's line land in between. */
		off += (size_t)w;
	}
	return 0;
}
