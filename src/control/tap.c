/* Tap sessions (docs/api.md "Tap"): GET /api/v1/tap streams, as one JSON
 * object a line, the requests the chosen proxies see, for `sinew tap`,
 * `sinew top` and the dashboard.
 *
 * Who may tap: tap shows live request heads (and bodies, when asked) of
 * every workload it selects, so it is an authorization decision. sinewd
 * keeps a random token in DATA_DIR/tap.token (0600, made at start when
 * missing); a request must carry it (authorization: Bearer TOKEN). Whoever
 * can read the data directory -- the user who runs the mesh -- can tap;
 * anyone else who can reach the API cannot. Headers that carry credentials
 * are redacted by the proxies whatever the tap asked.
 *
 * A session: the API hands the connection over (sn_mesh_tap_start); the
 * session sends each selected proxy a "tap" message over its control link,
 * relays the "tapEvent" messages that come back, and sends "untap" when it
 * ends (the client went away, --max events, the duration). A proxy that
 * connects while a session runs and matches it is tapped too. Bounded:
 * SN_TAP_MAX_SESSIONS at once, 1 MiB waiting for a slow reader (further
 * events are counted as dropped), each proxy rate-limits its events
 * (SN_TAP_RATE a second per tap). Loop thread only. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libfyaml.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "mesh_internal.h"
#include "sinew/file.h"
#include "sinew/log.h"
#include "sinew/out.h"

#define TAP_TOKEN_FILE "tap.token"
#define TAP_TOKEN_HEX 64
#define TAP_MAX_SESSIONS 16
#define TAP_MAX_PROXIES 1024          /* proxies one session taps */
#define TAP_MAX_BUFFERED (1u << 20)
#define TAP_DEFAULT_MS 600000u        /* a session without a duration: 10 minutes */
#define TAP_MAX_MS 3600000u

struct tap_session {
	struct mesh_tap *t;
	uint64_t id;
	char wire_id[24];             /* "t<id>": the proxies' name for it */
	int fd;
	struct sn_io io;
	struct sn_timer timer;
	struct sn_tap_query q;
	uint64_t *serials;            /* proxies tapped (px->serial) */
	size_t n_serials;
	size_t left_out;              /* matching proxies past TAP_MAX_PROXIES */
	uint64_t events, dropped;
	char *out;
	size_t out_len, out_off;
	int ending;                   /* the last line is queued: close once it left */
	struct tap_session *next, **pprev;
};

struct mesh_tap {
	struct sn_mesh *m;
	char token[TAP_TOKEN_HEX + 1];
	struct tap_session *sessions;
	unsigned n_sessions;
	uint64_t next_id;
};

/* ---- the token --------------------------------------------------------- */

static int read_token(const char *dir, char *out)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s", dir, TAP_TOKEN_FILE);
	FILE *f = fopen(path, "re");
	if (f == NULL)
		return -1;
	size_t n = fread(out, 1, TAP_TOKEN_HEX, f);
	fclose(f);
	out[n] = '\0';
	if (n != TAP_TOKEN_HEX)
		return -2;
	for (size_t i = 0; i < n; i++)
		if (sn_hex_value((unsigned char)out[i]) < 0)
			return -2;
	return 0;
}

int mesh_tap_start(struct sn_mesh *m)
{
	struct mesh_tap *t = calloc(1, sizeof(*t));
	unsigned char raw[TAP_TOKEN_HEX / 2];
	const char *dir = m->store->dir;

	if (t == NULL)
		return SN_ENOMEM;
	t->m = m;
	int r = read_token(dir, t->token);
	if (r == -2)
		sn_log(SN_LOG_WARN, "tap: %s/%s is not %d hex digits; making a new one", dir, TAP_TOKEN_FILE,
		       TAP_TOKEN_HEX);
	if (r != 0) {
		if (RAND_bytes(raw, sizeof(raw)) != 1) {
			sn_log(SN_LOG_ERROR, "tap: cannot draw random bytes for the tap token; tap is refused to all");
			t->token[0] = '\0';
		} else {
			for (size_t i = 0; i < sizeof(raw); i++)
				snprintf(t->token + 2 * i, 3, "%02x", raw[i]);
			struct iovec iov = { t->token, TAP_TOKEN_HEX };
			if (sn_write_atomic(dir, TAP_TOKEN_FILE, &iov, 1, 0600, m->store->no_sync) != 0) {
				sn_log(SN_LOG_ERROR, "tap: cannot write %s/%s: %s; tap is refused to all", dir,
				       TAP_TOKEN_FILE, strerror(errno));
				t->token[0] = '\0';
			}
		}
	}
	m->tap = t;
	return 0;
}

