/* Simulated sinew proxies for bench/control.py: N control-plane links from
 * one process, so that sinewd, not the client, is what a run at 10,000
 * proxies measures. Each link is what sinew-proxy opens (docs/internals/
 * control-protocol.md): h2c with prior knowledge (sinewd --mesh-plaintext),
 * one POST /sinew.v1.Mesh/Stream, NDJSON both ways: hello (with `have`),
 * subscribe to three hosts, an ack for every `resources` push, a heartbeat
 * (and an HTTP/2 PING, as sinew-proxy sends) every 3 s. A link that is
 * lost or refused is opened again with jittered backoff, its hello carrying
 * the resources held.
 *
 *   gcc -O2 -Wall -Wextra -o /tmp/control_sim bench/control_sim.c -lnghttp2
 *   /tmp/control_sim --port 15012 --proxies 1000 --services 50 [--register]
 *       [--connect-rate R] [--max-seconds 600] [--give-up 120]
 *
 * Events on stdout, one a line, times in CLOCK_MONOTONIC seconds (Python's
 * time.monotonic()):
 *   synced T N     every proxy has had a push on its current link
 *                  (again after each wave of reconnects)
 *   acked T REV    the lowest version ACKed over all proxies rose to REV
 *   lost T N       N established links dropped since the last such line
 *   progress T OPEN SYNCED MIN_ACKED   once a second: links open, proxies
 *                  that had a push on theirs, the lowest version ACKed
 *   stats k=v ...  once, on exit
 * Errors go to stderr. It exits on SIGTERM/SIGINT, when stdin closes, or
 * after --max-seconds. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <nghttp2/nghttp2.h>

#define SIM_MAX_PORTS 8
#define SIM_MAX_PROXIES 100000
#define SIM_MAX_MESSAGE (8u << 20)   /* the protocol's limit on one message */
#define SIM_MAX_OUT (8u << 20)       /* queued proxy -> sinewd bytes per link */
#define SIM_MAX_HELD 4096            /* resources one proxy may hold */
#define SIM_MAX_FIELD 600            /* a resource key, as sinewd bounds it */
#define SIM_MAX_DEPTH 64
#define SIM_WINDOW (1 << 24)         /* stream and connection windows, as control.py's */
#define SIM_BACKOFF_FIRST_MS 75      /* +-33 %: the first retry after 50 to 100 ms */
#define SIM_TIMERS_PER_TURN 512      /* then poll, so that a start of 10,000 links still reads */
#define SIM_LOG_MAX 20               /* stderr lines of one kind before counting only */

#define KEY_STDIN UINT64_MAX
#define KEY_SIGNAL (UINT64_MAX - 1)

enum { PX_IDLE, PX_CONNECTING, PX_OPEN, PX_GAVE_UP };

/* One resource held: "Kind/ns/name" and its resourceVersion, one block. */
struct held {
	char *key;
	const char *rv;
};

struct sim;

struct proxy {
	struct sim *sim;
	int idx, fd, state, port_at, want_out, deferred;
	nghttp2_session *h2;
	int32_t sid;
	int status;                /* the response's :status */
	const char *closing;       /* set inside nghttp2's callbacks; closed after */
	char closing_buf[200];
	char *out;                 /* NDJSON not yet taken by nghttp2 */
	size_t out_len, out_off, out_cap;
	uint8_t *wire;             /* framed bytes the socket did not take */
	size_t wire_len, wire_off;
	char *line;                /* a message that spans DATA frames */
	size_t line_len, line_cap;
	struct held *held;
	size_t n_held, cap_held;
	uint64_t acked;            /* highest version ACKed, over all its links */
	int synced;                /* had a push on the current link */
	int links;                 /* links opened */
	double due;                /* the one timer: start, retry, connect timeout or heartbeat */
	size_t heap_at;            /* 1-based; 0 when not in the heap */
	double down_since;         /* 0 while a link is up */
	unsigned backoff_ms;
};

struct sim {
	/* options */
	struct sockaddr_in addr[SIM_MAX_PORTS];
	int n_ports, n, services, reg;
	double connect_rate, max_seconds, give_up_s, connect_timeout_s, heartbeat_s;
	unsigned backoff_max_ms;
	/* state */
	int ep;
	double now, t0;
	struct proxy *px;
	struct proxy **heap;
	size_t heap_n;
	nghttp2_session_callbacks *cbs;
	int n_open, n_synced, all_synced, n_gave_up, stop;
	uint64_t min_acked;
	int n_at_min;
	uint64_t rng;
	/* counts */
	uint64_t pushes, bytes_in, bytes_out, reconnects, connect_failures, lost, lost_pending, errors, heartbeats,
		held_max;
	unsigned logged_lost, logged_fail, logged_error;
	uint8_t rbuf[65536];
};

static double mono(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double rand01(struct sim *s)
{
	s->rng ^= s->rng << 13;
	s->rng ^= s->rng >> 7;
	s->rng ^= s->rng << 17;
	return (double)(s->rng >> 11) / (double)(1ull << 53);
}

/* ---- timer heap: one entry per proxy, keyed by its `due` ---- */

static int heap_less(struct sim *s, size_t a, size_t b)
{
	return s->heap[a]->due < s->heap[b]->due;
}

static void heap_swap(struct sim *s, size_t a, size_t b)
{
	struct proxy *t = s->heap[a];
	s->heap[a] = s->heap[b];
	s->heap[b] = t;
	s->heap[a]->heap_at = a + 1;
	s->heap[b]->heap_at = b + 1;
}

static void heap_fix(struct sim *s, size_t i)
{
	while (i > 0 && heap_less(s, i, (i - 1) / 2)) {
		heap_swap(s, i, (i - 1) / 2);
		i = (i - 1) / 2;
	}
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;
		if (l < s->heap_n && heap_less(s, l, m))
			m = l;
		if (r < s->heap_n && heap_less(s, r, m))
			m = r;
		if (m == i)
			return;
		heap_swap(s, i, m);
		i = m;
	}
}

static void timer_set(struct sim *s, struct proxy *p, double due)
{
	p->due = due;
	if (p->heap_at == 0) {
		s->heap[s->heap_n] = p;
		p->heap_at = ++s->heap_n;
	}
	heap_fix(s, p->heap_at - 1);
}

static void timer_stop(struct sim *s, struct proxy *p)
{
	if (p->heap_at == 0)
		return;
	size_t i = p->heap_at - 1;
	p->heap_at = 0;
	if (i != --s->heap_n) {
		s->heap[i] = s->heap[s->heap_n];
		s->heap[i]->heap_at = i + 1;
		heap_fix(s, i);
	}
}

