/* Containment of admission (docs/internals/admission.md): sinewd admits
 * an apply with the proxy's own config code, so a bug that input can reach
 * there must not take sinewd down, and a resource that crashes that code
 * must never be stored, let alone pushed. The deciding half of the apply
 * (parse, validate, translate with the store) runs in a forked child with
 * CPU, time and memory limits; the child sends its decision back over a
 * pipe and sinewd commits it. If the child dies, the resources that make
 * it die are found by halving (a group is decided alone, without the
 * others) and refused with internal_error; the rest is admitted as usual.
 *
 * The child sends, on its pipe (host byte order; the reader bounds every
 * count and length by what is left):
 *   'L' u32 n { str kind, str ns, str name, i32 line }*n    body loaded
 *   'D' i32 rc, report, puts, diags                          decided
 * where str is u32 length (0xffffffff: NULL) and bytes. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sinew/control.h"
#include "sinew/file.h"
#include "sinew/log.h"
#include "sinew/loop.h"

#include "admission_internal.h"

#define ISO_TIMEOUT_MS 30000            /* wall time a child may take */
#define ISO_CPU_SECONDS 30
#define ISO_MEMORY_HEADROOM (1ull << 30) /* address space beyond sinewd's own */
#define ISO_MAX_REPLY (256u << 20)
#define ISO_NULL_STR 0xffffffffu

#if defined(__SANITIZE_ADDRESS__)
#define ISO_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ISO_ASAN 1
#endif
#endif

/* ---- writing (in the child) ----------------------------------------- */

static void put_u32(struct sn_out *o, uint32_t v)
{
	sn_out_raw(o, (const char *)&v, sizeof(v));
}

static void put_i64(struct sn_out *o, int64_t v)
{
	sn_out_raw(o, (const char *)&v, sizeof(v));
}

static void put_bytes(struct sn_out *o, const char *s, size_t n)
{
	if (s == NULL) {
		put_u32(o, ISO_NULL_STR);
		return;
	}
	put_u32(o, (uint32_t)n);
	sn_out_raw(o, s, n);
}

static void put_str(struct sn_out *o, const char *s)
{
	put_bytes(o, s, s ? strlen(s) : 0);
}

static void put_diags(struct sn_out *o, const struct sn_diags *d)
{
	put_u32(o, (uint32_t)d->n);
	for (size_t i = 0; i < d->n; i++) {
		const struct sn_diag *g = &d->v[i];
		put_u32(o, (uint32_t)g->severity);
		put_str(o, g->file);
		put_u32(o, (uint32_t)g->line);
		put_u32(o, (uint32_t)g->column);
		put_str(o, g->kind);
		put_str(o, g->name);
		put_str(o, g->field);
		put_str(o, g->message);
	}
}

static void on_loaded(void *user, const struct sn_config_set *body)
{
	int fd = *(int *)user;
	struct sn_out o = { 0 };
	sn_out_raw(&o, "L", 1);
	put_u32(&o, (uint32_t)body->count);
	for (const struct sn_resource *r = body->head; r; r = r->next) {
		put_str(&o, sn_resource_kind_str(r->kind));
		put_str(&o, r->namespace_);
		put_str(&o, r->name);
		put_u32(&o, (uint32_t)r->line);
	}
	if (o.failed || sn_write_all(fd, o.p, o.len) != 0)
		_exit(3);
	sn_out_free(&o);
}

static void limit_child(void)
{
	struct rlimit cpu = { ISO_CPU_SECONDS, ISO_CPU_SECONDS + 1 };
	setrlimit(RLIMIT_CPU, &cpu);
#ifndef ISO_ASAN
	/* ASan reserves terabytes of shadow address space: no limit there */
	FILE *f = fopen("/proc/self/statm", "r");
	unsigned long long pages = 0;
	if (f != NULL) {
		char line[128], *end;
		if (fgets(line, sizeof(line), f) == NULL || (pages = strtoull(line, &end, 10), end == line))
			pages = 0;
		fclose(f);
	}
	if (pages > 0) {
		unsigned long long bytes = pages * (unsigned long long)sysconf(_SC_PAGESIZE) + ISO_MEMORY_HEADROOM;
		struct rlimit as = { bytes, bytes };
		setrlimit(RLIMIT_AS, &as);
	}
#endif
}