int sn_mesh_tap_authorize(struct sn_mesh *m, struct sn_str authorization, char *why, size_t size)
{
	static const struct sn_str bearer = SN_STR_LIT("Bearer ");
	struct mesh_tap *t = m != NULL ? m->tap : NULL;

	if (t == NULL || t->token[0] == '\0') {
		snprintf(why, size, "this sinewd has no tap token (see its log); tap is refused");
		return 503;
	}
	if (authorization.p == NULL) {
		snprintf(why, size, "tap needs sinewd's tap token: send authorization: Bearer TOKEN, the token being the "
				    "file tap.token in sinewd's data directory (sinew tap reads it when run as the user "
				    "who runs the mesh)");
		return 401;
	}
	if (authorization.len != bearer.len + TAP_TOKEN_HEX || strncasecmp(authorization.p, bearer.p, bearer.len) != 0 ||
	    CRYPTO_memcmp(authorization.p + bearer.len, t->token, TAP_TOKEN_HEX) != 0) {
		snprintf(why, size, "the tap token does not match sinewd's (DATA_DIR/tap.token); tap is refused");
		return 403;
	}
	return 0;
}

/* ---- sessions ---------------------------------------------------------- */

static int selects(const struct tap_session *s, const struct sn_mesh_proxy *px)
{
	const struct sn_tap_query *q = &s->q;
	if (!px->hello || px->gone || px->bootstrap || px->conn == NULL)
		return 0;
	if (q->ns[0] && strcmp(q->ns, px->ns ? px->ns : "default") != 0)
		return 0;
	/* a workload (reviews-v1), or a service: all its workloads (reviews) */
	if (q->workload[0] && (px->workload == NULL || strcmp(q->workload, px->workload) != 0) &&
	    (px->service == NULL || strcmp(q->workload, px->service) != 0))
		return 0;
	if (q->pod[0] && (px->pod == NULL || strcmp(q->pod, px->pod) != 0))
		return 0;
	if (q->proxy[0] && (px->id == NULL || strcmp(q->proxy, px->id) != 0))
		return 0;
	return 1;
}

static void tap_message(const struct tap_session *s, int add, struct sn_out *o)
{
	const struct sn_tap_query *q = &s->q;
	sn_out_printf(o, "{\"type\":\"%s\",\"id\":\"%s\"", add ? "tap" : "untap", s->wire_id);
	if (add) {
		sn_out_cstr(o, ",\"direction\":");
		sn_out_json_cstr(o, q->direction);
		sn_out_cstr(o, ",\"method\":");
		sn_out_json_cstr(o, q->method);
		sn_out_cstr(o, ",\"path\":");
		sn_out_json_cstr(o, q->path);
		sn_out_cstr(o, ",\"authority\":");
		sn_out_json_cstr(o, q->authority);
		sn_out_cstr(o, ",\"status\":");
		sn_out_json_cstr(o, q->status);
		sn_out_printf(o, ",\"bodies\":\"%s\",\"durationMs\":\"%u\",\"redact\":[", q->bodies ? "true" : "false",
			      q->duration_ms);
		/* comma-separated names */
		const char *p = q->redact;
		int first = 1;
		while (*p) {
			const char *c = strchr(p, ',');
			size_t n = c ? (size_t)(c - p) : strlen(p);
			if (n > 0) {
				if (!first)
					sn_out_raw(o, ",", 1);
				sn_out_json_str(o, p, n);
				first = 0;
			}
			p += n + (c != NULL);
		}
		sn_out_raw(o, "]", 1);
	}
	sn_out_raw(o, "}", 1);
}

