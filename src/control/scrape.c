/* The scrape relay (docs/api.md "GET /api/v1/proxies/ID/metrics"): a
 * proxy in a `sinew run` pod serves its admin port on the pod's own
 * loopback, which a Prometheus outside the pod cannot reach; sinewd asks
 * it over the control link it already has ("scrape") and answers the
 * scrape with the text that comes back ("scrapeResult"). The HTTP
 * connection is handed over by the API while the answer is awaited.
 * Bounded: MESH_MAX_SCRAPES waiting at once, SCRAPE_TIMEOUT_MS each.
 * Loop thread only. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libfyaml.h>

#include "mesh_internal.h"
#include "sinew/h1.h"
#include "sinew/log.h"
#include "sinew/out.h"

#define SCRAPE_TIMEOUT_MS 5000
#define MESH_MAX_SCRAPES 64

struct scrape {
	struct sn_mesh *m;
	char wire_id[24];             /* "s<n>": the proxy's name for it */
	uint64_t px_serial;           /* the link asked; only it answers */
	int fd;
	struct sn_io io;
	struct sn_timer timer;
	char *out;
	size_t out_len, out_off;
	int answered;
	struct scrape *next, **pprev;
};

static void scrape_end(struct scrape *s)
{
	struct sn_mesh *m = s->m;
	sn_timer_stop(m->loop, &s->timer);
	sn_io_stop(m->loop, &s->io);
	close(s->fd);
	if (s->next != NULL)
		s->next->pprev = s->pprev;
	*s->pprev = s->next;
	m->n_scrapes--;
	free(s->out);
	free(s);
}

static void flush(struct scrape *s)
{
	while (s->out_off < s->out_len) {
		ssize_t n = write(s->fd, s->out + s->out_off, s->out_len - s->out_off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0)
			break;
		s->out_off += (size_t)n;
	}
	scrape_end(s);   /* all of it sent, or the client went away */
}

/* The answer: status, its type, the body (copied). */
static void answer(struct scrape *s, int status, const char *ctype, const char *body, size_t len)
{
	char head[256];
	int hl = snprintf(head, sizeof(head),
			  "HTTP/1.1 %d %s\r\ncontent-type: %s\r\ncontent-length: %zu\r\ncache-control: no-store\r\n"
			  "connection: close\r\n\r\n",
			  status, sn_h1_reason_phrase(status), ctype, len);
	s->answered = 1;
	sn_timer_stop(s->m->loop, &s->timer);
	s->out = malloc((size_t)hl + len);
	if (s->out == NULL) {
		scrape_end(s);
		return;
	}
	memcpy(s->out, head, (size_t)hl);
	memcpy(s->out + hl, body, len);
	s->out_len = (size_t)hl + len;
	flush(s);
}

static void answer_error(struct scrape *s, int status, const char *msg)
{
	struct sn_out o = { 0 };
	sn_out_cstr(&o, "{\"error\":");
	sn_out_json_cstr(&o, msg);
	sn_out_printf(&o, ",\"status\":%d}\n", status);
	if (o.failed)
		scrape_end(s);
	else
		answer(s, status, "application/json", o.p, o.len);
	sn_out_free(&o);
}

static void on_io(struct sn_loop *loop, struct sn_io *io, unsigned events)
{
	struct scrape *s = sn_container_of(io, struct scrape, io);
	(void)loop;
	(void)events;
	if (s->answered)
		flush(s);
	/* before the answer: the client's further bytes are ignored (the
	 * answer closes the connection) */
}

static void on_timeout(struct sn_loop *loop, struct sn_timer *t)
{
	struct scrape *s = sn_container_of(t, struct scrape, timer);
	(void)loop;
	answer_error(s, 504, "the proxy did not answer the scrape within 5 s");
}

int sn_mesh_scrape_start(struct sn_mesh *m, int fd, const char *proxy_id, char *err, size_t size)
{
	struct sn_mesh_proxy *px = NULL;
	struct scrape *s;

	if (m == NULL) {
		snprintf(err, size, "this sinewd serves no proxies");
		return 503;
	}
	for (struct sn_mesh_proxy *q = m->proxies; q != NULL; q = q->next)
		if (q->hello && !q->gone && !q->bootstrap && q->conn != NULL && q->id != NULL && !strcmp(q->id, proxy_id))
			px = q;
	if (px == NULL) {
		snprintf(err, size, "no connected proxy has id %.200s (see GET /api/v1/proxies)", proxy_id);
		return 404;
	}
	if (m->n_scrapes >= MESH_MAX_SCRAPES) {
		snprintf(err, size, "%d scrapes are waiting already, the limit; scrape less often", MESH_MAX_SCRAPES);
		return 429;
	}
	s = calloc(1, sizeof(*s));
	if (s == NULL) {
		snprintf(err, size, "sinewd is out of memory");
		return 503;
	}
	s->m = m;
	s->fd = fd;
	s->px_serial = px->serial;
	snprintf(s->wire_id, sizeof(s->wire_id), "s%" PRIu64, ++m->next_scrape);
	if (sn_io_start(m->loop, &s->io, fd, on_io) != 0) {
		free(s);
		snprintf(err, size, "sinewd cannot watch the connection");
		return 503;
	}
	s->next = m->scrapes;
	if (s->next != NULL)
		s->next->pprev = &s->next;
	s->pprev = &m->scrapes;
	m->scrapes = s;
	m->n_scrapes++;
	sn_timer_start(m->loop, &s->timer, SCRAPE_TIMEOUT_MS, on_timeout);
	char msg[96];
	int n = snprintf(msg, sizeof(msg), "{\"type\":\"scrape\",\"id\":\"%s\"}", s->wire_id);
	if (sn_xds_send(px->conn, msg, (size_t)n) != 0)
		answer_error(s, 503, "the proxy's control link is backed up; try again");
	return 0;
}

void mesh_scrape_on_result(struct sn_mesh *m, struct sn_mesh_proxy *px, struct fy_node *root)
{
	struct fy_node *id = fy_node_mapping_lookup_by_string(root, "id", FY_NT);
	struct fy_node *text = fy_node_mapping_lookup_by_string(root, "text", FY_NT);
	struct fy_node *error = fy_node_mapping_lookup_by_string(root, "error", FY_NT);
	const char *ids = id != NULL && fy_node_is_scalar(id) ? fy_node_get_scalar0(id) : NULL;
	struct scrape *s;

	if (ids == NULL)
		return;
	for (s = m->scrapes; s != NULL; s = s->next)
		if (!s->answered && !strcmp(s->wire_id, ids) && s->px_serial == px->serial)
			break;
	if (s == NULL)
		return;   /* late (timed out), or not this link's to answer */
	size_t len = 0;
	const char *t = text != NULL && fy_node_is_scalar(text) ? fy_node_get_scalar(text, &len) : NULL;
	if (t == NULL) {
		char msg[300];
		snprintf(msg, sizeof(msg), "the proxy could not render its metrics: %.200s",
			 error != NULL && fy_node_is_scalar(error) ? fy_node_get_scalar0(error) : "no text");
		answer_error(s, 502, msg);
		return;
	}
	answer(s, 200, "text/plain; version=0.0.4; charset=utf-8", t, len);
}

void mesh_scrape_stop(struct sn_mesh *m)
{
	while (m->scrapes != NULL)
		scrape_end(m->scrapes);
}