static void child_main(int fd, const struct sn_store *st, const char *source, const char *text, size_t len,
		       const unsigned char *mark, size_t n_mark)
{
	struct sn__admit_decision dec;
	limit_child();
	sn__admit_decide(st, source, text, len, mark, n_mark, on_loaded, &fd, &dec);
	struct sn_out o = { 0 };
	sn_out_raw(&o, "D", 1);
	put_u32(&o, (uint32_t)dec.rc);
	put_u32(&o, (uint32_t)dec.rep.n);
	for (size_t i = 0; i < dec.rep.n; i++) {
		const struct sn_apply_item *it = &dec.rep.v[i];
		put_str(&o, it->kind);
		put_str(&o, it->namespace_);
		put_str(&o, it->name);
		put_u32(&o, (uint32_t)it->result);
		put_u32(&o, (uint32_t)it->line);
		put_i64(&o, (int64_t)it->seq);
		put_diags(&o, &it->diags);
	}
	put_u32(&o, (uint32_t)dec.n_puts);
	for (size_t i = 0; i < dec.n_puts; i++) {
		const struct sn__admit_put *p = &dec.puts[i];
		put_i64(&o, p->item);
		put_u32(&o, (uint32_t)p->kind);
		put_str(&o, p->api_version);
		put_str(&o, p->ns);
		put_str(&o, p->name);
		put_str(&o, p->source);
		put_u32(&o, (uint32_t)p->line);
		put_bytes(&o, p->text, p->len);
	}
	put_diags(&o, &dec.eval);
	/* no free: the process ends here, and _exit runs no handlers */
	_exit(o.failed || sn_write_all(fd, o.p, o.len) != 0 ? 3 : 0);
}

/* ---- reading (in sinewd) --------------------------------------------- */

struct rd {
	const char *p;
	size_t left;
	int bad;
};

static int get_raw(struct rd *r, void *out, size_t n)
{
	if (r->bad || r->left < n) {
		r->bad = 1;
		memset(out, 0, n);
		return -1;
	}
	memcpy(out, r->p, n);
	r->p += n;
	r->left -= n;
	return 0;
}

static uint32_t get_u32(struct rd *r)
{
	uint32_t v;
	get_raw(r, &v, sizeof(v));
	return v;
}

static int64_t get_i64(struct rd *r)
{
	int64_t v;
	get_raw(r, &v, sizeof(v));
	return v;
}

/* An owned copy (NUL-terminated), NULL for a NULL string or on error. */
static char *get_str(struct rd *r, size_t *len)
{
	uint32_t n = get_u32(r);
	if (len)
		*len = 0;
	if (r->bad || n == ISO_NULL_STR)
		return NULL;
	if (n > r->left) {
		r->bad = 1;
		return NULL;
	}
	char *s = malloc((size_t)n + 1);
	if (s == NULL) {
		r->bad = 1;
		return NULL;
	}
	memcpy(s, r->p, n);
	s[n] = '\0';
	r->p += n;
	r->left -= n;
	if (len)
		*len = n;
	return s;
}

/* A count of records, each at least min bytes: bounded by what is left. */
static uint32_t get_count(struct rd *r, size_t min)
{
	uint32_t n = get_u32(r);
	if (!r->bad && (size_t)n > r->left / min)
		r->bad = 1;
	return r->bad ? 0 : n;
}

static void get_diags(struct rd *r, struct sn_diags *d)
{
	uint32_t n = get_count(r, 32);  /* severity, 5 strings, line, column: 32 bytes at least */
	for (uint32_t i = 0; i < n && !r->bad; i++) {
		uint32_t sev = get_u32(r);
		char *file = get_str(r, NULL);
		int line = (int)get_u32(r), col = (int)get_u32(r);
		char *kind = get_str(r, NULL), *name = get_str(r, NULL), *field = get_str(r, NULL);
		char *msg = get_str(r, NULL);
		if (!r->bad)
			sn_diags_add(d, sev == SN_DIAG_ERROR ? SN_DIAG_ERROR : SN_DIAG_WARNING, file ? file : "-", line,
				     col, kind, name, field, "%s", msg ? msg : "");
		free(file);
		free(kind);
		free(name);
		free(field);
		free(msg);
	}
}