/* ---- events ---- */

static void note_synced(struct sim *s, struct proxy *p)
{
	if (p->synced)
		return;
	p->synced = 1;
	s->n_synced++;
	if (s->n_synced == s->n && !s->all_synced) {
		s->all_synced = 1;
		printf("synced %.6f %d\n", mono(), s->n_synced);
	}
}

/* The proxy ACKed version `rev`: the lowest over all proxies is kept with
 * the number of proxies at it, so it is recounted once per rise, not per ack. */
static void note_acked(struct sim *s, struct proxy *p, uint64_t rev)
{
	if (rev <= p->acked)
		return;
	uint64_t old = p->acked;
	p->acked = rev;
	if (old != s->min_acked || --s->n_at_min > 0)
		return;
	uint64_t min = UINT64_MAX;
	int at = 0;
	for (int i = 0; i < s->n; i++) {
		if (s->px[i].acked < min) {
			min = s->px[i].acked;
			at = 0;
		}
		at += s->px[i].acked == min;
	}
	s->min_acked = min;
	s->n_at_min = at;
	printf("acked %.6f %" PRIu64 "\n", mono(), min);
}

static void errorf(struct sim *s, unsigned *logged, const char *fmt, ...)
{
	va_list ap;
	if (*logged >= SIM_LOG_MAX)
		return;
	if (++*logged == SIM_LOG_MAX) {
		fputs("control_sim: (more of these are only counted)\n", stderr);
		return;
	}
	va_start(ap, fmt);
	fputs("control_sim: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	(void)s;
}

/* Marks a link for closing from inside a callback. */
static void fail_link(struct proxy *p, const char *fmt, ...)
{
	va_list ap;
	if (p->closing != NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(p->closing_buf, sizeof(p->closing_buf), fmt, ap);
	va_end(ap);
	p->closing = p->closing_buf;
}

/* ---- the resources a proxy holds ---- */

static struct held *held_find(struct proxy *p, const char *key)
{
	for (size_t i = 0; i < p->n_held; i++)
		if (!strcmp(p->held[i].key, key))
			return &p->held[i];
	return NULL;
}

static int held_put(struct sim *s, struct proxy *p, const char *key, const char *rv)
{
	struct held *h = held_find(p, key);
	size_t kl = strlen(key), vl = strlen(rv);
	if (h == NULL) {
		if (p->n_held == SIM_MAX_HELD)
			return -1;
		if (p->n_held == p->cap_held) {
			size_t cap = p->cap_held ? p->cap_held * 2 : 16;
			struct held *v = realloc(p->held, cap * sizeof(*v));
			if (v == NULL)
				return -1;
			p->held = v;
			p->cap_held = cap;
		}
		h = &p->held[p->n_held++];
		h->key = NULL;
	} else if (!strcmp(h->rv, rv)) {
		return 0;
	}
	char *b = malloc(kl + vl + 2);
	if (b == NULL) {
		if (h->key == NULL)
			p->n_held--;
		return -1;
	}
	memcpy(b, key, kl + 1);
	memcpy(b + kl + 1, rv, vl + 1);
	free(h->key);
	h->key = b;
	h->rv = b + kl + 1;
	if (p->n_held > s->held_max)
		s->held_max = p->n_held;
	return 0;
}

static void held_del(struct proxy *p, const char *key)
{
	struct held *h = held_find(p, key);
	if (h == NULL)
		return;
	free(h->key);
	*h = p->held[--p->n_held];
}

/* ---- a minimal JSON reader: only what a push needs ---- */

struct jcur {
	const char *p, *e;
};

static void jws(struct jcur *c)
{
	while (c->p < c->e && (*c->p == ' ' || *c->p == '\t' || *c->p == '\r' || *c->p == '\n'))
		c->p++;
}

static int jeat(struct jcur *c, char ch)
{
	jws(c);
	if (c->p >= c->e || *c->p != ch)
		return -1;
	c->p++;
	return 0;
}

/* A string at the cursor: [*s, *s + *n) is its text, escapes not decoded. */
static int jstr(struct jcur *c, const char **s, size_t *n)
{
	jws(c);
	if (c->p >= c->e || *c->p != '"')
		return -1;
	const char *q = ++c->p;
	while (q < c->e && *q != '"') {
		if ((unsigned char)*q < 0x20)
			return -1;
		if (*q == '\\' && ++q >= c->e)
			return -1;
		q++;
	}
	if (q >= c->e)
		return -1;
	*s = c->p;
	*n = (size_t)(q - c->p);
	c->p = q + 1;
	return 0;
}

static int hexval(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

static int hex4(const char *p, unsigned *v)
{
	*v = 0;
	for (int i = 0; i < 4; i++) {
		int h = hexval(p[i]);
		if (h < 0)
			return -1;
		*v = *v << 4 | (unsigned)h;
	}
	return 0;
}

/* u as UTF-8 into out (4 bytes); its length. */
static size_t utf8_put(unsigned u, char *out)
{
	if (u < 0x80) {
		out[0] = (char)u;
		return 1;
	}
	if (u < 0x800) {
		out[0] = (char)(0xc0 | u >> 6);
		out[1] = (char)(0x80 | (u & 0x3f));
		return 2;
	}
	if (u < 0x10000) {
		out[0] = (char)(0xe0 | u >> 12);
		out[1] = (char)(0x80 | ((u >> 6) & 0x3f));
		out[2] = (char)(0x80 | (u & 0x3f));
		return 3;
	}
	out[0] = (char)(0xf0 | u >> 18);
	out[1] = (char)(0x80 | ((u >> 12) & 0x3f));
	out[2] = (char)(0x80 | ((u >> 6) & 0x3f));
	out[3] = (char)(0x80 | (u & 0x3f));
	return 4;
}

/* Decodes a string's text into out (cap bytes with its NUL); -1 when it is
 * malformed, holds a NUL, or does not fit (unless `cut`: then truncated). */
static int junescape(const char *s, size_t n, char *out, size_t cap, int cut)
{
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		char tmp[4];
		size_t tl = 1;
		tmp[0] = s[i];
		if (s[i] == '\\') {
			if (++i >= n)
				return -1;
			switch (s[i]) {
			case '"': case '\\': case '/': tmp[0] = s[i]; break;
			case 'b': tmp[0] = '\b'; break;
			case 'f': tmp[0] = '\f'; break;
			case 'n': tmp[0] = '\n'; break;
			case 'r': tmp[0] = '\r'; break;
			case 't': tmp[0] = '\t'; break;
			case 'u': {
				unsigned u, lo;
				if (i + 4 >= n || hex4(s + i + 1, &u) != 0)
					return -1;
				i += 4;
				if (u >= 0xd800 && u < 0xdc00) {
					if (i + 6 >= n || s[i + 1] != '\\' || s[i + 2] != 'u' || hex4(s + i + 3, &lo) != 0 ||
					    lo < 0xdc00 || lo > 0xdfff)
						return -1;
					i += 6;
					u = 0x10000 + ((u - 0xd800) << 10) + (lo - 0xdc00);
				}
				if (u == 0)
					return -1;
				tl = utf8_put(u, tmp);
				break;
			}
			default:
				return -1;
			}
		}
		if (o + tl >= cap) {
			if (!cut)
				return -1;
			break;
		}
		memcpy(out + o, tmp, tl);
		o += tl;
	}
	out[o] = '\0';
	return 0;
}

static int jskip(struct jcur *c, int depth)
{
	const char *s;
	size_t n;

	if (depth > SIM_MAX_DEPTH)
		return -1;
	jws(c);
	if (c->p >= c->e)
		return -1;
	if (*c->p == '"')
		return jstr(c, &s, &n);
	if (*c->p == '{' || *c->p == '[') {
		char close = *c->p == '{' ? '}' : ']';
		c->p++;
		jws(c);
		if (c->p < c->e && *c->p == close) {
			c->p++;
			return 0;
		}
		for (;;) {
			if (close == '}' && (jstr(c, &s, &n) != 0 || jeat(c, ':') != 0))
				return -1;
			if (jskip(c, depth + 1) != 0)
				return -1;
			jws(c);
			if (c->p < c->e && *c->p == ',') {
				c->p++;
				continue;
			}
			return jeat(c, close);
		}
	}
	const char *b = c->p;
	while (c->p < c->e && (strchr("+-.eE", *c->p) || (*c->p >= '0' && *c->p <= '9') ||
			       (*c->p >= 'a' && *c->p <= 'z')))
		c->p++;
	return c->p > b ? 0 : -1;
}

/* A scalar (string or bare number) decoded into out. */
static int jscalar(struct jcur *c, char *out, size_t cap, int cut)
{
	const char *s;
	size_t n;
	jws(c);
	if (c->p < c->e && *c->p == '"')
		return jstr(c, &s, &n) != 0 ? -1 : junescape(s, n, out, cap, cut);
	s = c->p;
	if (jskip(c, 0) != 0 || (size_t)(c->p - s) >= cap)
		return -1;
	memcpy(out, s, (size_t)(c->p - s));
	out[c->p - s] = '\0';
	return 0;
}

/* The elements of an array at the cursor: 0 and the cursor on the first
 * one, or 1 for an empty array; -1 when it is not an array. */
static int jarray_open(struct jcur *c)
{
	if (jeat(c, '[') != 0)
		return -1;
	jws(c);
	if (c->p < c->e && *c->p == ']') {
		c->p++;
		return 1;
	}
	return 0;
}

/* After an element: 0 and on the next one, 1 at the array's end, -1 malformed. */
static int jarray_next(struct jcur *c)
{
	jws(c);
	if (c->p < c->e && *c->p == ',') {
		c->p++;
		return 0;
	}
	return jeat(c, ']') == 0 ? 1 : -1;
}

/* One element of a push's `resources`: its key and resourceVersion. */
static int read_resource(struct jcur *c, char *key, size_t key_cap, char *rv, size_t rv_cap)
{
	char kind[128] = "", ns[128] = "", name[256] = "", k[32];
	const char *s;
	size_t n;
	int got = 0;

	rv[0] = '\0';
	if (jeat(c, '{') != 0)
		return -1;
	jws(c);
	if (c->p < c->e && *c->p == '}')
		return -1;
	for (;;) {
		if (jstr(c, &s, &n) != 0 || jeat(c, ':') != 0)
			return -1;
		char *dst = NULL;
		size_t cap = 0;
		int bit = 0, r;
		if (n < sizeof(k) && junescape(s, n, k, sizeof(k), 0) == 0) {
			if (!strcmp(k, "kind")) {
				dst = kind;
				cap = sizeof(kind);
				bit = 1;
			} else if (!strcmp(k, "namespace")) {
				dst = ns;
				cap = sizeof(ns);
				bit = 2;
			} else if (!strcmp(k, "name")) {
				dst = name;
				cap = sizeof(name);
				bit = 4;
			} else if (!strcmp(k, "resourceVersion")) {
				dst = rv;
				cap = rv_cap;
				bit = 8;
			}
		}
		r = dst != NULL ? jscalar(c, dst, cap, 0) : jskip(c, 1);
		got |= bit;
		if (r != 0)
			return -1;
		jws(c);
		if (c->p < c->e && *c->p == ',') {
			c->p++;
			continue;
		}
		if (jeat(c, '}') != 0)
			return -1;
		break;
	}
	if (got != 15)
		return -1;
	int w = snprintf(key, key_cap, "%s/%s/%s", kind, ns, name);
	return w < 0 || (size_t)w >= key_cap ? -1 : 0;
}

/* ---- proxy -> sinewd ---- */

static int out_reserve(struct proxy *p, size_t more)
{
	if (p->out_off > 0 && p->out_off == p->out_len)
		p->out_off = p->out_len = 0;
	if (p->out_len + more <= p->out_cap)
		return 0;
	if (p->out_off > 0) {
		memmove(p->out, p->out + p->out_off, p->out_len - p->out_off);
		p->out_len -= p->out_off;
		p->out_off = 0;
		if (p->out_len + more <= p->out_cap)
			return 0;
	}
	if (p->out_len + more > SIM_MAX_OUT) {
		fail_link(p, "more than %u bytes waiting to be sent", SIM_MAX_OUT);
		return -1;
	}
	size_t cap = p->out_cap ? p->out_cap : 256;
	while (cap < p->out_len + more)
		cap *= 2;
	char *b = realloc(p->out, cap);
	if (b == NULL) {
		fail_link(p, "out of memory");
		return -1;
	}
	p->out = b;
	p->out_cap = cap;
	return 0;
}

static int out_raw(struct proxy *p, const char *s, size_t n)
{
	if (out_reserve(p, n) != 0)
		return -1;
	memcpy(p->out + p->out_len, s, n);
	p->out_len += n;
	return 0;
}

static int out_str(struct proxy *p, const char *s)
{
	return out_raw(p, s, strlen(s));
}

/* s as a JSON string, quotes included. */
static int out_json(struct proxy *p, const char *s)
{
	size_t n = strlen(s);
	if (out_reserve(p, n * 6 + 2) != 0)
		return -1;
	char *o = p->out + p->out_len;
	*o++ = '"';
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (ch == '"' || ch == '\\') {
			*o++ = '\\';
			*o++ = (char)ch;
		} else if (ch < 0x20) {
			o += snprintf(o, 7, "\\u%04x", ch);
		} else {
			*o++ = (char)ch;
		}
	}
	*o++ = '"';
	p->out_len = (size_t)(o - p->out);
	return 0;
}

/* A message is complete in `out`: wake the stream if nghttp2 had no body. */
static void out_done(struct proxy *p)
{
	if (p->deferred && p->h2 != NULL) {
		p->deferred = 0;
		nghttp2_session_resume_data(p->h2, p->sid);
	}
}

static ssize_t read_body(nghttp2_session *h2, int32_t sid, uint8_t *buf, size_t len, uint32_t *flags,
			 nghttp2_data_source *src, void *arg)
{
	struct proxy *p = arg;
	size_t avail = p->out_len - p->out_off;
	(void)h2, (void)sid, (void)flags, (void)src;
	if (avail == 0) {
		p->deferred = 1;
		return NGHTTP2_ERR_DEFERRED;
	}
	if (avail > len)
		avail = len;
	memcpy(buf, p->out + p->out_off, avail);
	p->out_off += avail;
	if (p->out_off == p->out_len)
		p->out_off = p->out_len = 0;
	return (ssize_t)avail;
}

static int send_hello(struct sim *s, struct proxy *p)
{
	char b[512];
	int i = p->idx, m = s->services - 1;
	int r = 0;

	if (s->reg) {
		/* a distinct loopback address per proxy, as pods have: 127.Z.Y.X */
		snprintf(b, sizeof(b),
			 "{\"type\":\"hello\",\"node\":{\"id\":\"sim-%d\",\"service\":\"sim%d\",\"namespace\":\"default\","
			 "\"labels\":{\"app\":\"sim%d\"},\"service_account\":\"default\","
			 "\"inbound\":\"127.%d.%d.%d:15006\",\"admin\":null,\"version\":\"bench\"},\"have\":{",
			 i, i, i, 1 + i / 62500, (i / 250) % 250, 2 + i % 250);
	} else {
		snprintf(b, sizeof(b),
			 "{\"type\":\"hello\",\"node\":{\"id\":\"sim-%d\",\"service\":\"sim%d\",\"namespace\":\"default\","
			 "\"labels\":{\"app\":\"sim\"},\"service_account\":\"default\","
			 "\"inbound\":null,\"admin\":null,\"version\":\"bench\"},\"have\":{",
			 i, i);
	}
	r |= out_str(p, b);
	for (size_t k = 0; k < p->n_held && r == 0; k++) {
		if (k)
			r |= out_str(p, ",");
		r |= out_json(p, p->held[k].key);
		r |= out_str(p, ":");
		r |= out_json(p, p->held[k].rv);
	}
	/* each proxy calls 3 destinations, svc0 (whose VirtualService the
	 * rounds change) among them: control.py's scale_run picks the same */
	snprintf(b, sizeof(b), "}}\n{\"type\":\"subscribe\",\"hosts\":[\"svc0\",\"svc%d\",\"svc%d\"]}\n", 1 + i % m,
		 1 + (i * 7) % m);
	r |= out_str(p, b);
	return r;
}

/* ---- sinewd -> proxy ---- */

static void on_message(struct sim *s, struct proxy *p, const char *m, size_t n)
{
	struct jcur c = { m, m + n };
	char type[32] = "", nonce[80] = "", version[32] = "", text[300] = "", k[32];
	const char *res = NULL, *removed = NULL, *str;
	size_t sl;

	jws(&c);
	if (c.p == c.e)
		return;   /* a blank line */
	if (jeat(&c, '{') != 0)
		goto malformed;
	jws(&c);
	if (c.p < c.e && *c.p == '}') {
		c.p++;
	} else {
		for (;;) {
			int r;
			if (jstr(&c, &str, &sl) != 0 || jeat(&c, ':') != 0)
				goto malformed;
			if (sl >= sizeof(k) || junescape(str, sl, k, sizeof(k), 0) != 0)
				r = jskip(&c, 1);
			else if (!strcmp(k, "type"))
				r = jscalar(&c, type, sizeof(type), 1);
			else if (!strcmp(k, "nonce"))
				r = jscalar(&c, nonce, sizeof(nonce), 0);
			else if (!strcmp(k, "version"))
				r = jscalar(&c, version, sizeof(version), 0);
			else if (!strcmp(k, "message"))
				r = jscalar(&c, text, sizeof(text), 1);
			else if (!strcmp(k, "resources")) {
				/* read once the whole message checked out, and only in a push */
				jws(&c);
				res = c.p;
				r = jskip(&c, 1);
			} else if (!strcmp(k, "removed")) {
				jws(&c);
				removed = c.p;
				r = jskip(&c, 1);
			} else {
				r = jskip(&c, 1);
			}
			if (r != 0)
				goto malformed;
			jws(&c);
			if (c.p < c.e && *c.p == ',') {
				c.p++;
				continue;
			}
			if (jeat(&c, '}') != 0)
				goto malformed;
			break;
		}
	}
	jws(&c);
	if (c.p != c.e)
		goto malformed;

	if (!strcmp(type, "error")) {
		s->errors++;
		errorf(s, &s->logged_error, "sim-%d: sinewd says: %s", p->idx, text);
		return;
	}
	if (strcmp(type, "resources") != 0)
		return;   /* bundle, scrape, tap...: nothing a simulated proxy does */

	char key[SIM_MAX_FIELD + 8], rv[80];
	if (res != NULL) {
		struct jcur a = { res, m + n };
		int r = jarray_open(&a);
		while (r == 0) {
			if (read_resource(&a, key, sizeof(key), rv, sizeof(rv)) != 0) {
				fail_link(p, "a resource in push %s without kind, namespace, name or resourceVersion, "
					     "or one too long", nonce);
				return;
			}
			if (held_put(s, p, key, rv) != 0) {
				fail_link(p, "push %s: holding more than %d resources (or no memory)", nonce,
					  SIM_MAX_HELD);
				return;
			}
			r = jarray_next(&a);
		}
		if (r < 0)
			goto malformed;
	}
	if (removed != NULL) {
		struct jcur a = { removed, m + n };
		int r = jarray_open(&a);
		while (r == 0) {
			if (jstr(&a, &str, &sl) != 0 || junescape(str, sl, key, sizeof(key), 0) != 0)
				goto malformed;
			held_del(p, key);
			r = jarray_next(&a);
		}
		if (r < 0)
			goto malformed;
	}
	uint64_t rev = 0;
	for (const char *d = version; *d; d++) {
		if (*d < '0' || *d > '9' || rev > UINT64_MAX / 10 - 1) {
			rev = 0;   /* not a revision: counts as 0, as control.py's sim does */
			break;
		}
		rev = rev * 10 + (uint64_t)(*d - '0');
	}
	if (out_str(p, "{\"type\":\"ack\",\"nonce\":") != 0 || out_json(p, nonce) != 0 || out_str(p, "}\n") != 0)
		return;
	out_done(p);
	s->pushes++;
	p->backoff_ms = SIM_BACKOFF_FIRST_MS;
	p->down_since = 0;
	note_acked(s, p, rev);
	note_synced(s, p);
	return;

malformed:
	/* m is not NUL-terminated: it may point into nghttp2's buffer */
	fail_link(p, "malformed message from sinewd at byte %zu of %zu: %.*s", (size_t)(c.p - m), n, (int)(n < 80 ? n : 80),
		  m);
}

static int on_data(nghttp2_session *h2, uint8_t flags, int32_t sid, const uint8_t *d, size_t n, void *arg)
{
	struct proxy *p = arg;
	(void)h2, (void)flags;
	if (sid != p->sid || p->closing != NULL)
		return 0;
	while (n > 0 && p->closing == NULL) {
		const uint8_t *nl = memchr(d, '\n', n);
		size_t take = nl != NULL ? (size_t)(nl - d) : n;
		if (p->line_len == 0 && nl != NULL) {
			on_message(p->sim, p, (const char *)d, take);   /* whole in this frame: no copy */
		} else {
			if (p->line_len + take > SIM_MAX_MESSAGE) {
				fail_link(p, "a message longer than %u bytes", SIM_MAX_MESSAGE);
				return 0;
			}
			if (p->line_len + take > p->line_cap) {
				size_t cap = p->line_cap ? p->line_cap : 4096;
				while (cap < p->line_len + take)
					cap *= 2;
				char *b = realloc(p->line, cap);
				if (b == NULL) {
					fail_link(p, "out of memory for a message of %zu bytes", p->line_len + take);
					return 0;
				}
				p->line = b;
				p->line_cap = cap;
			}
			memcpy(p->line + p->line_len, d, take);
			p->line_len += take;
			if (nl != NULL) {
				on_message(p->sim, p, p->line, p->line_len);
				p->line_len = 0;
				if (p->line_cap > (1u << 16)) {
					free(p->line);
					p->line = NULL;
					p->line_cap = 0;
				}
			}
		}
		if (nl == NULL)
			break;
		d += take + 1;
		n -= take + 1;
	}
	return 0;
}

static int on_header(nghttp2_session *h2, const nghttp2_frame *f, const uint8_t *name, size_t nl,
		     const uint8_t *value, size_t vl, uint8_t flags, void *arg)
{
	struct proxy *p = arg;
	(void)h2, (void)flags;
	if (f->hd.type == NGHTTP2_HEADERS && f->hd.stream_id == p->sid && nl == 7 && !memcmp(name, ":status", 7)) {
		p->status = 0;
		for (size_t i = 0; i < vl && i < 3; i++)
			p->status = p->status * 10 + (value[i] >= '0' && value[i] <= '9' ? value[i] - '0' : 0);
	}
	return 0;
}

static int on_frame(nghttp2_session *h2, const nghttp2_frame *f, void *arg)
{
	struct proxy *p = arg;
	(void)h2;
	if (f->hd.type == NGHTTP2_HEADERS && f->hd.stream_id == p->sid && f->headers.cat == NGHTTP2_HCAT_RESPONSE &&
	    p->status != 200)
		fail_link(p, "sinewd answered the stream with :status %d", p->status);
	if (f->hd.type == NGHTTP2_GOAWAY)
		fail_link(p, "GOAWAY from sinewd (%s)", nghttp2_http2_strerror(f->goaway.error_code));
	return 0;
}

static int on_stream_close(nghttp2_session *h2, int32_t sid, uint32_t code, void *arg)
{
	struct proxy *p = arg;
	(void)h2;
	if (sid == p->sid)
		fail_link(p, "sinewd ended the stream (%s)", nghttp2_http2_strerror(code));
	return 0;
}

/* ---- links ---- */

static void want_out(struct sim *s, struct proxy *p, int on)
{
	if (p->want_out == on || p->fd < 0)
		return;
	struct epoll_event ev = { .events = EPOLLIN | (on ? EPOLLOUT : 0), .data.u64 = (uint64_t)p->idx };
	epoll_ctl(s->ep, EPOLL_CTL_MOD, p->fd, &ev);
	p->want_out = on;
}

static void schedule_retry(struct sim *s, struct proxy *p)
{
	if (p->down_since == 0)
		p->down_since = s->now;
	double ms = p->backoff_ms * (0.67 + 0.66 * rand01(s));
	p->backoff_ms = p->backoff_ms * 2 > s->backoff_max_ms ? s->backoff_max_ms : p->backoff_ms * 2;
	p->state = PX_IDLE;
	timer_set(s, p, s->now + ms / 1000);
}

/* Ends the link and schedules the next; never from nghttp2's callbacks. */
static void link_close(struct sim *s, struct proxy *p, const char *why)
{
	if (p->h2 != NULL)
		nghttp2_session_del(p->h2);
	p->h2 = NULL;
	if (p->fd >= 0)
		close(p->fd);
	p->fd = -1;
	free(p->wire);
	p->wire = NULL;
	p->wire_len = p->wire_off = 0;
	p->out_len = p->out_off = 0;
	if (p->out_cap > (1u << 16)) {
		free(p->out);
		p->out = NULL;
		p->out_cap = 0;
	}
	p->line_len = 0;
	p->deferred = p->want_out = p->status = 0;
	p->closing = NULL;
	if (p->state == PX_OPEN) {
		s->n_open--;
		s->lost++;
		s->lost_pending++;
		errorf(s, &s->logged_lost, "sim-%d: link lost: %s", p->idx, why);
	} else {
		s->connect_failures++;
		errorf(s, &s->logged_fail, "sim-%d: cannot connect to port %d: %s", p->idx,
		       ntohs(s->addr[p->port_at].sin_port), why);
	}
	/* as sinew-proxy does: the next try goes to the next replica */
	p->port_at = (p->port_at + 1) % s->n_ports;
	if (p->synced) {
		p->synced = 0;
		s->n_synced--;
		s->all_synced = 0;
	}
	schedule_retry(s, p);
}

static void flush(struct sim *s, struct proxy *p)
{
	for (;;) {
		if (p->wire_off < p->wire_len) {
			ssize_t w = send(p->fd, p->wire + p->wire_off, p->wire_len - p->wire_off, MSG_NOSIGNAL);
			if (w < 0) {
				if (errno == EINTR)
					continue;
				if (errno == EAGAIN || errno == EWOULDBLOCK) {
					want_out(s, p, 1);
					return;
				}
				link_close(s, p, strerror(errno));
				return;
			}
			s->bytes_out += (uint64_t)w;
			p->wire_off += (size_t)w;
			if (p->wire_off == p->wire_len) {
				free(p->wire);
				p->wire = NULL;
				p->wire_off = p->wire_len = 0;
			}
			continue;
		}
		const uint8_t *d;
		ssize_t n = nghttp2_session_mem_send(p->h2, &d);
		if (p->closing != NULL) {
			link_close(s, p, p->closing);
			return;
		}
		if (n < 0) {
			link_close(s, p, nghttp2_strerror((int)n));
			return;
		}
		if (n == 0)
			break;
		ssize_t w = send(p->fd, d, (size_t)n, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
				link_close(s, p, strerror(errno));
				return;
			}
			w = 0;
		}
		s->bytes_out += (uint64_t)w;
		if (w < n) {
			/* at most one of nghttp2's frame buffers */
			p->wire = malloc((size_t)(n - w));
			if (p->wire == NULL) {
				link_close(s, p, "out of memory");
				return;
			}
			memcpy(p->wire, d + w, (size_t)(n - w));
			p->wire_len = (size_t)(n - w);
			p->wire_off = 0;
		}
	}
	want_out(s, p, 0);
	if (!nghttp2_session_want_read(p->h2) && !nghttp2_session_want_write(p->h2))
		link_close(s, p, "the HTTP/2 session ended");
}

