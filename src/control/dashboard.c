/* The dashboard (docs/observability.md, "Dashboard"): a single-page app
 * whose files live in web/dashboard/ and are compiled into sinewd
 * (web/embed.cmake writes them as byte arrays), so sinewd stays one
 * self-contained binary and the browser never fetches anything from
 * elsewhere. api.c routes GET /, /index.html and /ui/NAME here; the page
 * then reads the JSON API like any other client. Nothing here allocates
 * or keeps state: a lookup over a table built at compile time. */
#include <stdio.h>
#include <string.h>

#include "sinew/control.h"

/* Written by web/embed.cmake (the generated dashboard_files.c). */
struct sn_dashboard_blob {
	const char *name;
	const unsigned char *data;
	size_t len;
};
extern const struct sn_dashboard_blob sn_dashboard_files[];
extern const size_t sn_dashboard_n_files;

#define UI_PREFIX "/ui/"
#define NAME_MAX_LEN 64

static const struct {
	const char *ext;
	const char *type;
} content_types[] = {
	{ ".html", "text/html; charset=utf-8" },
	{ ".js", "text/javascript; charset=utf-8" },
	{ ".css", "text/css; charset=utf-8" },
	{ ".svg", "image/svg+xml" },
	{ ".png", "image/png" },
	{ ".ico", "image/x-icon" },
	{ ".json", "application/json" },
	{ ".txt", "text/plain; charset=utf-8" },
};

static const char *type_of(const char *name)
{
	size_t nl = strlen(name);
	for (size_t i = 0; i < sizeof(content_types) / sizeof(content_types[0]); i++) {
		size_t el = strlen(content_types[i].ext);
		if (nl > el && !memcmp(name + nl - el, content_types[i].ext, el))
			return content_types[i].type;
	}
	return "application/octet-stream";
}

/* The file name a route asks for, or NULL with *nl 0 when it is none of
 * the dashboard's paths. Names are what embed.cmake allows: no '/', no
 * leading '.', so nothing outside the table can be named. */
static const char *name_of(const char *route, size_t len, size_t *nl)
{
	static const char index_name[] = "index.html";
	size_t pl = sizeof(UI_PREFIX) - 1;

	*nl = 0;
	if ((len == 1 && route[0] == '/') || (len == 11 && !memcmp(route, "/index.html", 11))) {
		*nl = sizeof(index_name) - 1;
		return index_name;
	}
	if (len <= pl || memcmp(route, UI_PREFIX, pl) != 0 || len - pl > NAME_MAX_LEN)
		return NULL;
	const char *name = route + pl;
	if (name[0] == '.')
		return NULL;
	for (size_t i = 0; i < len - pl; i++) {
		char ch = name[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '.' ||
		      ch == '_' || ch == '-'))
			return NULL;
	}
	*nl = len - pl;
	return name;
}

int sn_dashboard_owns(const char *route, size_t len)
{
	size_t pl = sizeof(UI_PREFIX) - 1;
	if ((len == 1 && route[0] == '/') || (len == 11 && !memcmp(route, "/index.html", 11)))
		return 1;
	return (len >= pl && !memcmp(route, UI_PREFIX, pl)) || (len == pl - 1 && !memcmp(route, "/ui", 3));
}

int sn_dashboard_find(const char *route, size_t len, struct sn_dashboard_file *out)
{
	size_t nl;
	const char *name = name_of(route, len, &nl);

	if (name == NULL)
		return SN_ENOTFOUND;
	for (size_t i = 0; i < sn_dashboard_n_files; i++) {
		const struct sn_dashboard_blob *b = &sn_dashboard_files[i];
		if (strlen(b->name) == nl && !memcmp(b->name, name, nl)) {
			*out = (struct sn_dashboard_file){ b->name, type_of(b->name), b->data, b->len };
			return 0;
		}
	}
	return SN_ENOTFOUND;
}

void sn_dashboard_list(char *buf, size_t size)
{
	size_t off = 0;
	if (size == 0)
		return;
	buf[0] = '\0';
	for (size_t i = 0; i < sn_dashboard_n_files; i++) {
		int w = snprintf(buf + off, size - off, "%s" UI_PREFIX "%s", i ? ", " : "", sn_dashboard_files[i].name);
		if (w < 0 || (size_t)w >= size - off)
			break;
		off += (size_t)w;
	}
}