/* The resources of the body, as the child loaded them. */
struct loaded {
	char **kind, **ns, **name;
	int *line;
	size_t n;
	int have;
};

static void loaded_free(struct loaded *l)
{
	for (size_t i = 0; i < l->n; i++) {
		free(l->kind[i]);
		free(l->ns[i]);
		free(l->name[i]);
	}
	free(l->kind);
	free(l->ns);
	free(l->name);
	free(l->line);
	memset(l, 0, sizeof(*l));
}

static int read_loaded(struct rd *r, struct loaded *l)
{
	uint32_t n = get_count(r, 16);  /* 3 strings and a line */
	if (r->bad)
		return -1;
	l->kind = calloc(n ? n : 1, sizeof(char *));
	l->ns = calloc(n ? n : 1, sizeof(char *));
	l->name = calloc(n ? n : 1, sizeof(char *));
	l->line = calloc(n ? n : 1, sizeof(int));
	if (l->kind == NULL || l->ns == NULL || l->name == NULL || l->line == NULL)
		return -1;
	for (uint32_t i = 0; i < n && !r->bad; i++, l->n++) {
		l->kind[i] = get_str(r, NULL);
		l->ns[i] = get_str(r, NULL);
		l->name[i] = get_str(r, NULL);
		l->line[i] = (int)get_u32(r);
	}
	l->have = !r->bad;
	return r->bad ? -1 : 0;
}

static int read_decision(struct rd *r, struct sn__admit_decision *dec)
{
	memset(dec, 0, sizeof(*dec));
	sn_diags_init(&dec->eval);
	dec->rc = (int)get_u32(r);
	uint32_t n = get_count(r, 32);  /* 3 strings, result, line, seq, diags count */
	if (n > 0) {
		dec->rep.v = calloc(n, sizeof(*dec->rep.v));
		if (dec->rep.v == NULL)
			return -1;
	}
	for (uint32_t i = 0; i < n && !r->bad; i++) {
		struct sn_apply_item *it = &dec->rep.v[i];
		sn_diags_init(&it->diags);
		dec->rep.n++;
		it->kind = get_str(r, NULL);
		it->namespace_ = get_str(r, NULL);
		it->name = get_str(r, NULL);
		it->result = (enum sn_apply_result)get_u32(r);
		it->line = (int)get_u32(r);
		it->seq = (size_t)get_i64(r);
		get_diags(r, &it->diags);
		if (it->kind == NULL || it->namespace_ == NULL || it->name == NULL || it->result > SN_APPLY_IGNORED)
			r->bad = 1;
	}
	uint32_t np = get_count(r, 36); /* item, kind, 4 strings, line, text */
	if (np > 0) {
		dec->puts = calloc(np, sizeof(*dec->puts));
		if (dec->puts == NULL)
			return -1;
	}
	for (uint32_t i = 0; i < np && !r->bad; i++) {
		struct sn__admit_put *p = &dec->puts[i];
		dec->n_puts++;
		p->item = (long)get_i64(r);
		p->kind = (enum sn_resource_kind)get_u32(r);
		p->api_version = get_str(r, NULL);
		p->ns = get_str(r, NULL);
		p->name = get_str(r, NULL);
		p->source = get_str(r, NULL);
		p->line = (int)get_u32(r);
		p->text = get_str(r, &p->len);
		if (p->api_version == NULL || p->ns == NULL || p->name == NULL || p->source == NULL ||
		    p->text == NULL || (unsigned)p->kind >= SN_KIND__COUNT || p->item < 0 ||
		    (size_t)p->item >= dec->rep.n)
			r->bad = 1;
	}
	get_diags(r, &dec->eval);
	return r->bad || r->left != 0 ? -1 : 0;
}

/* ---- one child ------------------------------------------------------- */

enum run_result { RUN_OK, RUN_DIED };

