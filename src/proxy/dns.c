/* The proxy's resolver for ServiceEntries with resolution DNS (Envoy's
 * STRICT_DNS and LOGICAL_DNS): names are resolved by the system resolver
 * (getaddrinfo: /etc/hosts, then DNS as /etc/resolv.conf says) on a thread
 * of their own, never on a loop. Translation asks for a name's addresses
 * (sn_dns_lookup, under a mutex); a name it has not seen is queued and
 * gives no endpoint until answered. The thread resolves queued names at
 * once and every name again each --dns-refresh (getaddrinfo reports no
 * TTL); when a name's addresses change it asks the main thread to
 * translate again (file mode: the file; control-plane mode: the resources
 * held), so endpoints follow DNS without a push. A failed lookup keeps the
 * last addresses (Envoy's behaviour) and is logged once per change. When a
 * configuration is published, names its translation did not ask for are
 * dropped (sn_dns_published). Bounded: DNS_NAMES names, DNS_ADDRS
 * addresses each. */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "sinew/log.h"
#include "proxy.h"

#define DNS_NAMES 256
#define DNS_ADDRS 16

struct dns_name {
	char name[SN_HOST_NAME_MAX + 1];
	char addrs[DNS_ADDRS][48];
	size_t n;
	int resolved;                /* at least one answer (or failure) came */
	int failing;                 /* the last lookup failed (logged once) */
	uint64_t next_ms;            /* resolve again at (monotonic ms) */
	uint64_t asked_gen;          /* the translation that last asked (sn_dns.gen) */
};

struct sn_dns {
	struct sn_proxy *p;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int stop;
	int started;                 /* the thread runs (made at the first name: most proxies have none) */
	uint64_t gen;                /* translations since start: one per published configuration */
	uint32_t refresh_ms;
	struct dns_name names[DNS_NAMES];
	size_t n_names;
	struct sn_task changed;      /* posted to the main loop */
	int changed_queued;          /* atomic */
};

static uint64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void *dns_main(void *arg);

size_t sn_dns_lookup(void *ctx, const char *name, char out[][48], size_t max)
{
	struct sn_dns *d = ctx;
	size_t n = 0;
	if (d == NULL || name == NULL || strlen(name) > SN_HOST_NAME_MAX)
		return 0;
	pthread_mutex_lock(&d->lock);
	struct dns_name *e = NULL;
	for (size_t i = 0; i < d->n_names && e == NULL; i++)
		if (!strcasecmp(d->names[i].name, name))
			e = &d->names[i];
	if (e == NULL && !d->started) {
		if (pthread_create(&d->thread, NULL, dns_main, d) != 0) {
			pthread_mutex_unlock(&d->lock);
			sn_log(SN_LOG_ERROR, "dns: cannot start the resolver thread; %s is not resolved", name);
			return 0;
		}
		d->started = 1;
	}
	if (e == NULL && d->n_names < DNS_NAMES) {
		e = &d->names[d->n_names++];
		memset(e, 0, sizeof(*e));
		snprintf(e->name, sizeof(e->name), "%s", name);
		pthread_cond_signal(&d->cond);   /* resolve it now */
	} else if (e == NULL) {
		sn_log(SN_LOG_WARN, "dns: more than %d names to resolve; %s is not resolved", DNS_NAMES, name);
	}
	if (e != NULL) {
		e->asked_gen = d->gen;
		for (; n < e->n && n < max; n++)
			memcpy(out[n], e->addrs[n], sizeof(out[n]));
	}
	pthread_mutex_unlock(&d->lock);
	return n;
}

static int cmp_addr(const void *a, const void *b)
{
	return strcmp(a, b);
}

/* getaddrinfo, sorted and without duplicates. Returns how many, or -1
 * with err set. */
static int resolve(const char *name, char addrs[DNS_ADDRS][48], char *err, size_t es)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM }, *res = NULL;
	int r = getaddrinfo(name, NULL, &hints, &res);
	if (r != 0) {
		snprintf(err, es, "%s", r == EAI_SYSTEM ? strerror(errno) : gai_strerror(r));
		return -1;
	}
	int n = 0;
	for (struct addrinfo *a = res; a != NULL && n < DNS_ADDRS; a = a->ai_next) {
		char ip[48];
		if (a->ai_family == AF_INET)
			inet_ntop(AF_INET, &((struct sockaddr_in *)a->ai_addr)->sin_addr, ip, sizeof(ip));
		else if (a->ai_family == AF_INET6)
			inet_ntop(AF_INET6, &((struct sockaddr_in6 *)a->ai_addr)->sin6_addr, ip, sizeof(ip));
		else
			continue;
		int dup = 0;
		for (int k = 0; k < n && !dup; k++)
			dup = !strcmp(addrs[k], ip);
		if (!dup)
			snprintf(addrs[n++], 48, "%s", ip);
	}
	freeaddrinfo(res);
	qsort(addrs, (size_t)n, 48, cmp_addr);
	return n;
}