static void link_open(struct sim *s, struct proxy *p)
{
	nghttp2_settings_entry iv[] = {
		{ NGHTTP2_SETTINGS_ENABLE_PUSH, 0 },
		{ NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, SIM_WINDOW },
	};
	nghttp2_nv nv[] = {
		{ (uint8_t *)":method", (uint8_t *)"POST", 7, 4, NGHTTP2_NV_FLAG_NONE },
		{ (uint8_t *)":scheme", (uint8_t *)"http", 7, 4, NGHTTP2_NV_FLAG_NONE },
		{ (uint8_t *)":authority", (uint8_t *)"sinewd", 10, 6, NGHTTP2_NV_FLAG_NONE },
		{ (uint8_t *)":path", (uint8_t *)"/sinew.v1.Mesh/Stream", 5, 21, NGHTTP2_NV_FLAG_NONE },
		{ (uint8_t *)"content-type", (uint8_t *)"application/x-ndjson", 12, 20, NGHTTP2_NV_FLAG_NONE },
	};
	nghttp2_data_provider body = { .source.ptr = p, .read_callback = read_body };

	if (nghttp2_session_client_new(&p->h2, s->cbs, p) != 0) {
		p->h2 = NULL;
		link_close(s, p, "out of memory for an HTTP/2 session");
		return;
	}
	p->sid = -1;
	if (nghttp2_submit_settings(p->h2, NGHTTP2_FLAG_NONE, iv, 2) == 0 &&
	    nghttp2_session_set_local_window_size(p->h2, NGHTTP2_FLAG_NONE, 0, SIM_WINDOW) == 0)
		p->sid = nghttp2_submit_request(p->h2, NULL, nv, 5, &body, p);
	if (p->sid < 0 || send_hello(s, p) != 0) {
		link_close(s, p, p->closing ? p->closing : "cannot start the HTTP/2 stream");
		return;
	}
	if (p->links++ > 0)
		s->reconnects++;
	p->state = PX_OPEN;
	s->n_open++;
	/* heartbeats spread over the period, not all in one turn */
	timer_set(s, p, s->now + s->heartbeat_s * (0.5 + rand01(s)));
	flush(s, p);
}

