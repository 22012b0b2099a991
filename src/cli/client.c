/* The CLI's use of the shared HTTP client (include/sinew/http_client.h):
 * sinewd's API, a proxy's admin port (inside its pod's network namespace
 * when sn_cli_netns is set), Prometheus. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sinew/cli.h"
#include "sinew/http_client.h"
#include "sinew/pod.h"

const char *sn_cli_netns;

/* A pod's proxy: its admin port is on the pod's loopback. */
static int open_socket(int family, int type, int protocol, void *arg)
{
	return sn_pod_socket_in_netns((const char *)arg, family, type, protocol);
}

static int exchange(const char *base, const char *method, const char *path, const char *content_type,
		    const char *body, size_t body_len, int timeout_ms, const char *who, const char *hint,
		    const char *authorization, sn_http_line_cb on_line, void *arg, struct sn_http_response *out,
		    char *err, size_t err_size)
{
	struct sn_http_request rq = {
		.method = method, .path = path, .content_type = content_type, .body = body, .body_len = body_len,
		.authorization = authorization, .timeout_ms = timeout_ms, .who = who, .hint = hint,
		.on_line = on_line, .line_arg = arg,
		.open_socket = sn_cli_netns != NULL ? open_socket : NULL, .socket_arg = (void *)sn_cli_netns,
	};
	return sn_http_exchange(base, &rq, out, err, err_size);
}

int sn_cli_http(const char *base, const char *method, const char *path, const char *content_type,
		const char *body, size_t body_len, int timeout_ms, const char *who, const char *hint,
		struct sn_http_response *out, char *err, size_t err_size)
{
	return exchange(base, method, path, content_type, body, body_len, timeout_ms, who, hint, NULL, NULL, NULL, out,
			err, err_size);
}

int sn_cli_http_lines(const char *base, const char *path, const char *authorization, int timeout_ms,
		      sn_http_line_cb on_line, void *arg, struct sn_http_response *out, char *err, size_t err_size)
{
	return exchange(base, "GET", path, NULL, NULL, 0, timeout_ms, "sinewd", "start it with `sinew up`",
			authorization, on_line, arg, out, err, err_size);
}

const char *sn_cli_server(const char *flag)
{
	if (flag != NULL && flag[0])
		return flag;
	const char *env = getenv("SINEW_SERVER");
	return env != NULL && env[0] ? env : SN_CLI_DEFAULT_SERVER;
}

int sn_cli_api(const char *server, const char *method, const char *path, const char *body, size_t body_len,
	       struct sn_http_response *out)
{
	char err[700];
	if (sn_cli_http(server, method, path, body ? "application/yaml" : NULL, body, body_len, SN_CLI_TIMEOUT_MS,
			"sinewd", "start it with `sinew up`", out, err, sizeof(err)) != 0) {
		fprintf(stderr, "sinew: %s\n", err);
		return -1;
	}
	return 0;
}

int sn_cli_api_get(const char *server, const char *path, const char *feature, int json,
		   struct sn_http_response *r)
{
	if (sn_cli_api(server, "GET", path, NULL, 0, r) != 0)
		return 1;
	if (r->status == 404 && feature != NULL) {
		const char *q = strchr(path, '?');
		fprintf(stderr, "sinew: sinewd at %s has no %.*s (it predates %s); upgrade sinewd\n", server,
			q ? (int)(q - path) : (int)strlen(path), path, feature);
		sn_http_response_free(r);
		return 1;
	}
	if (r->status != 200) {
		sn_cli_api_error(r);
		sn_http_response_free(r);
		return 1;
	}
	if (json) {
		fwrite(r->body, 1, r->len, stdout);
		if (r->len == 0 || r->body[r->len - 1] != '\n')
			putchar('\n');
		sn_http_response_free(r);
		return 2;
	}
	return 0;
}

void sn_cli_api_error(const struct sn_http_response *r)
{
	struct fy_document *doc = sn_cli_json_parse(r->body, r->len);
	const char *msg = doc ? sn_cli_json_str(sn_cli_json_root(doc), "error") : NULL;
	if (msg != NULL)
		fprintf(stderr, "sinew: %s\n", msg);
	else
		fprintf(stderr, "sinew: sinewd answered %d: %.300s\n", r->status, r->body ? r->body : "");
	sn_cli_json_free(doc);
}
