/* gRPC's rules as the proxy applies them (docs/internals/http2.md):
 * what makes a request a gRPC call, its status and deadline fields, the
 * status an answer of the proxy's carries, and which statuses a route's
 * retryOn names. Pure functions; the exchange does the rest. */
#include <string.h>

#include "exchange.h"

int sn__field(const struct sn_h1_header *h, size_t n, const char *name, struct sn_str *value)
{
	int i = sn_h1_find_header(h, n, sn_str_make(name, strlen(name)), 0);
	if (i < 0)
		return 0;
	*value = h[i].value;
	return 1;
}

/* A gRPC request: content-type application/grpc, +proto, +json... */
int sn__grpc_request(const struct sn_h1_request *rq)
{
	struct sn_str ct;
	return sn__field(rq->headers, rq->num_headers, "content-type", &ct) && ct.len >= 16 &&
	       sn_str_ieq(sn_str_make(ct.p, 16), SN_STR_LIT("application/grpc")) &&
	       (ct.len == 16 || ct.p[16] == '+' || ct.p[16] == ';');
}

/* grpc-status's value (a decimal code), or -1. */
int sn__grpc_code(struct sn_str v)
{
	int code = 0;
	if (v.len == 0 || v.len > 2)
		return -1;
	for (size_t i = 0; i < v.len; i++) {
		if (v.p[i] < '0' || v.p[i] > '9')
			return -1;
		code = code * 10 + (v.p[i] - '0');
	}
	return code;
}

/* The grpc-timeout header (RFC: up to 8 digits and a unit) in ms, rounded
 * up; -1 if absent or malformed. */
int64_t sn__grpc_timeout_ms(const struct sn_h1_request *rq)
{
	struct sn_str v;
	int64_t n = 0;

	if (!sn__field(rq->headers, rq->num_headers, "grpc-timeout", &v) || v.len < 2 || v.len > 9)
		return -1;
	for (size_t i = 0; i + 1 < v.len; i++) {
		if (v.p[i] < '0' || v.p[i] > '9')
			return -1;
		n = n * 10 + (v.p[i] - '0');
	}
	switch (v.p[v.len - 1]) {
	case 'H': return n * 3600000;
	case 'M': return n * 60000;
	case 'S': return n * 1000;
	case 'm': return n;
	case 'u': return (n + 999) / 1000;
	case 'n': return (n + 999999) / 1000000;
	}
	return -1;
}

/* The gRPC status for an answer the proxy makes (Envoy's mapping of HTTP
 * statuses; a timeout is DEADLINE_EXCEEDED). */
int sn__grpc_code_for(int status, const char *flag)
{
	if (flag != NULL && strcmp(flag, "upstream_timeout") == 0)
		return 4;
	switch (status) {
	case 400: return 13;   /* INTERNAL */
	case 401: return 16;   /* UNAUTHENTICATED */
	case 403: return 7;    /* PERMISSION_DENIED */
	case 404: return 12;   /* UNIMPLEMENTED */
	case 429: case 502: case 503: case 504: return 14;   /* UNAVAILABLE */
	default: return 2;     /* UNKNOWN */
	}
}

int sn__grpc_http_status(int code)
{
	static const int http[17] = { 200, 499, 500, 400, 504, 404, 409, 403, 429, 400, 409, 400, 501, 500, 503, 500,
				      401 };
	return code >= 0 && code <= 16 ? http[code] : 500;
}

int sn__grpc_retry_on(uint32_t on, int code)
{
	switch (code) {
	case 1: return (on & SN_RETRY_GRPC_CANCELLED) != 0;
	case 4: return (on & SN_RETRY_GRPC_DEADLINE_EXCEEDED) != 0;
	case 8: return (on & SN_RETRY_GRPC_RESOURCE_EXHAUSTED) != 0;
	case 13: return (on & SN_RETRY_GRPC_INTERNAL) != 0;
	case 14: return (on & SN_RETRY_GRPC_UNAVAILABLE) != 0;
	}
	return 0;
}
