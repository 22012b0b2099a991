/* Small things every control-plane command uses: JSON reading (libfyaml,
 * as sinew-proxy reads the control link), aligned tables, input files and
 * names as kubectl prints them. */
#include <dirent.h>
#include <errno.h>
#include <libfyaml.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "sinew/cli.h"
#include "sinew/query.h"
#include "sinew/common.h"
#include "sinew/config.h"

/* ---- JSON ---------------------------------------------------------------- */

struct fy_document *sn_cli_json_parse(const char *text, size_t len)
{
	if (text == NULL || len == 0)
		return NULL;
	struct fy_document *doc = sn_json_parse(text, len);
	if (doc != NULL && fy_document_root(doc) == NULL) {
		fy_document_destroy(doc);
		return NULL;
	}
	return doc;
}

void sn_cli_json_free(struct fy_document *doc)
{
	if (doc != NULL)
		fy_document_destroy(doc);
}

struct fy_node *sn_cli_json_root(struct fy_document *doc)
{
	return doc ? fy_document_root(doc) : NULL;
}

struct fy_node *sn_cli_json_get(struct fy_node *map, const char *key)
{
	if (map == NULL || !fy_node_is_mapping(map))
		return NULL;
	return fy_node_mapping_lookup_by_string(map, key, FY_NT);
}

const char *sn_cli_json_str(struct fy_node *map, const char *key)
{
	struct fy_node *n = sn_cli_json_get(map, key);
	if (n == NULL || !fy_node_is_scalar(n))
		return NULL;
	const char *s = fy_node_get_scalar0(n);
	if (s != NULL && fy_node_get_style(n) == FYNS_PLAIN && strcmp(s, "null") == 0)
		return NULL;
	return s;
}

const char *sn_cli_json_str_or(struct fy_node *map, const char *key, const char *def)
{
	const char *s = sn_cli_json_str(map, key);
	return s ? s : def;
}

long long sn_cli_json_int(struct fy_node *map, const char *key, long long def)
{
	const char *s = sn_cli_json_str(map, key);
	char *end;
	if (s == NULL || !s[0])
		return def;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	return (*end != '\0' || errno) ? def : v;
}

int sn_cli_json_bool(struct fy_node *map, const char *key)
{
	const char *s = sn_cli_json_str(map, key);
	return s != NULL && strcmp(s, "true") == 0;
}

size_t sn_cli_json_len(struct fy_node *seq)
{
	if (seq == NULL || !fy_node_is_sequence(seq))
		return 0;
	int n = fy_node_sequence_item_count(seq);
	return n > 0 ? (size_t)n : 0;
}

struct fy_node *sn_cli_json_at(struct fy_node *seq, size_t i)
{
	if (seq == NULL || !fy_node_is_sequence(seq) || i > (size_t)INT32_MAX)
		return NULL;
	return fy_node_sequence_get_by_index(seq, (int)i);
}

/* ---- tables -------------------------------------------------------------- */

void sn_cli_table_init(struct sn_cli_table *t, size_t ncols)
{
	memset(t, 0, sizeof(*t));
	t->ncols = ncols;
}

void sn_cli_table_row(struct sn_cli_table *t, const char *const *cells)
{
	if (t->n_rows == t->cap_rows) {
		size_t nc = t->cap_rows ? t->cap_rows * 2 : 16;
		char **v = realloc(t->cells, nc * t->ncols * sizeof(*v));
		if (v == NULL)
			return;   /* a row short in a listing, not a crash */
		t->cells = v;
		t->cap_rows = nc;
	}
	for (size_t i = 0; i < t->ncols; i++)
		t->cells[t->n_rows * t->ncols + i] = strdup(cells[i] && cells[i][0] ? cells[i] : "-");
	t->n_rows++;
}

void sn_cli_table_print(const struct sn_cli_table *t, FILE *f)
{
	size_t width[32] = { 0 };
	size_t nc = SN_MIN(t->ncols, SN_ARRAY_LEN(width));
	for (size_t r = 0; r < t->n_rows; r++)
		for (size_t c = 0; c < nc; c++) {
			const char *s = t->cells[r * t->ncols + c];
			size_t l = s ? strlen(s) : 0;
			width[c] = SN_MAX(width[c], l);
		}
	for (size_t r = 0; r < t->n_rows; r++) {
		for (size_t c = 0; c < nc; c++) {
			const char *s = t->cells[r * t->ncols + c];
			if (s == NULL)
				s = "";
			if (c + 1 == nc)
				fprintf(f, "%s", s);
			else
				fprintf(f, "%-*s   ", (int)width[c], s);
		}
		fputc('\n', f);
	}
}