/* A proxy as the stream names it: its id, namespace, workload and pod. */
static void out_proxy(struct sn_out *o, const struct sn_mesh_proxy *px)
{
	sn_out_cstr(o, "{\"id\":");
	sn_out_json_cstr(o, px->id);
	sn_out_cstr(o, ",\"namespace\":");
	sn_out_json_cstr(o, px->ns);
	sn_out_cstr(o, ",\"workload\":");
	sn_out_json_cstr(o, px->workload);
	sn_out_cstr(o, ",\"pod\":");
	sn_out_json_cstr(o, px->pod);
	sn_out_raw(o, "}", 1);
}

static void send_to(struct sn_mesh_proxy *px, struct sn_out *o)
{
	if (!o->failed && px->conn != NULL)
		(void)sn_xds_send(px->conn, o->p, o->len);
}

static int tapped(const struct tap_session *s, uint64_t serial)
{
	for (size_t i = 0; i < s->n_serials; i++)
		if (s->serials[i] == serial)
			return 1;
	return 0;
}

/* Taps px for s, unless it already is. */
static void tap_proxy(struct tap_session *s, struct sn_mesh_proxy *px)
{
	if (tapped(s, px->serial))
		return;
	if (s->n_serials >= TAP_MAX_PROXIES) {
		s->left_out++;
		return;
	}
	s->serials[s->n_serials++] = px->serial;
	struct sn_out o = { 0 };
	tap_message(s, 1, &o);
	send_to(px, &o);
	sn_out_free(&o);
}

static void flush(struct tap_session *s);

static void session_end(struct tap_session *s, const char *why)
{
	struct mesh_tap *t = s->t;
	struct sn_out o = { 0 };

	tap_message(s, 0, &o);
	for (struct sn_mesh_proxy *px = t->m->proxies; px != NULL; px = px->next)
		if (tapped(s, px->serial))
			send_to(px, &o);
	sn_out_free(&o);
	sn_log(SN_LOG_INFO, "tap %s ended: %s (%" PRIu64 " events, %" PRIu64 " dropped)", s->wire_id, why, s->events,
	       s->dropped);
	sn_timer_stop(t->m->loop, &s->timer);
	sn_io_stop(t->m->loop, &s->io);
	close(s->fd);
	if (s->next != NULL)
		s->next->pprev = s->pprev;
	*s->pprev = s->next;
	t->n_sessions--;
	free(s->serials);
	free(s->out);
	free(s);
}

/* Queues one line (text, n bytes, without its newline); 0, or -1 when the
 * reader is too far behind (the line is dropped). */
static int queue_line(struct tap_session *s, const char *text, size_t n)
{
	if (s->out_off > 0 && s->out_off == s->out_len)
		s->out_off = s->out_len = 0;
	if (s->out_len - s->out_off + n + 1 > TAP_MAX_BUFFERED)
		return -1;
	if (s->out_off > 0) {
		memmove(s->out, s->out + s->out_off, s->out_len - s->out_off);
		s->out_len -= s->out_off;
		s->out_off = 0;
	}
	char *p = realloc(s->out, s->out_len + n + 1);
	if (p == NULL)
		return -1;
	s->out = p;
	memcpy(s->out + s->out_len, text, n);
	s->out[s->out_len + n] = '\n';
	s->out_len += n + 1;
	return 0;
}

static void flush(struct tap_session *s)
{
	while (s->out_off < s->out_len) {
		ssize_t n = write(s->fd, s->out + s->out_off, s->out_len - s->out_off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0) {
			session_end(s, "the client went away");
			return;
		}
		s->out_off += (size_t)n;
	}
	if (s->ending)
		session_end(s, s->events >= s->q.max_events && s->q.max_events ? "its --max events were sent"
										  : "its duration passed");
}

/* The last line, then the end once it left. */
static void session_finish(struct tap_session *s, const char *why)
{
	struct sn_out o = { 0 };
	sn_out_cstr(&o, "{\"type\":\"end\",\"reason\":");
	sn_out_json_cstr(&o, why);
	sn_out_printf(&o, ",\"events\":%" PRIu64 ",\"dropped\":%" PRIu64 "}", s->events, s->dropped);
	if (!o.failed)
		(void)queue_line(s, o.p, o.len);
	sn_out_free(&o);
	s->ending = 1;
	flush(s);
}

