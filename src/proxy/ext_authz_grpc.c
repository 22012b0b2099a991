/* Envoy's gRPC external authorization on the wire (ext_authz_grpc.h):
 * a protobuf writer and reader small enough to check by eye, the
 * CheckRequest written from what the filter knows of a request, and the
 * CheckResponse read back into views.
 *
 * No protoc and no libprotobuf: three messages do not earn a code
 * generator and a runtime (DESIGN.md §10). Everything here is bounded by
 * the buffers it is given: the writer stops at its capacity, the reader
 * never looks past the bytes it was handed, nests only as deep as the
 * schema does, and keeps at most SN_XA_MAX_HEADERS of each header list.
 * The answer comes from a peer, so it is read as hostile: a header name
 * that is not an HTTP token or a value with a control character is
 * malformed (it would otherwise reach the app's request or the client's
 * response), as is anything the schema does not allow. */
#include <string.h>

#include "sinew/h1.h"
#include "ext_authz_grpc.h"

/* ---- writer ---------------------------------------------------------------- */

#define LEN_RESERVE 5   /* a nested message's length, as a varint: up to 2^35 */

static size_t varint_enc(uint8_t out[10], uint64_t v)
{
	size_t n = 0;
	while (v >= 0x80) {
		out[n++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	out[n++] = (uint8_t)v;
	return n;
}

static void put(struct sn_pbw *w, const void *p, size_t n)
{
	if (w->overflow || n > w->cap - w->len) {
		w->overflow = 1;
		return;
	}
	if (n)
		memcpy(w->p + w->len, p, n);
	w->len += n;
}

static void put_varint(struct sn_pbw *w, uint64_t v)
{
	uint8_t b[10];
	put(w, b, varint_enc(b, v));
}

static void put_tag(struct sn_pbw *w, uint32_t field, enum sn_pb_wire wire)
{
	put_varint(w, ((uint64_t)field << 3) | (uint64_t)wire);
}

void sn_pbw_init(struct sn_pbw *w, uint8_t *buf, size_t cap)
{
	memset(w, 0, sizeof(*w));
	w->p = buf;
	w->cap = cap;
}

void sn_pbw_varint(struct sn_pbw *w, uint32_t field, uint64_t v)
{
	put_tag(w, field, SN_PB_VARINT);
	put_varint(w, v);
}

void sn_pbw_bytes(struct sn_pbw *w, uint32_t field, const void *p, size_t n, int keep_empty)
{
	if (n == 0 && !keep_empty)
		return;
	put_tag(w, field, SN_PB_LEN);
	put_varint(w, n);
	put(w, p, n);
}

void sn_pbw_begin(struct sn_pbw *w, uint32_t field)
{
	static const uint8_t hole[LEN_RESERVE];
	if (w->depth >= SN_PB_MAX_DEPTH) {
		w->overflow = 1;
		w->depth++;
		return;
	}
	put_tag(w, field, SN_PB_LEN);
	put(w, hole, sizeof(hole));
	w->open[w->depth++] = w->len;
}

void sn_pbw_end(struct sn_pbw *w)
{
	if (w->depth == 0) {
		w->overflow = 1;
		return;
	}
	w->depth--;
	if (w->overflow || w->depth >= SN_PB_MAX_DEPTH)
		return;
	/* The body was written after a hole of LEN_RESERVE bytes: its length
	 * goes at the hole's start and the body moves up to follow it, so
	 * the encoding stays minimal (what any protobuf library writes). */
	size_t start = w->open[w->depth], body = w->len - start;
	uint8_t b[10];
	size_t k = varint_enc(b, body);
	if (k > LEN_RESERVE) {
		w->overflow = 1;
		return;
	}
	memmove(w->p + start - LEN_RESERVE + k, w->p + start, body);
	memcpy(w->p + start - LEN_RESERVE, b, k);
	w->len = start - LEN_RESERVE + k + body;
}

/* ---- reader ---------------------------------------------------------------- */

static int get_varint(struct sn_pbr *r, uint64_t *out)
{
	uint64_t v = 0;
	for (unsigned i = 0; i < 10; i++) {
		if (r->p == r->end)
			return -1;
		uint8_t b = *r->p++;
		if (i == 9 && b > 1)
			return -1;   /* past 64 bits */
		v |= (uint64_t)(b & 0x7f) << (7 * i);
		if (!(b & 0x80)) {
			*out = v;
			return 0;
		}
	}
	return -1;
}

int sn_pbr_next(struct sn_pbr *r, struct sn_pb_field *f)
{
	uint64_t key, v = 0;

	if (r->p == r->end)
		return 0;
	if (get_varint(r, &key) != 0 || (key >> 3) == 0 || (key >> 3) > 0x1fffffff)
		return -1;
	memset(f, 0, sizeof(*f));
	f->num = (uint32_t)(key >> 3);
	f->wire = (enum sn_pb_wire)(key & 7);
	switch ((int)(key & 7)) {
	case SN_PB_VARINT:
		if (get_varint(r, &f->v) != 0)
			return -1;
		return 1;
	case SN_PB_I64:
	case SN_PB_I32: {
		size_t n = (key & 7) == SN_PB_I64 ? 8 : 4;
		if ((size_t)(r->end - r->p) < n)
			return -1;
		for (size_t i = 0; i < n; i++)
			v |= (uint64_t)r->p[i] << (8 * i);
		f->v = v;
		r->p += n;
		return 1;
	}
	case SN_PB_LEN:
		if (get_varint(r, &v) != 0 || v > (uint64_t)(r->end - r->p))
			return -1;
		f->p = r->p;
		f->n = (size_t)v;
		r->p += v;
		return 1;
	default:
		return -1;   /* groups (3, 4) are not in these schemas; 6, 7 do not exist */
	}
}

/* ---- CheckRequest ---------------------------------------------------------- */

size_t sn_xa_check_size(const struct sn_xa_check *c)
{
	/* Each field costs its bytes and at most 2 (tag) + 5 (length) more;
	 * each nested message 2 + LEN_RESERVE. Counted loosely upward. */
	size_t n = 5 + 512;
	n += c->source.address.len + c->source.principal.len + c->destination.address.len +
	     c->destination.principal.len;
	n += c->id.len + c->method.len + 2 * (c->path.len + c->host.len + c->method.len) + c->scheme.len +
	     c->protocol.len + c->body_len;
	for (size_t i = 0; i < c->n_headers; i++)
		n += 32 + c->headers[i].name.len + c->headers[i].value.len;
	return n;
}

static void write_peer(struct sn_pbw *w, uint32_t field, const struct sn_xa_peer *peer)
{
	sn_pbw_begin(w, field);                 /* AttributeContext.Peer */
	if (peer->address.len) {
		sn_pbw_begin(w, 1);             /* Peer.address: config.core.v3.Address */
		sn_pbw_begin(w, 1);             /* Address.socket_address: SocketAddress */
		sn_pbw_str(w, 2, peer->address);   /* SocketAddress.address */
		if (peer->port)
			sn_pbw_varint(w, 3, peer->port);   /* SocketAddress.port_value */
		sn_pbw_end(w);
		sn_pbw_end(w);
	}
	sn_pbw_str(w, 4, peer->principal);      /* Peer.principal */
	sn_pbw_end(w);
}

/* One entry of map<string, string> headers: a message {key = 1, value = 2}.
 * The key lower case; the values of every field with this name joined
 * with "," (the map has one entry per name, as Envoy merges them). */
static void write_header(struct sn_pbw *w, const struct sn_xa_check *c, size_t at)
{
	struct sn_str name = c->headers[at].name;
	size_t total = 0, count = 0;

	for (size_t i = at; i < c->n_headers; i++)
		if (sn_str_ieq(c->headers[i].name, name)) {
			total += c->headers[i].value.len;
			count++;
		}
	total += count - 1;
	sn_pbw_begin(w, 3);
	sn_pbw_str(w, 1, name);
	if (!w->overflow)
		for (size_t k = w->len - name.len; k < w->len; k++)
			w->p[k] = (uint8_t)sn_tolower_ascii(w->p[k]);
	put_tag(w, 2, SN_PB_LEN);
	put_varint(w, total);
	for (size_t i = at, seen = 0; i < c->n_headers; i++) {
		if (!sn_str_ieq(c->headers[i].name, name))
			continue;
		if (seen++)
			put(w, ",", 1);
		put(w, c->headers[i].value.p, c->headers[i].value.len);
	}
	sn_pbw_end(w);
}

static void write_pseudo(struct sn_pbw *w, const char *name, struct sn_str value)
{
	sn_pbw_begin(w, 3);
	sn_pbw_bytes(w, 1, name, strlen(name), 1);
	sn_pbw_bytes(w, 2, value.p, value.len, 1);
	sn_pbw_end(w);
}

size_t sn_xa_check_write(const struct sn_xa_check *c, uint8_t *buf, size_t cap)
{
	struct sn_pbw w;

	if (cap < 5)
		return 0;
	sn_pbw_init(&w, buf + 5, cap - 5);
	sn_pbw_begin(&w, 1);                    /* CheckRequest.attributes */
	write_peer(&w, 1, &c->source);          /* AttributeContext.source */
	write_peer(&w, 2, &c->destination);     /* AttributeContext.destination */
	sn_pbw_begin(&w, 4);                    /* AttributeContext.request */
	sn_pbw_begin(&w, 2);                    /* Request.http: HttpRequest */
	sn_pbw_str(&w, 1, c->id);
	sn_pbw_str(&w, 2, c->method);
	/* Envoy's map holds the pseudo-headers too: authorizers read them. */
	write_pseudo(&w, ":authority", c->host);
	write_pseudo(&w, ":method", c->method);
	write_pseudo(&w, ":path", c->path);
	for (size_t i = 0; i < c->n_headers; i++) {
		size_t j = 0;
		while (j < i && !sn_str_ieq(c->headers[j].name, c->headers[i].name))
			j++;
		if (j == i)   /* the first of its name: the entry for all of them */
			write_header(&w, c, i);
	}
	sn_pbw_str(&w, 4, c->path);
	sn_pbw_str(&w, 5, c->host);
	sn_pbw_str(&w, 6, c->scheme);
	if (c->size != 0)
		sn_pbw_varint(&w, 9, (uint64_t)c->size);   /* int64: -1 is ten bytes, as protobuf writes it */
	sn_pbw_str(&w, 10, c->protocol);
	if (c->body != NULL)
		sn_pbw_bytes(&w, c->pack_as_bytes ? 12 : 11, c->body, c->body_len, 0);
	sn_pbw_end(&w);
	sn_pbw_end(&w);
	sn_pbw_end(&w);
	if (w.overflow || w.depth != 0 || w.len > UINT32_MAX)
		return 0;
	buf[0] = 0;   /* not compressed */
	buf[1] = (uint8_t)(w.len >> 24);
	buf[2] = (uint8_t)(w.len >> 16);
	buf[3] = (uint8_t)(w.len >> 8);
	buf[4] = (uint8_t)w.len;
	return 5 + w.len;
}

/* ---- CheckResponse ---------------------------------------------------------- */

static struct sn_str view(const struct sn_pb_field *f)
{
	return sn_str_make((const char *)f->p, f->n);
}

/* config.core.v3.HeaderValueOption: header (1: HeaderValue {key 1,
 * value 2, raw_value 3}), append (2: BoolValue {value 1}); append_action
 * (3) and keep_empty_value (4) are read over. */
static int read_header_option(const struct sn_pb_field *opt, struct sn_xa_header *h, const char **why)
{
	struct sn_pbr r, hv;
	struct sn_pb_field f, g;
	int rc, got_key = 0;

	memset(h, 0, sizeof(*h));
	sn_pbr_init(&r, opt->p, opt->n);
	while ((rc = sn_pbr_next(&r, &f)) == 1) {
		if (f.num == 1 && f.wire == SN_PB_LEN) {
			sn_pbr_init(&hv, f.p, f.n);
			while ((rc = sn_pbr_next(&hv, &g)) == 1) {
				if (g.num == 1 && g.wire == SN_PB_LEN) {
					h->key = view(&g);
					got_key = 1;
				} else if (g.num == 2 && g.wire == SN_PB_LEN) {
					h->value = view(&g);
				} else if (g.num == 3 && g.wire == SN_PB_LEN) {
					if (h->value.len == 0)   /* raw_value: when value is empty */
						h->value = view(&g);
				} else if (g.num <= 3) {
					rc = -1;
					break;
				}
			}
			if (rc != 0)
				break;
		} else if (f.num == 2 && f.wire == SN_PB_LEN) {
			sn_pbr_init(&hv, f.p, f.n);
			while ((rc = sn_pbr_next(&hv, &g)) == 1)
				if (g.num == 1 && g.wire == SN_PB_VARINT)
					h->append = g.v != 0;
			if (rc != 0)
				break;
		} else if (f.num <= 4 && f.wire != (f.num == 1 || f.num == 2 ? SN_PB_LEN : SN_PB_VARINT)) {
			rc = -1;
			break;
		}
	}
	if (rc != 0) {
		*why = "a HeaderValueOption that is not protobuf";
		return -1;
	}
	if (!got_key || !sn_h1_is_token(h->key)) {
		*why = "a header whose key is not an HTTP field name";
		return -1;
	}
	if (!sn_h1_is_field_value(h->value)) {
		*why = "a header value with control characters";
		return -1;
	}
	return 0;
}

static int add_header(struct sn_xa_header *list, size_t *n, const struct sn_pb_field *f, const char **why)
{
	if (*n >= SN_XA_MAX_HEADERS) {
		*why = "more headers than Sinew takes (32 per list)";
		return -1;
	}
	return read_header_option(f, &list[(*n)++], why);
}

/* google.rpc.Status: code (1), message (2); details (3) read over. */
static int read_status(const struct sn_pb_field *st, struct sn_xa_answer *a)
{
	struct sn_pbr r;
	struct sn_pb_field f;
	int rc;

	a->code = 0;
	a->message = SN_STR_NULL;
	sn_pbr_init(&r, st->p, st->n);
	while ((rc = sn_pbr_next(&r, &f)) == 1) {
		if (f.num == 1 && f.wire == SN_PB_VARINT)
			a->code = (int32_t)(uint32_t)f.v;
		else if (f.num == 2 && f.wire == SN_PB_LEN)
			a->message = view(&f);
		else if (f.num <= 2)
			return -1;
	}
	return rc;
}

/* DeniedHttpResponse: status (1: HttpStatus {code 1}), headers (2), body (3). */
static int read_denied(const struct sn_pb_field *d, struct sn_xa_answer *a, const char **why)
{
	struct sn_pbr r, s;
	struct sn_pb_field f, g;
	int rc;

	sn_pbr_init(&r, d->p, d->n);
	while ((rc = sn_pbr_next(&r, &f)) == 1) {
		if (f.num == 1 && f.wire == SN_PB_LEN) {
			sn_pbr_init(&s, f.p, f.n);
			while ((rc = sn_pbr_next(&s, &g)) == 1)
				if (g.num == 1 && g.wire == SN_PB_VARINT)
					a->denied_status = g.v <= 999 ? (int)g.v : 0;
			if (rc != 0)
				break;
		} else if (f.num == 2 && f.wire == SN_PB_LEN) {
			if (add_header(a->headers, &a->n_headers, &f, why) != 0)
				return -1;
		} else if (f.num == 3 && f.wire == SN_PB_LEN) {
			a->denied_body = view(&f);
		} else if (f.num <= 3) {
			rc = -1;
			break;
		}
	}
	if (rc != 0)
		*why = "a DeniedHttpResponse that is not protobuf";
	return rc;
}

/* OkHttpResponse: headers (2), headers_to_remove (5),
 * response_headers_to_add (6); dynamic_metadata (3) and the query
 * parameter fields read over. */
static int read_ok(const struct sn_pb_field *o, struct sn_xa_answer *a, const char **why)
{
	struct sn_pbr r;
	struct sn_pb_field f;
	int rc;

	sn_pbr_init(&r, o->p, o->n);
	while ((rc = sn_pbr_next(&r, &f)) == 1) {
		if (f.num == 2 && f.wire == SN_PB_LEN) {
			if (add_header(a->headers, &a->n_headers, &f, why) != 0)
				return -1;
		} else if (f.num == 5 && f.wire == SN_PB_LEN) {
			if (a->n_remove >= SN_XA_MAX_HEADERS) {
				*why = "more headers_to_remove than Sinew takes (32)";
				return -1;
			}
			if (!sn_h1_is_token(view(&f))) {
				*why = "a header to remove that is not an HTTP field name";
				return -1;
			}
			a->remove[a->n_remove++] = view(&f);
		} else if (f.num == 6 && f.wire == SN_PB_LEN) {
			if (add_header(a->response, &a->n_response, &f, why) != 0)
				return -1;
		} else if (f.num == 2 || f.num == 5 || f.num == 6) {
			rc = -1;
			break;
		}
	}
	if (rc != 0)
		*why = "an OkHttpResponse that is not protobuf";
	return rc;
}

int sn_xa_answer_read(const void *body, size_t n, struct sn_xa_answer *a, const char **why)
{
	const uint8_t *b = body;
	struct sn_pbr r;
	struct sn_pb_field f;
	int rc;

	memset(a, 0, sizeof(*a));
	*why = NULL;
	if (n < 5) {
		*why = "no gRPC message in the answer";
		return -1;
	}
	if (b[0] != 0) {
		*why = "a compressed gRPC message (none was asked for)";
		return -1;
	}
	uint32_t len = (uint32_t)b[1] << 24 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 8 | b[4];
	if (len != n - 5) {
		*why = "a gRPC frame whose length is not the answer's (cut short, or more than one message)";
		return -1;
	}
	sn_pbr_init(&r, b + 5, len);
	while ((rc = sn_pbr_next(&r, &f)) == 1) {
		if (f.num == 1 && f.wire == SN_PB_LEN) {
			if (read_status(&f, a) != 0) {
				*why = "a google.rpc.Status that is not protobuf";
				return -1;
			}
		} else if ((f.num == 2 || f.num == 3) && f.wire == SN_PB_LEN) {
			/* a oneof: the last member given is the one (protobuf's rule) */
			a->denied_status = 0;
			a->denied_body = SN_STR_NULL;
			a->n_headers = a->n_remove = a->n_response = 0;
			if ((f.num == 2 ? read_denied(&f, a, why) : read_ok(&f, a, why)) != 0)
				return -1;
		} else if (f.num <= 3) {
			rc = -1;
			break;
		}
	}
	if (rc != 0) {
		*why = "a CheckResponse that is not protobuf";
		return -1;
	}
	return 0;
}