void sn_cli_table_free(struct sn_cli_table *t)
{
	for (size_t i = 0; i < t->n_rows * t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
	memset(t, 0, sizeof(*t));
}

/* ---- input files --------------------------------------------------------- */

int sn_cli_read_file(const char *path, char **out, size_t *len)
{
	FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
	size_t cap = 65536, n = 0;
	char *buf;

	*out = NULL;
	*len = 0;
	if (f == NULL) {
		fprintf(stderr, "sinew: cannot read %s: %s\n", path, strerror(errno));
		return -1;
	}
	buf = malloc(cap + 1);
	while (buf != NULL) {
		size_t r = fread(buf + n, 1, cap - n, f);
		n += r;
		if (n < cap) {
			if (ferror(f)) {
				fprintf(stderr, "sinew: cannot read %s: %s\n", path, strerror(errno));
				goto fail;
			}
			break;
		}
		if (cap >= SN_CLI_MAX_INPUT) {
			fprintf(stderr, "sinew: %s is larger than %u MiB; split it into several files\n", path,
				SN_CLI_MAX_INPUT >> 20);
			goto fail;
		}
		cap = SN_MIN(cap * 2, (size_t)SN_CLI_MAX_INPUT);
		char *nb = realloc(buf, cap + 1);
		if (nb == NULL)
			break;
		buf = nb;
	}
	if (buf == NULL) {
		fprintf(stderr, "sinew: out of memory reading %s\n", path);
		goto fail;
	}
	if (f != stdin)
		fclose(f);
	buf[n] = '\0';
	*out = buf;
	*len = n;
	return 0;
fail:
	free(buf);
	if (f != stdin)
		fclose(f);
	return -1;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int config_name(const char *n)
{
	size_t l = strlen(n);
	if (n[0] == '.')
		return 0;
	return (l > 5 && !strcmp(n + l - 5, ".yaml")) || (l > 4 && !strcmp(n + l - 4, ".yml")) ||
	       (l > 5 && !strcmp(n + l - 5, ".json"));
}

static int push(char ***v, size_t *n, size_t *cap, const char *s)
{
	if (*n == *cap) {
		size_t nc = *cap ? *cap * 2 : 8;
		char **nv = realloc(*v, nc * sizeof(*nv));
		if (nv == NULL)
			return -1;
		*v = nv;
		*cap = nc;
	}
	(*v)[*n] = strdup(s);
	if ((*v)[*n] == NULL)
		return -1;
	(*n)++;
	return 0;
}

int sn_cli_expand_files(char **args, size_t n_args, char ***out, size_t *n_out)
{
	char **v = NULL;
	size_t n = 0, cap = 0;

	for (size_t i = 0; i < n_args; i++) {
		struct stat sb;
		if (strcmp(args[i], "-") == 0 || (stat(args[i], &sb) == 0 && !S_ISDIR(sb.st_mode))) {
			if (push(&v, &n, &cap, args[i]) != 0)
				goto oom;
			continue;
		}
		DIR *d = opendir(args[i]);
		if (d == NULL) {
			fprintf(stderr, "sinew: cannot read %s: %s\n", args[i], strerror(errno));
			goto fail;
		}
		size_t first = n;
		struct dirent *e;
		while ((e = readdir(d)) != NULL) {
			if (!config_name(e->d_name))
				continue;
			char path[4096];
			size_t al = strlen(args[i]);
			snprintf(path, sizeof(path), "%s%s%s", args[i], al && args[i][al - 1] == '/' ? "" : "/", e->d_name);
			if (push(&v, &n, &cap, path) != 0) {
				closedir(d);
				goto oom;
			}
		}
		closedir(d);
		if (n == first) {
			fprintf(stderr, "sinew: %s has no *.yaml, *.yml or *.json files\n", args[i]);
			goto fail;
		}
		qsort(v + first, n - first, sizeof(*v), cmp_str);
	}
	*out = v;
	*n_out = n;
	return 0;
oom:
	fprintf(stderr, "sinew: out of memory listing files\n");
fail:
	sn_cli_free_strv(v, n);
	return -1;
}

void sn_cli_free_strv(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/* ---- names ----------------------------------------------------------------- */

void sn_cli_url_escape(const char *s, char *buf, size_t size)
{
	sn_url_escape(s, 1, buf, size);
}

void sn_cli_kind_resource(const char *kind, char *buf, size_t size)
{
	static const struct {
		const char *kind, *group;
	} groups[] = {
		{ "Service", NULL },
		{ "VirtualService", "networking.istio.io" },
		{ "DestinationRule", "networking.istio.io" },
		{ "WorkloadEntry", "networking.istio.io" },
		{ "WorkloadGroup", "networking.istio.io" },
		{ "ServiceEntry", "networking.istio.io" },
		{ "Gateway", "networking.istio.io" },
		{ "Sidecar", "networking.istio.io" },
		{ "EnvoyFilter", "networking.istio.io" },
		{ "PeerAuthentication", "security.istio.io" },
		{ "AuthorizationPolicy", "security.istio.io" },
		{ "RequestAuthentication", "security.istio.io" },
		{ "Server", "policy.linkerd.io" },
		{ "HTTPLocalRateLimitPolicy", "policy.linkerd.io" },
		{ "Telemetry", "telemetry.istio.io" },
		{ "HTTPRoute", "gateway.networking.k8s.io" },
		{ "GRPCRoute", "gateway.networking.k8s.io" },
		{ "TCPRoute", "gateway.networking.k8s.io" },
		{ "TLSRoute", "gateway.networking.k8s.io" },
		{ "ReferenceGrant", "gateway.networking.k8s.io" },
	};
	char lower[128];
	size_t i;
	if (kind == NULL || !kind[0])
		kind = "unknown";
	for (i = 0; kind[i] && i + 1 < sizeof(lower); i++)
		lower[i] = (char)sn_tolower_ascii((unsigned char)kind[i]);
	lower[i] = '\0';
	for (i = 0; i < SN_ARRAY_LEN(groups); i++)
		if (strcmp(groups[i].kind, kind) == 0) {
			if (groups[i].group)
				snprintf(buf, size, "%s.%s", lower, groups[i].group);
			else
				snprintf(buf, size, "%s", lower);
			return;
		}
	snprintf(buf, size, "%s", lower);
}

void sn_cli_age(long long s, char *buf, size_t size)
{
	if (s < 0)
		s = 0;
	if (s < 120)
		snprintf(buf, size, "%llds", s);
	else if (s < 7200)
		snprintf(buf, size, "%lldm", s / 60);
	else if (s < 172800)
		snprintf(buf, size, "%lldh", s / 3600);
	else
		snprintf(buf, size, "%lldd", s / 86400);
}

int sn_cli_is_help(const char *arg)
{
	return strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0;
}