static void on_io(struct sn_loop *loop, struct sn_io *io, unsigned events)
{
	struct tap_session *s = sn_container_of(io, struct tap_session, io);
	char junk[512];
	(void)loop;

	if (events & (SN_IO_READ | SN_IO_HUP)) {
		/* The client says nothing more after its request; a read of 0
		 * (or an error) means it went away. */
		for (;;) {
			ssize_t n = read(s->fd, junk, sizeof(junk));
			if (n > 0)
				continue;
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
				break;
			session_end(s, "the client went away");
			return;
		}
	}
	flush(s);
}

static void on_timer(struct sn_loop *loop, struct sn_timer *tm)
{
	struct tap_session *s = sn_container_of(tm, struct tap_session, timer);
	(void)loop;
	session_finish(s, "duration");
}

int sn_mesh_tap_start(struct sn_mesh *m, int fd, const struct sn_tap_query *q, char *err, size_t size)
{
	struct mesh_tap *t = m != NULL ? m->tap : NULL;
	struct tap_session *s;
	size_t matching = 0;

	if (t == NULL) {
		snprintf(err, size, "this sinewd serves no proxies: nothing to tap");
		return 503;
	}
	if (t->n_sessions >= TAP_MAX_SESSIONS) {
		snprintf(err, size, "%d taps run at once already, the limit; end one (Ctrl-C) and try again",
			 TAP_MAX_SESSIONS);
		return 429;
	}
	s = calloc(1, sizeof(*s));
	if (s == NULL || (s->serials = calloc(TAP_MAX_PROXIES, sizeof(*s->serials))) == NULL) {
		free(s);
		snprintf(err, size, "sinewd is out of memory");
		return 503;
	}
	s->t = t;
	s->fd = fd;
	s->q = *q;
	if (s->q.duration_ms == 0 || s->q.duration_ms > TAP_MAX_MS)
		s->q.duration_ms = s->q.duration_ms == 0 ? TAP_DEFAULT_MS : TAP_MAX_MS;
	s->id = ++t->next_id;
	snprintf(s->wire_id, sizeof(s->wire_id), "t%" PRIu64, s->id);
	for (struct sn_mesh_proxy *px = m->proxies; px != NULL; px = px->next)
		if (selects(s, px))
			matching++;
	if (matching == 0) {
		free(s->serials);
		free(s);
		snprintf(err, size, "no connected proxy matches%s%s%s%s%s%s (see sinew ps, or GET /api/v1/proxies)",
			 q->ns[0] ? " namespace " : "", q->ns, q->workload[0] ? " workload " : "", q->workload,
			 q->pod[0] ? " pod " : q->proxy[0] ? " proxy " : "", q->pod[0] ? q->pod : q->proxy);
		return 404;
	}
	static const char head[] = "HTTP/1.1 200 OK\r\ncontent-type: application/x-ndjson\r\n"
				   "cache-control: no-store\r\nx-content-type-options: nosniff\r\nconnection: close\r\n\r\n";
	if (sn_io_start(m->loop, &s->io, fd, on_io) != 0) {
		free(s->serials);
		free(s);
		snprintf(err, size, "sinewd cannot watch the connection");
		return 503;
	}
	s->next = t->sessions;
	if (s->next != NULL)
		s->next->pprev = &s->next;
	s->pprev = &t->sessions;
	t->sessions = s;
	t->n_sessions++;
	sn_timer_start(m->loop, &s->timer, s->q.duration_ms, on_timer);
	for (struct sn_mesh_proxy *px = m->proxies; px != NULL; px = px->next)
		if (selects(s, px))
			tap_proxy(s, px);

	/* the head, then a first line naming what is tapped */
	struct sn_out o = { 0 };
	sn_out_printf(&o, "{\"type\":\"start\",\"tap\":\"%s\",\"durationMs\":%u,\"proxies\":[", s->wire_id,
		      s->q.duration_ms);
	int first = 1;
	for (struct sn_mesh_proxy *px = m->proxies; px != NULL; px = px->next) {
		if (!tapped(s, px->serial))
			continue;
		if (!first)
			sn_out_raw(&o, ",", 1);
		out_proxy(&o, px);
		first = 0;
	}
	sn_out_printf(&o, "],\"proxiesLeftOut\":%zu}", s->left_out);
	if (queue_line(s, head, sizeof(head) - 1) == 0 && s->out_len > 0)
		s->out_len--;   /* the head has no newline of its own */
	if (!o.failed)
		(void)queue_line(s, o.p, o.len);
	sn_out_free(&o);
	sn_log(SN_LOG_INFO, "tap %s: %zu proxies%s%s%s%s", s->wire_id, s->n_serials, q->ns[0] ? ", namespace " : "",
	       q->ns, q->workload[0] ? ", workload " : "", q->workload);
	flush(s);
	return 0;
}