static void link_start(struct sim *s, struct proxy *p)
{
	struct sockaddr_in *a = &s->addr[p->port_at];
	int one = 1;

	p->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (p->fd < 0) {
		p->state = PX_CONNECTING;
		link_close(s, p, strerror(errno));
		return;
	}
	setsockopt(p->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	p->state = PX_CONNECTING;
	int rc = connect(p->fd, (struct sockaddr *)a, sizeof(*a));
	if (rc != 0 && errno != EINPROGRESS) {
		link_close(s, p, strerror(errno));
		return;
	}
	struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT, .data.u64 = (uint64_t)p->idx };
	if (epoll_ctl(s->ep, EPOLL_CTL_ADD, p->fd, &ev) != 0) {
		link_close(s, p, strerror(errno));
		return;
	}
	p->want_out = 1;
	if (rc == 0)
		link_open(s, p);
	else
		timer_set(s, p, s->now + s->connect_timeout_s);
}

static void on_io(struct sim *s, struct proxy *p, unsigned events)
{
	if (p->state == PX_CONNECTING) {
		int err = 0;
		socklen_t l = sizeof(err);
		if (getsockopt(p->fd, SOL_SOCKET, SO_ERROR, &err, &l) != 0)
			err = errno;
		if (err != 0) {
			link_close(s, p, strerror(err));
			return;
		}
		if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
			link_open(s, p);
		return;
	}
	if (p->state != PX_OPEN)
		return;
	if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
		/* bounded per turn, so that one busy link does not starve the rest */
		for (int i = 0; i < 8; i++) {
			ssize_t n = recv(p->fd, s->rbuf, sizeof(s->rbuf), 0);
			if (n == 0) {
				link_close(s, p, "closed by sinewd");
				return;
			}
			if (n < 0) {
				if (errno == EINTR)
					continue;
				if (errno == EAGAIN || errno == EWOULDBLOCK)
					break;
				link_close(s, p, strerror(errno));
				return;
			}
			s->bytes_in += (uint64_t)n;
			ssize_t r = nghttp2_session_mem_recv(p->h2, s->rbuf, (size_t)n);
			if (p->closing != NULL) {
				link_close(s, p, p->closing);
				return;
			}
			if (r < 0) {
				link_close(s, p, nghttp2_strerror((int)r));
				return;
			}
			if ((size_t)n < sizeof(s->rbuf))
				break;
		}
	}
	flush(s, p);
}

