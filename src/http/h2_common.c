/* What the HTTP/2 codecs share (h2_common.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sinew/h2.h"

#include "h2_common.h"

int sn__h2_grow(void **p, size_t *cap, size_t want, size_t elem, size_t max)
{
	if (want <= *cap)
		return 0;
	size_t n = *cap ? *cap : 8;
	while (n < want)
		n *= 2;
	if (n > max)
		n = max;
	if (n < want)
		return -1;
	void *q = realloc(*p, n * elem);
	if (q == NULL)
		return -1;
	*p = q;
	*cap = n;
	return 0;
}

int sn__h2_collect(struct sn__h2_collector *col, size_t max_list, size_t max_fields, const uint8_t *name,
		   size_t nl, const uint8_t *value, size_t vl)
{
	size_t list = col->list + nl + vl + 32;
	if (list > max_list || col->n >= max_fields + 5 /* pseudo-headers */)
		return -1;
	if (sn__h2_grow((void **)&col->buf, &col->cap, col->len + nl + vl, 1, max_list) != 0 ||
	    sn__h2_grow((void **)&col->f, &col->cap_f, col->n + 1, sizeof(*col->f), max_fields + 5) != 0)
		return -1;
	struct sn__h2_field_off *f = &col->f[col->n++];
	f->name = (uint32_t)col->len;
	f->name_len = (uint32_t)nl;
	memcpy(col->buf + col->len, name, nl);
	col->len += nl;
	f->value = (uint32_t)col->len;
	f->value_len = (uint32_t)vl;
	memcpy(col->buf + col->len, value, vl);
	col->len += vl;
	col->list = list;
	return 0;
}

void sn__h2_collector_free(struct sn__h2_collector *col)
{
	free(col->buf);
	free(col->f);
	memset(col, 0, sizeof(*col));
}

int64_t sn__h2_parse_cl(struct sn_str v)
{
	int64_t n = 0;
	for (size_t i = 0; i < v.len; i++) {
		if (v.p[i] < '0' || v.p[i] > '9' || n > (INT64_MAX - 9) / 10)
			return -1;
		n = n * 10 + (v.p[i] - '0');
	}
	return v.len ? n : -1;
}

int sn__h2_connection_specific(struct sn_str name)
{
	static const char *const drop[] = { "connection", "keep-alive", "proxy-connection", "transfer-encoding",
					    "upgrade", "te" };
	for (size_t i = 0; i < SN_ARRAY_LEN(drop); i++)
		if (sn_str_ieq_cstr(name, drop[i]))
			return 1;
	return 0;
}

ssize_t sn__h2_to_nv(const struct sn_http_field *f, size_t n, size_t first, int copy_values, nghttp2_nv **nv,
		     char **buf)
{
	size_t bytes = 0;
	for (size_t i = 0; i < n; i++)
		bytes += f[i].name.len + (copy_values ? f[i].value.len : 0);
	*nv = calloc(first + n, sizeof(**nv));
	*buf = malloc(bytes ? bytes : 1);
	if (*nv == NULL || *buf == NULL) {
		free(*nv);
		free(*buf);
		*nv = NULL;
		*buf = NULL;
		return -1;
	}
	size_t k = first, off = 0;
	for (size_t i = 0; i < n; i++) {
		if (f[i].name.len == 0 || f[i].name.p[0] == ':' || sn__h2_connection_specific(f[i].name))
			continue;
		char *name = *buf + off;
		for (size_t j = 0; j < f[i].name.len; j++)
			name[j] = (char)sn_tolower_ascii((unsigned char)f[i].name.p[j]);
		off += f[i].name.len;
		const char *value = f[i].value.p;
		if (copy_values) {
			memcpy(*buf + off, f[i].value.p, f[i].value.len);
			value = *buf + off;
			off += f[i].value.len;
		}
		(*nv)[k++] = (nghttp2_nv){ (uint8_t *)name, (uint8_t *)value, f[i].name.len, f[i].value.len,
					   NGHTTP2_NV_FLAG_NONE };
	}
	return (ssize_t)k;
}

ssize_t sn__h2_outq_write(struct sn__h2_outq *q, size_t max, const void *p, size_t n)
{
	if (q->off > 0 && q->off == q->len)
		q->off = q->len = 0;
	if (q->off > 0 && q->len + n > q->cap) {
		memmove(q->buf, q->buf + q->off, q->len - q->off);
		q->len -= q->off;
		q->off = 0;
	}
	size_t room = max > q->len ? max - q->len : 0;
	if (room == 0) {
		q->want_writable = 1;
		return SN_EAGAIN;
	}
	size_t take = n < room ? n : room;
	if (sn__h2_grow((void **)&q->buf, &q->cap, q->len + take, 1, max) != 0)
		return SN_ENOMEM;
	memcpy(q->buf + q->len, p, take);
	q->len += take;
	return (ssize_t)take;
}