/* ---- from the proxies -------------------------------------------------- */

void mesh_tap_on_event(struct sn_mesh *m, struct sn_mesh_proxy *px, struct fy_node *root, const char *msg,
		       size_t len)
{
	struct mesh_tap *t = m->tap;
	struct fy_node *id = fy_node_mapping_lookup_by_string(root, "tap", FY_NT);
	struct fy_node *ev = fy_node_mapping_lookup_by_string(root, "event", FY_NT);
	struct fy_node *dr = fy_node_mapping_lookup_by_string(root, "dropped", FY_NT);
	const char *ids = id != NULL && fy_node_is_scalar(id) ? fy_node_get_scalar0(id) : NULL;
	const char *drs = dr != NULL && fy_node_is_scalar(dr) ? fy_node_get_scalar0(dr) : "0";
	struct tap_session *s;
	char prefix[160];

	if (t == NULL || ids == NULL || ev == NULL || !fy_node_is_mapping(ev))
		return;
	for (s = t->sessions; s != NULL; s = s->next)
		if (!strcmp(s->wire_id, ids))
			break;
	/* Only a proxy this session tapped speaks for it; a late event of a
	 * session that ended is dropped. */
	if (s == NULL || s->ending || !tapped(s, px->serial))
		return;
	uint64_t dropped = strtoull(drs, NULL, 10);
	s->dropped += dropped;
	/* The event is relayed as the proxy wrote it: the message parsed as
	 * one JSON object, and it is laid out as tap.c (proxy) writes it, so
	 * what follows this prefix, less the closing brace, is the event's
	 * object. Laid out otherwise, it is dropped. */
	int pl = snprintf(prefix, sizeof(prefix), "{\"type\":\"tapEvent\",\"tap\":\"%s\",\"dropped\":\"%s\",\"event\":", ids,
			  drs);
	while (len > 0 && (msg[len - 1] == '\n' || msg[len - 1] == '\r' || msg[len - 1] == ' '))
		len--;
	if (pl <= 0 || (size_t)pl >= sizeof(prefix) || len < (size_t)pl + 3 || memcmp(msg, prefix, (size_t)pl) != 0 ||
	    msg[pl] != '{' || msg[len - 1] != '}' || msg[len - 2] != '}') {
		s->dropped++;
		return;
	}
	struct sn_out o = { 0 };
	sn_out_cstr(&o, "{\"type\":\"event\",\"proxy\":");
	out_proxy(&o, px);
	sn_out_printf(&o, ",\"droppedBefore\":%" PRIu64 ",\"event\":", dropped);
	sn_out_raw(&o, msg + pl, len - 1 - (size_t)pl);
	sn_out_raw(&o, "}", 1);
	if (o.failed || queue_line(s, o.p, o.len) != 0)
		s->dropped++;
	else
		s->events++;
	sn_out_free(&o);
	if (s->q.max_events && s->events >= s->q.max_events)
		session_finish(s, "max");
	else
		flush(s);
}

void mesh_tap_hello(struct sn_mesh *m, struct sn_mesh_proxy *px)
{
	if (m->tap == NULL)
		return;
	for (struct tap_session *s = m->tap->sessions; s != NULL; s = s->next)
		if (!s->ending && selects(s, px))
			tap_proxy(s, px);
}

void mesh_tap_stop(struct sn_mesh *m)
{
	if (m->tap == NULL)
		return;
	while (m->tap->sessions != NULL)
		session_end(m->tap->sessions, "sinewd is stopping");
	free(m->tap);
	m->tap = NULL;
}