static void on_timer(struct sim *s, struct proxy *p)
{
	switch (p->state) {
	case PX_IDLE:
		if (p->down_since > 0 && s->now - p->down_since > s->give_up_s) {
			timer_stop(s, p);
			p->state = PX_GAVE_UP;
			s->n_gave_up++;
			fprintf(stderr, "control_sim: sim-%d: no link for %.0f s; giving up on it\n", p->idx,
				s->now - p->down_since);
			return;
		}
		link_start(s, p);
		return;
	case PX_CONNECTING:
		link_close(s, p, "connect timed out");
		return;
	case PX_OPEN:
		timer_set(s, p, s->now + s->heartbeat_s);
		s->heartbeats++;
		if (out_str(p, "{\"type\":\"heartbeat\"}\n") == 0) {
			out_done(p);
			nghttp2_submit_ping(p->h2, NGHTTP2_FLAG_NONE, NULL);
		}
		flush(s, p);
		return;
	default:
		timer_stop(s, p);
	}
}

/* ---- the process ---- */

static void usage(void)
{
	fputs("usage: control_sim --port P [--port P2 ...] --proxies N --services S [--register]\n"
	      "         [--host 127.0.0.1] [--connect-rate R] [--max-seconds 600] [--give-up 120]\n"
	      "         [--connect-timeout 10] [--backoff-max-ms 500] [--heartbeat 3]\n"
	      "N simulated sinew proxies against sinewd --mesh-plaintext (bench/control.py drives it).\n"
	      "  --port P         sinewd's --mesh port; several (or P1,P2) for replicas: proxy i uses\n"
	      "                   the (i mod count)th and moves to the next after a lost link\n"
	      "  --register       each hello carries inbound 127.Z.Y.X:15006 and labels {app: simN}:\n"
	      "                   sinewd registers a WorkloadEntry per proxy, as for real ones\n"
	      "  --connect-rate R links started per second at first (0: all at once)\n"
	      "  --give-up S      a proxy without a link for S seconds stops trying\n"
	      "Stdout: `synced T N`, `acked T REV`, `lost T N`, and `stats k=v...` on exit; T is\n"
	      "CLOCK_MONOTONIC seconds. Stops on SIGTERM/SIGINT, when stdin closes, or at --max-seconds.\n",
	      stderr);
}