struct run {
	enum run_result result;
	char why[160];                  /* how the child died */
	struct loaded loaded;           /* whether it got that far */
	struct sn__admit_decision dec;  /* RUN_OK, with want_decision */
};

static int64_t now_ms(void)
{
	return (int64_t)sn_clock_ms();
}

/* Decides text in a child process; reads its messages. */
static void run_child(const struct sn_store *st, const char *source, const char *text, size_t len,
		      const unsigned char *mark, size_t n_mark, struct run *out)
{
	int fds[2];
	memset(out, 0, sizeof(*out));
	out->result = RUN_DIED;
	if (pipe2(fds, O_CLOEXEC) != 0) {
		snprintf(out->why, sizeof(out->why), "cannot make a pipe: %s", strerror(errno));
		return;
	}
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0) {
		snprintf(out->why, sizeof(out->why), "cannot fork: %s", strerror(errno));
		close(fds[0]);
		close(fds[1]);
		return;
	}
	if (pid == 0) {
		close(fds[0]);
		child_main(fds[1], st, source, text, len, mark, n_mark);
		_exit(3);
	}
	close(fds[1]);

	/* read everything the child says, within the deadline */
	char *buf = NULL;
	size_t n = 0, cap = 0;
	int64_t deadline = now_ms() + ISO_TIMEOUT_MS;
	int timed_out = 0, too_big = 0;
	for (;;) {
		int64_t left = deadline - now_ms();
		if (left <= 0) {
			timed_out = 1;
			break;
		}
		struct pollfd pfd = { fds[0], POLLIN, 0 };
		int pr = poll(&pfd, 1, (int)left);
		if (pr < 0 && errno == EINTR)
			continue;
		if (pr <= 0) {
			timed_out = pr == 0;
			break;
		}
		if (n + 65536 > cap) {
			if (cap >= ISO_MAX_REPLY) {
				too_big = 1;
				break;
			}
			size_t ncap = cap ? cap * 2 : 65536 * 2;
			char *nb = realloc(buf, ncap);
			if (nb == NULL) {
				too_big = 1;
				break;
			}
			buf = nb;
			cap = ncap;
		}
		ssize_t rd = read(fds[0], buf + n, cap - n);
		if (rd < 0 && errno == EINTR)
			continue;
		if (rd <= 0)
			break;
		n += (size_t)rd;
	}
	close(fds[0]);
	if (timed_out || too_big)
		kill(pid, SIGKILL);
	int status = 0;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;

	struct rd r = { buf, n, 0 };
	char tag = 0;
	if (get_raw(&r, &tag, 1) == 0 && tag == 'L')
		read_loaded(&r, &out->loaded);
	int decided = out->loaded.have && get_raw(&r, &tag, 1) == 0 && tag == 'D';
	if (timed_out)
		snprintf(out->why, sizeof(out->why), "took longer than %d s", ISO_TIMEOUT_MS / 1000);
	else if (too_big)
		snprintf(out->why, sizeof(out->why), "answered more than %u MiB", ISO_MAX_REPLY >> 20);
	else if (WIFSIGNALED(status))
		snprintf(out->why, sizeof(out->why), "killed by signal %d (%s)", WTERMSIG(status),
			 strsignal(WTERMSIG(status)));
	else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		snprintf(out->why, sizeof(out->why), "exited with status %d", WEXITSTATUS(status));
	else if (!decided || read_decision(&r, &out->dec) != 0)
		snprintf(out->why, sizeof(out->why), "sent a malformed decision");
	else
		out->result = RUN_OK;
	if (out->result != RUN_OK && decided)
		sn__admit_decision_free(&out->dec);
	free(buf);
}

static void run_free(struct run *r)
{
	loaded_free(&r->loaded);
	if (r->result == RUN_OK)
		sn__admit_decision_free(&r->dec);
}

/* Marks crashed[] for the resources in [lo, hi) whose decision, alone
 * with the store, kills the child. Halves a group that dies. */