ssize_t sn__h2_outq_read(struct sn__h2_outq *q, size_t max, uint8_t *buf, size_t length, uint32_t *flags,
			 int *writable)
{
	size_t avail = q->len - q->off;
	size_t n = avail < length ? avail : length;

	*writable = 0;
	if (n > 0) {
		memcpy(buf, q->buf + q->off, n);
		q->off += n;
		if (q->off == q->len)
			q->off = q->len = 0;
	}
	if (q->len == q->off && q->end) {
		*flags |= NGHTTP2_DATA_FLAG_EOF;
	} else if (n == 0) {
		q->deferred = 1;
		return NGHTTP2_ERR_DEFERRED;
	}
	if (q->want_writable && q->len - q->off <= max / 2) {
		q->want_writable = 0;
		*writable = 1;
	}
	return (ssize_t)n;
}

void sn__h2_outq_resume(struct sn__h2_outq *q, nghttp2_session *s, int32_t id)
{
	if (q->deferred) {
		q->deferred = 0;
		nghttp2_session_resume_data(s, id);
	}
}

void sn__h2_outq_free(struct sn__h2_outq *q)
{
	free(q->buf);
	memset(q, 0, sizeof(*q));
}

int sn__h2_on_error(nghttp2_session *s, int code, const char *msg, size_t len, void *user)
{
	struct sn__h2_why *w = user;
	(void)s;
	(void)code;
	snprintf(w->msg, sizeof(w->msg), "%.*s", (int)(len < sizeof(w->msg) ? len : sizeof(w->msg) - 1), msg);
	return 0;
}

int sn__h2_prepare(nghttp2_session_callbacks **cb, nghttp2_option **opt)
{
	*cb = NULL;
	*opt = NULL;
	if (nghttp2_session_callbacks_new(cb) != 0 || nghttp2_option_new(opt) != 0)
		return -1;
	nghttp2_session_callbacks_set_error_callback2(*cb, sn__h2_on_error);
	/* Windows go back when the owner passed the bytes on. */
	nghttp2_option_set_no_auto_window_update(*opt, 1);
	/* Floods: RST_STREAM faster than a token bucket allows (rapid reset,
	 * CVE-2023-44487), more CONTINUATIONs than a head needs
	 * (CVE-2024-27316), SETTINGS and PING that make us queue
	 * acknowledgements. */
	nghttp2_option_set_stream_reset_rate_limit(*opt, 1000, 33);
	nghttp2_option_set_max_continuations(*opt, 8);
	nghttp2_option_set_max_outbound_ack(*opt, 1000);
	nghttp2_option_set_max_settings(*opt, 32);
	nghttp2_option_set_max_send_header_block_length(*opt, 64u << 10);
	return 0;
}

int sn__h2_settings(nghttp2_session *s, uint32_t max_streams, uint32_t stream_window, uint32_t max_header_list,
		    uint32_t conn_window)
{
	nghttp2_settings_entry iv[5];
	size_t n = 0;

	iv[n++] = (nghttp2_settings_entry){ NGHTTP2_SETTINGS_ENABLE_PUSH, 0 };
	iv[n++] = (nghttp2_settings_entry){ NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, stream_window };
	iv[n++] = (nghttp2_settings_entry){ NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, max_header_list };
	if (max_streams)
		iv[n++] = (nghttp2_settings_entry){ NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, max_streams };
	/* A server takes extended CONNECT (RFC 8441: WebSocket over HTTP/2);
	 * with it on, nghttp2 lets :protocol through and checks that such a
	 * request carries :scheme, :path and :authority. The setting means
	 * nothing from a client. */
	if (nghttp2_session_check_server_session(s))
		iv[n++] = (nghttp2_settings_entry){ NGHTTP2_SETTINGS_ENABLE_CONNECT_PROTOCOL, 1 };
	if (nghttp2_submit_settings(s, NGHTTP2_FLAG_NONE, iv, n) != 0 ||
	    nghttp2_session_set_local_window_size(s, NGHTTP2_FLAG_NONE, 0, (int32_t)conn_window) != 0)
		return -1;
	return 0;
}

void sn__h2_limit_defaults(uint32_t *max_header_list, uint32_t *max_fields, uint32_t *stream_window,
			   uint32_t *conn_window, size_t *max_out)
{
	if (!*max_header_list)
		*max_header_list = SN_H2S_DEFAULT_MAX_HEADER_LIST;
	if (!*max_fields || *max_fields > SN_H2S_DEFAULT_MAX_FIELDS)
		*max_fields = SN_H2S_DEFAULT_MAX_FIELDS;
	if (!*stream_window)
		*stream_window = SN_H2S_DEFAULT_STREAM_WINDOW;
	if (!*conn_window)
		*conn_window = SN_H2S_DEFAULT_CONN_WINDOW;
	if (!*max_out)
		*max_out = SN_H2S_DEFAULT_MAX_OUT;
}

int sn__h2_gather(nghttp2_session *s, const char **err, struct sn_buf_pool *pool, struct sn_buf *out)
{
	while (sn_buf_len(out) < SN_H2_GATHER) {
		const uint8_t *p;
		ssize_t n = nghttp2_session_mem_send(s, &p);
		if (n < 0) {
			if (*err == NULL)
				*err = nghttp2_strerror((int)n);
			return SN_ENOMEM;
		}
		if (n == 0)
			break;
		/* A frame is at most 16 KiB and 9: out stays under 48 KiB. */
		if (sn_buf_reserve(pool, out, (size_t)n, 3 * SN_H2_GATHER) != 0)
			return SN_ENOMEM;
		sn_buf_append(out, p, (size_t)n);
	}
	return 0;
}