static int num(const char *opt, const char *v, double lo, double hi, double *out)
{
	char *end;
	if (v == NULL) {
		fprintf(stderr, "control_sim: %s needs a value\n", opt);
		return -1;
	}
	errno = 0;
	double d = strtod(v, &end);
	if (errno != 0 || end == v || *end != '\0' || d < lo || d > hi) {
		fprintf(stderr, "control_sim: %s %s: want a number from %g to %g\n", opt, v, lo, hi);
		return -1;
	}
	*out = d;
	return 0;
}

static int add_ports(struct sim *s, const char *v)
{
	if (v == NULL || *v == '\0') {
		fputs("control_sim: --port needs a port or a comma-separated list\n", stderr);
		return -1;
	}
	while (*v != '\0') {
		const char *comma = strchr(v, ',');
		size_t len = comma != NULL ? (size_t)(comma - v) : strlen(v);
		char one[16];
		double port;
		if (s->n_ports == SIM_MAX_PORTS) {
			fprintf(stderr, "control_sim: at most %d ports\n", SIM_MAX_PORTS);
			return -1;
		}
		if (len == 0 || len >= sizeof(one)) {
			fprintf(stderr, "control_sim: --port: an empty or overlong entry in %s\n", v);
			return -1;
		}
		memcpy(one, v, len);
		one[len] = '\0';
		if (num("--port", one, 1, 65535, &port) != 0)
			return -1;
		s->addr[s->n_ports].sin_family = AF_INET;
		s->addr[s->n_ports].sin_port = htons((uint16_t)port);
		s->n_ports++;
		v += len + (comma != NULL);
	}
	return 0;
}