static void find_crashers(const struct sn_store *st, const char *source, const char *text, size_t len,
			  size_t n, size_t lo, size_t hi, unsigned char *crashed, unsigned char *mark, int known_bad)
{
	if (lo >= hi)
		return;
	if (!known_bad) {
		for (size_t i = 0; i < n; i++)
			mark[i] = i >= lo && i < hi ? SN__ADMIT_ADMIT : SN__ADMIT_SKIP;
		struct run r;
		run_child(st, source, text, len, mark, n, &r);
		int died = r.result != RUN_OK;
		run_free(&r);
		if (!died)
			return;
	}
	if (hi - lo == 1) {
		crashed[lo] = 1;
		return;
	}
	size_t mid = lo + (hi - lo) / 2;
	find_crashers(st, source, text, len, n, lo, mid, crashed, mark, 0);
	find_crashers(st, source, text, len, n, mid, hi, crashed, mark, 0);
}

/* The whole apply refused: admission died before it knew the resources
 * (in the YAML parser), or again without the ones found. */
static void refuse_all(const char *source, const struct loaded *l, const char *why, struct sn_apply_report *out)
{
	char src[256];
	sn__admit_sanitize_source(source, src, sizeof(src));
	memset(out, 0, sizeof(*out));
	size_t n = l && l->have && l->n ? l->n : 1;
	out->v = calloc(n, sizeof(*out->v));
	if (out->v == NULL)
		return;
	for (size_t i = 0; i < n; i++) {
		struct sn_apply_item *it = &out->v[i];
		int one = l && l->have && l->n;
		it->kind = strdup(one ? l->kind[i] : "");
		it->namespace_ = strdup(one ? l->ns[i] : "");
		it->name = strdup(one ? l->name[i] : "");
		it->line = one ? l->line[i] : 0;
		it->seq = i;
		it->result = SN_APPLY_REFUSED;
		sn_diags_init(&it->diags);
		sn_diags_add(&it->diags, SN_DIAG_ERROR, src, it->line, 0, one ? it->kind : NULL, NULL, NULL,
			     "internal_error: sinewd's admission process %s while %s this apply; nothing of it "
			     "was stored and sinewd is unaffected. Please report it with the applied file "
			     "(sinewd " SINEWD_VERSION ")",
			     why, one ? "translating" : "reading");
		out->n++;
		out->refused++;
	}
}

int sn_admit_apply_isolated(struct sn_store *st, const char *source, const char *text, size_t len,
			    struct sn_apply_report *out)
{
	struct run r;
	run_child(st, source, text, len, NULL, 0, &r);
	if (r.result == RUN_OK) {
		loaded_free(&r.loaded);
		return sn__admit_commit(st, &r.dec, out);
	}
	sn_log(SN_LOG_ERROR, "admission: the child admitting an apply from %.200s %s; finding the resource", source,
	       r.why);
	if (!r.loaded.have || r.loaded.n == 0) {
		refuse_all(source, &r.loaded, r.why, out);
		run_free(&r);
		return 0;
	}
	size_t n = r.loaded.n;
	unsigned char *crashed = calloc(n, 1), *mark = calloc(n, 1);
	int rc = 0;
	if (crashed == NULL || mark == NULL) {
		refuse_all(source, &r.loaded, r.why, out);
		goto done;
	}
	find_crashers(st, source, text, len, n, 0, n, crashed, mark, n == 1);
	for (size_t i = 0; i < n; i++) {
		mark[i] = crashed[i] ? SN__ADMIT_CRASHED : SN__ADMIT_ADMIT;
		if (crashed[i])
			sn_log(SN_LOG_ERROR, "admission: %s %s/%s from %.200s crashes admission; refused",
			       r.loaded.kind[i] ? r.loaded.kind[i] : "?", r.loaded.ns[i] ? r.loaded.ns[i] : "?",
			       r.loaded.name[i] ? r.loaded.name[i] : "?", source);
	}
	struct run again;
	run_child(st, source, text, len, mark, n, &again);
	if (again.result == RUN_OK) {
		rc = sn__admit_commit(st, &again.dec, out);
		loaded_free(&again.loaded);
	} else {
		sn_log(SN_LOG_ERROR, "admission: the apply from %.200s still %s without them; refused whole", source,
		       again.why);
		refuse_all(source, &r.loaded, again.why, out);
		run_free(&again);
	}
done:
	free(crashed);
	free(mark);
	run_free(&r);
	return rc;
}