static void on_changed(struct sn_loop *loop, struct sn_task *t)
{
	struct sn_dns *d = sn_container_of(t, struct sn_dns, changed);
	(void)loop;
	__atomic_store_n(&d->changed_queued, 0, __ATOMIC_RELEASE);
	sn_proxy_retranslate(d->p, "DNS answers changed");
}

static void *dns_main(void *arg)
{
	struct sn_dns *d = arg;
	pthread_setname_np(pthread_self(), "sinew-dns");
	pthread_mutex_lock(&d->lock);
	while (!d->stop) {
		uint64_t now = mono_ms(), wake = now + 1000;
		struct dns_name *due = NULL;
		for (size_t i = 0; i < d->n_names; i++) {
			struct dns_name *e = &d->names[i];
			if (e->next_ms <= now && due == NULL)
				due = e;
			else if (e->next_ms < wake)
				wake = e->next_ms;
		}
		if (due == NULL) {
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			uint64_t ms = wake > now ? wake - now : 1;
			ts.tv_sec += (time_t)(ms / 1000);
			ts.tv_nsec += (long)(ms % 1000) * 1000000L;
			if (ts.tv_nsec >= 1000000000L) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000L;
			}
			pthread_cond_timedwait(&d->cond, &d->lock, &ts);
			continue;
		}
		char name[SN_HOST_NAME_MAX + 1], err[200];
		char addrs[DNS_ADDRS][48];
		snprintf(name, sizeof(name), "%s", due->name);
		due->next_ms = now + d->refresh_ms;
		pthread_mutex_unlock(&d->lock);
		int n = resolve(name, addrs, err, sizeof(err));   /* may block: no lock held */
		pthread_mutex_lock(&d->lock);
		struct dns_name *e = NULL;   /* the table may have moved */
		for (size_t i = 0; i < d->n_names && e == NULL; i++)
			if (!strcmp(d->names[i].name, name))
				e = &d->names[i];
		if (e == NULL)
			continue;
		int first = !e->resolved;
		e->resolved = 1;
		if (n < 0) {
			if (!e->failing)
				sn_log(SN_LOG_WARN, "dns: %s: %s%s", name, err,
				       e->n ? "; keeping its last addresses" : "; no endpoint until it resolves");
			e->failing = 1;
			continue;
		}
		if (e->failing)
			sn_log(SN_LOG_INFO, "dns: %s resolves again", name);
		e->failing = 0;
		int changed = (size_t)n != e->n;
		for (int k = 0; !changed && k < n; k++)
			changed = strcmp(addrs[k], e->addrs[k]) != 0;
		if (!changed)
			continue;
		memcpy(e->addrs, addrs, sizeof(addrs));
		e->n = (size_t)n;
		sn_log(SN_LOG_INFO, "dns: %s is %s%s (%d address%s)", name, n ? addrs[0] : "nothing",
		       n > 1 ? ", ..." : "", n, n == 1 ? "" : "es");
		(void)first;
		if (!__atomic_exchange_n(&d->changed_queued, 1, __ATOMIC_ACQ_REL))
			sn_loop_post(&d->p->loop, &d->changed, on_changed);
	}
	pthread_mutex_unlock(&d->lock);
	return NULL;
}

void sn_dns_published(struct sn_proxy *p)
{
	struct sn_dns *d = p->dns;
	if (d == NULL)
		return;
	pthread_mutex_lock(&d->lock);
	/* the published configuration's translation asked in generation gen:
	 * names it did not ask for are no one's now */
	for (size_t i = 0; i < d->n_names; i++)
		if (d->names[i].asked_gen != d->gen)
			d->names[i--] = d->names[--d->n_names];
	d->gen++;
	pthread_mutex_unlock(&d->lock);
}

int sn_dns_start(struct sn_proxy *p)
{
	struct sn_dns *d = calloc(1, sizeof(*d));
	if (d == NULL)
		return SN_ENOMEM;
	d->p = p;
	d->refresh_ms = p->opt.dns_refresh_ms ? p->opt.dns_refresh_ms : 5000;
	pthread_mutex_init(&d->lock, NULL);
	pthread_cond_init(&d->cond, NULL);
	p->dns = d;
	p->identity.dns_lookup = sn_dns_lookup;
	p->identity.dns_ctx = d;
	return 0;
}

void sn_dns_stop(struct sn_proxy *p)
{
	struct sn_dns *d = p->dns;
	if (d == NULL)
		return;
	pthread_mutex_lock(&d->lock);
	d->stop = 1;
	pthread_cond_signal(&d->cond);
	pthread_mutex_unlock(&d->lock);
	if (d->started)
		pthread_join(d->thread, NULL);   /* a getaddrinfo in progress finishes first */
	pthread_mutex_destroy(&d->lock);
	pthread_cond_destroy(&d->cond);
	p->identity.dns_lookup = NULL;
	p->identity.dns_ctx = NULL;
	p->dns = NULL;
	free(d);
}