static int parse_args(struct sim *s, int argc, char **argv)
{
	const char *host = "127.0.0.1";
	double n = 0, services = 50, backoff_max = 500;

	s->max_seconds = 600;
	s->give_up_s = 120;
	s->connect_timeout_s = 10;
	s->heartbeat_s = 3;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		int takes = 1, rc = 0;
		if (!strcmp(a, "--port"))
			rc = add_ports(s, v);
		else if (!strcmp(a, "--host"))
			host = v;
		else if (!strcmp(a, "--proxies"))
			rc = num(a, v, 1, SIM_MAX_PROXIES, &n);
		else if (!strcmp(a, "--services"))
			rc = num(a, v, 2, 1000000, &services);
		else if (!strcmp(a, "--connect-rate"))
			rc = num(a, v, 0, 1e7, &s->connect_rate);
		else if (!strcmp(a, "--max-seconds"))
			rc = num(a, v, 1, 86400, &s->max_seconds);
		else if (!strcmp(a, "--give-up"))
			rc = num(a, v, 0.1, 86400, &s->give_up_s);
		else if (!strcmp(a, "--connect-timeout"))
			rc = num(a, v, 0.1, 600, &s->connect_timeout_s);
		else if (!strcmp(a, "--heartbeat"))
			rc = num(a, v, 0.1, 600, &s->heartbeat_s);
		else if (!strcmp(a, "--backoff-max-ms"))
			rc = num(a, v, SIM_BACKOFF_FIRST_MS, 600000, &backoff_max);
		else if (!strcmp(a, "--register")) {
			s->reg = 1;
			takes = 0;
		} else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			usage();
			return 1;
		} else {
			fprintf(stderr, "control_sim: unknown option %s\n", a);
			usage();
			return -1;
		}
		if (rc != 0)
			return -1;
		i += takes;
	}
	s->n = (int)n;
	s->services = (int)services;
	s->backoff_max_ms = (unsigned)backoff_max;
	if (s->n_ports == 0 || s->n == 0) {
		fputs("control_sim: --port and --proxies are required\n", stderr);
		usage();
		return -1;
	}
	for (int i = 0; i < s->n_ports; i++) {
		if (host == NULL || inet_pton(AF_INET, host, &s->addr[i].sin_addr) != 1) {
			fprintf(stderr, "control_sim: --host %s: want an IPv4 address\n", host ? host : "(none)");
			return -1;
		}
	}
	return 0;
}

