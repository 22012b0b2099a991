#ifndef SINEW_EXT_AUTHZ_GRPC_H
#define SINEW_EXT_AUTHZ_GRPC_H

/* Envoy's gRPC external authorization messages (ext_authz_grpc.c), written
 * and read by hand: a small protobuf writer and reader, the CheckRequest
 * of envoy.service.auth.v3.Authorization/Check and its CheckResponse.
 * Field numbers are those of Envoy's api/envoy/service/auth/v3
 * (external_auth.proto, attribute_context.proto), config/core/v3
 * (address.proto, base.proto), type/v3/http_status.proto and
 * google/rpc/status.proto. Pure functions of their inputs, no I/O: the
 * filter (filter_extauthz.c) sends what they write, and the fuzz target
 * (fuzz/fuzz_proxy_extauthz_grpc.c) feeds the reader. */

#include <stddef.h>
#include <stdint.h>

#include "sinew/common.h"
#include "sinew/http.h"

/* ---- protobuf wire format ------------------------------------------------- */

enum sn_pb_wire { SN_PB_VARINT = 0, SN_PB_I64 = 1, SN_PB_LEN = 2, SN_PB_I32 = 5 };

/* A message being written into a caller's buffer. Nested messages are
 * opened and closed (at most SN_PB_MAX_DEPTH deep); their length prefix
 * is fixed up on close. Writing past cap sets overflow and writes nothing
 * more: check it once at the end. */
#define SN_PB_MAX_DEPTH 8
struct sn_pbw {
	uint8_t *p;
	size_t len, cap;
	size_t open[SN_PB_MAX_DEPTH];   /* where each open message's body starts */
	int depth;
	int overflow;
};

void sn_pbw_init(struct sn_pbw *w, uint8_t *buf, size_t cap);
void sn_pbw_varint(struct sn_pbw *w, uint32_t field, uint64_t v);
/* A length-delimited field (string, bytes); nothing for an empty one
 * unless keep_empty (proto3 leaves defaults out). */
void sn_pbw_bytes(struct sn_pbw *w, uint32_t field, const void *p, size_t n, int keep_empty);
static inline void sn_pbw_str(struct sn_pbw *w, uint32_t field, struct sn_str s)
{
	sn_pbw_bytes(w, field, s.p, s.len, 0);
}
/* Opens a nested message as field; sn_pbw_end closes the innermost. */
void sn_pbw_begin(struct sn_pbw *w, uint32_t field);
void sn_pbw_end(struct sn_pbw *w);

/* One field read from a message: its number and wire type; a varint's
 * value in v, a length-delimited field's bytes in p/n. */
struct sn_pb_field {
	uint32_t num;
	enum sn_pb_wire wire;
	uint64_t v;
	const uint8_t *p;
	size_t n;
};

struct sn_pbr {
	const uint8_t *p, *end;
};

static inline void sn_pbr_init(struct sn_pbr *r, const void *p, size_t n)
{
	r->p = p;
	r->end = r->p + n;
}

/* The next field: 1 with *f filled, 0 at the end of the message, -1 when
 * malformed (a varint past 10 bytes or past the end, a length past the
 * end, field number 0, groups, unknown wire types). Fixed-size fields are
 * read over (v holds them). */
int sn_pbr_next(struct sn_pbr *r, struct sn_pb_field *f);

/* ---- the Check call ------------------------------------------------------- */

#define SN_XA_GRPC_PATH "/envoy.service.auth.v3.Authorization/Check"

struct sn_xa_peer {
	struct sn_str address;       /* IP, without brackets or port */
	uint32_t port;
	struct sn_str principal;     /* SPIFFE ID, or empty */
};

/* What the CheckRequest carries (views borrowed for the call). */
struct sn_xa_check {
	struct sn_xa_peer source, destination;
	struct sn_str id;            /* x-request-id */
	struct sn_str method, path, host, scheme, protocol;
	const struct sn_http_field *headers;   /* names lower case, repeats joined by the writer */
	size_t n_headers;
	int64_t size;                /* body bytes; -1 unknown */
	const char *body;            /* NULL: none sent */
	size_t body_len;
	int pack_as_bytes;           /* raw_body (12) instead of body (11) */
};

/* The bytes a CheckRequest needs at most, gRPC frame included. */
size_t sn_xa_check_size(const struct sn_xa_check *c);

/* Writes the gRPC message (5-byte frame: uncompressed, length; then the
 * CheckRequest) into buf. Returns its length, or 0 when cap is too small. */
size_t sn_xa_check_write(const struct sn_xa_check *c, uint8_t *buf, size_t cap);

/* A header operation of the answer: a view into the response bytes. */
struct sn_xa_header {
	struct sn_str key, value;
	int append;                  /* HeaderValueOption.append = true */
};

#define SN_XA_MAX_HEADERS 32       /* per list; more is malformed (bounded) */

/* A decoded CheckResponse. Views into the message bytes. */
struct sn_xa_answer {
	int32_t code;                /* google.rpc.Status.code: 0 allows */
	struct sn_str message;       /* google.rpc.Status.message */
	int denied_status;           /* DeniedHttpResponse.status.code; 0: absent */
	struct sn_str denied_body;
	struct sn_xa_header headers[SN_XA_MAX_HEADERS];   /* ok: upstream; denied: to the client */
	size_t n_headers;
	struct sn_str remove[SN_XA_MAX_HEADERS];          /* ok: headers_to_remove */
	size_t n_remove;
	struct sn_xa_header response[SN_XA_MAX_HEADERS];  /* ok: response_headers_to_add */
	size_t n_response;
};

/* Reads a CheckResponse from the body of a gRPC response: one frame,
 * uncompressed, exactly filling n bytes. Returns 0, or -1 with *why set
 * (a static string) when it is not one. */
int sn_xa_answer_read(const void *body, size_t n, struct sn_xa_answer *a, const char **why);

#endif