/* Each link is one descriptor; sinewd's side has its own process's limit. */
static int raise_nofile(int n)
{
	struct rlimit rl;
	rlim_t want = (rlim_t)n + 64;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return 0;
	if (rl.rlim_cur >= want)
		return 0;
	if (rl.rlim_max < want) {
		struct rlimit up = { want, want };
		if (setrlimit(RLIMIT_NOFILE, &up) == 0)
			return 0;
		fprintf(stderr,
			"control_sim: %d proxies need %llu file descriptors; the hard limit is %llu "
			"(raise it: ulimit -Hn, or LimitNOFILE=)\n",
			n, (unsigned long long)want, (unsigned long long)rl.rlim_max);
		return -1;
	}
	rl.rlim_cur = want;
	if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
		fprintf(stderr, "control_sim: setrlimit(RLIMIT_NOFILE, %llu): %s\n", (unsigned long long)want,
			strerror(errno));
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	static struct sim sim;
	struct sim *s = &sim;
	struct epoll_event evs[1024];
	sigset_t mask;

	int rc = parse_args(s, argc, argv);
	if (rc != 0)
		return rc > 0 ? 0 : 2;
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (raise_nofile(s->n) != 0)
		return 1;
	s->px = calloc((size_t)s->n, sizeof(*s->px));
	s->heap = calloc((size_t)s->n, sizeof(*s->heap));
	s->ep = epoll_create1(EPOLL_CLOEXEC);
	if (s->px == NULL || s->heap == NULL || s->ep < 0) {
		fprintf(stderr, "control_sim: cannot set up %d proxies: %s\n", s->n, strerror(errno));
		return 1;
	}
	if (nghttp2_session_callbacks_new(&s->cbs) != 0) {
		fputs("control_sim: out of memory\n", stderr);
		return 1;
	}
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(s->cbs, on_data);
	nghttp2_session_callbacks_set_on_header_callback(s->cbs, on_header);
	nghttp2_session_callbacks_set_on_frame_recv_callback(s->cbs, on_frame);
	nghttp2_session_callbacks_set_on_stream_close_callback(s->cbs, on_stream_close);

	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);
	int sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = KEY_SIGNAL };
	if (sfd < 0 || epoll_ctl(s->ep, EPOLL_CTL_ADD, sfd, &ev) != 0) {
		fprintf(stderr, "control_sim: signalfd: %s\n", strerror(errno));
		return 1;
	}
	ev.data.u64 = KEY_STDIN;
	if (epoll_ctl(s->ep, EPOLL_CTL_ADD, STDIN_FILENO, &ev) != 0)
		fprintf(stderr, "control_sim: not watching stdin (%s); stop it with SIGTERM\n", strerror(errno));

	s->t0 = s->now = mono();
	s->rng = 0x9e3779b97f4a7c15ull ^ (uint64_t)getpid() ^ (uint64_t)(s->t0 * 1e9);
	s->n_at_min = s->n;
	for (int i = 0; i < s->n; i++) {
		struct proxy *p = &s->px[i];
		p->sim = s;
		p->idx = i;
		p->fd = -1;
		p->port_at = i % s->n_ports;
		p->backoff_ms = SIM_BACKOFF_FIRST_MS;
		timer_set(s, p, s->t0 + (s->connect_rate > 0 ? i / s->connect_rate : 0));
	}

	double next_progress = s->t0 + 1;
	while (!s->stop) {
		double next = next_progress;
		if (s->heap_n > 0 && s->heap[0]->due < next)
			next = s->heap[0]->due;
		double d = next - mono();
		int timeout = d <= 0 ? 0 : d >= 1 ? 1000 : (int)(d * 1000) + 1;
		int n = epoll_wait(s->ep, evs, (int)(sizeof(evs) / sizeof(evs[0])), timeout);
		if (n < 0 && errno != EINTR) {
			fprintf(stderr, "control_sim: epoll_wait: %s\n", strerror(errno));
			break;
		}
		s->now = mono();
		for (int i = 0; i < n; i++) {
			uint64_t k = evs[i].data.u64;
			if (k == KEY_SIGNAL) {
				s->stop = 1;
			} else if (k == KEY_STDIN) {
				char b[256];
				ssize_t r = read(STDIN_FILENO, b, sizeof(b));
				if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR))
					s->stop = 1;   /* the driver went away */
			} else if (k < (uint64_t)s->n) {
				on_io(s, &s->px[k], evs[i].events);
			}
		}
		s->now = mono();
		for (int done = 0; s->heap_n > 0 && s->heap[0]->due <= s->now && done < SIM_TIMERS_PER_TURN; done++)
			on_timer(s, s->heap[0]);
		if (s->now >= next_progress) {
			printf("progress %.6f %d %d %" PRIu64 "\n", s->now, s->n_open, s->n_synced, s->min_acked);
			next_progress = s->now + 1;
		}
		if (s->lost_pending > 0) {
			printf("lost %.6f %" PRIu64 "\n", s->now, s->lost_pending);
			s->lost_pending = 0;
		}
		if (s->n_gave_up == s->n) {
			fprintf(stderr, "control_sim: every proxy gave up; is sinewd listening on the port given?\n");
			break;
		}
		if (s->now - s->t0 > s->max_seconds) {
			fprintf(stderr, "control_sim: ran --max-seconds %.0f; stopping\n", s->max_seconds);
			break;
		}
	}

	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
		     (double)ru.ru_stime.tv_usec / 1e6;
	printf("stats t=%.6f cpu_s=%.2f proxies=%d open=%d synced=%d pushes=%" PRIu64 " bytes_in=%" PRIu64 " bytes_out=%" PRIu64
	       " reconnects=%" PRIu64 " connect_failures=%" PRIu64 " lost=%" PRIu64 " errors=%" PRIu64
	       " heartbeats=%" PRIu64 " gave_up=%d min_acked=%" PRIu64 " held_max=%" PRIu64 "\n",
	       mono(), cpu, s->n, s->n_open, s->n_synced, s->pushes, s->bytes_in, s->bytes_out, s->reconnects,
	       s->connect_failures, s->lost, s->errors, s->heartbeats, s->n_gave_up, s->min_acked, s->held_max);
	fflush(stdout);
	/* the kernel closes the links; tearing down 10,000 sessions one by one would only delay the exit */
	return s->n_gave_up == s->n ? 1 : 0;
}
