/* The back ends: details (book details), ratings (stars per reviewer) and
 * reviews v1/v2/v3 (two reviews; v2 and v3 ask ratings for stars and color
 * them black or red). Responses follow Istio's sample services and the
 * ProductDetails / ProductReviews / ProductRatings shapes of its swagger. */

#include <libfyaml.h>
#include <stdio.h>
#include <string.h>

#include "bookinfo.h"

static int is_get(const struct bk_request *req)
{
	return sn_str_eq_cstr(req->h1.method, "GET") || sn_str_eq_cstr(req->h1.method, "HEAD");
}

/* For a path "<prefix><id>": 1 and the id (or -1 when not numeric);
 * 0 when the path is something else. */
static int route_id(const struct bk_request *req, const char *prefix, long *id)
{
	size_t n = strlen(prefix);
	if (req->path.len <= n || memcmp(req->path.p, prefix, n) != 0)
		return 0;
	*id = bk_parse_id(sn_str_make(req->path.p + n, req->path.len - n));
	return 1;
}

/* Common routes: method check, /health, 404. Returns 1 if it answered. */
static int common_routes(const struct bk_request *req, struct bk_response *res,
			 const char *health)
{
	if (!is_get(req)) {
		bk_response_header(res, "Allow", "GET, HEAD");
		bk_json_reply(res, 405, "{\"error\": \"method not allowed\"}");
		return 1;
	}
	if (sn_str_eq_cstr(req->path, "/health")) {
		bk_json_reply(res, 200, health);
		return 1;
	}
	return 0;
}

void bk_details_handle(struct bk_app *app, const struct bk_request *req, struct bk_response *res)
{
	long id;
	if (common_routes(req, res, "{\"status\": \"Details is healthy\"}"))
		return;
	if (!route_id(req, "/details/", &id)) {
		bk_json_reply(res, 404, "{\"error\": \"not found\"}");
		return;
	}
	if (id < 0) {
		bk_json_reply(res, 400, "{\"error\": \"please provide numeric product id\"}");
		return;
	}
	/* One book, whatever the id (as in Istio's details v1). */
	res->status = 200;
	res->content_type = "application/json";
	bk_buf_addf(&res->body,
		    "{\"id\": %ld, \"author\": \"William Shakespeare\", \"year\": 1595, "
		    "\"type\": \"paperback\", \"pages\": 200, \"publisher\": \"PublisherA\", "
		    "\"language\": \"English\", \"ISBN-10\": \"1234567890\", "
		    "\"ISBN-13\": \"123-1234567890\"}",
		    id);
}

void bk_ratings_handle(struct bk_app *app, const struct bk_request *req, struct bk_response *res)
{
	long id;
	if (common_routes(req, res, "{\"status\": \"Ratings is healthy\"}"))
		return;
	if (!route_id(req, "/ratings/", &id)) {
		bk_json_reply(res, 404, "{\"error\": \"not found\"}");
		return;
	}
	if (id < 0) {
		bk_json_reply(res, 400, "{\"error\": \"please provide numeric product ID\"}");
		return;
	}
	res->status = 200;
	res->content_type = "application/json";
	bk_buf_addf(&res->body, "{\"id\": %ld, \"ratings\": {\"Reviewer1\": 5, \"Reviewer2\": 4}}",
		    id);
}

/* The stars of one reviewer in a ratings response, or -1. */
static int stars_of(struct fy_node *ratings, const char *reviewer)
{
	struct fy_node *n = fy_node_mapping_lookup_by_string(ratings, reviewer, FY_NT);
	size_t len = 0;
	const char *s = n && fy_node_is_scalar(n) ? fy_node_get_scalar(n, &len) : NULL;
	long v = s ? bk_parse_id(sn_str_make(s, len)) : -1;
	return v >= 0 && v <= 5 ? (int)v : -1;
}

/* Asks ratings for the product's stars; -1 for a reviewer when ratings did
 * not answer 200 with a usable body. */
static void fetch_ratings(struct bk_app *app, const struct bk_request *req, long id, int stars[2])
{
	struct bk_header fwd[BK_MAX_FORWARD];
	size_t nfwd = bk_forward_headers(req, fwd, 0);
	char path[64];
	struct bk_fetch f;
	stars[0] = stars[1] = -1;
	snprintf(path, sizeof(path), "/ratings/%ld", id);
	bk_http_get(app, req->conn, &app->ratings, path, fwd, nfwd, app->ratings_timeout_ms, &f);
	if (f.status != 200) {
		if (f.status)
			fprintf(stderr, "%s: ratings %s:%s%s answered %d\n", app->name,
				app->ratings.host, app->ratings.port, path, f.status);
		else
			fprintf(stderr, "%s: ratings %s:%s%s: %s\n", app->name, app->ratings.host,
				app->ratings.port, path, f.err);
		bk_fetch_dispose(&f);
		return;
	}
	struct fy_parse_cfg cfg = { .flags = FYPCF_QUIET | FYPCF_JSON_FORCE };
	struct fy_document *doc = fy_document_build_from_string(&cfg, f.body.p, f.body.len);
	struct fy_node *root = doc ? fy_document_root(doc) : NULL;
	struct fy_node *r = root && fy_node_is_mapping(root)
				    ? fy_node_mapping_lookup_by_string(root, "ratings", FY_NT)
				    : NULL;
	if (r && fy_node_is_mapping(r)) {
		stars[0] = stars_of(r, "Reviewer1");
		stars[1] = stars_of(r, "Reviewer2");
	}
	if (doc)
		fy_document_destroy(doc);
	bk_fetch_dispose(&f);
}

static const char *const review_text[2] = {
	"An extremely entertaining play by Shakespeare. The slapstick humour is refreshing!",
	"Absolutely fun and entertaining. The play lacks thematic depth when compared to other "
	"plays by Shakespeare.",
};

void bk_reviews_handle(struct bk_app *app, const struct bk_request *req, struct bk_response *res)
{
	long id;
	int stars[2] = { -1, -1 };
	if (common_routes(req, res, "{\"status\": \"Reviews is healthy\"}"))
		return;
	if (!route_id(req, "/reviews/", &id)) {
		bk_json_reply(res, 404, "{\"error\": \"not found\"}");
		return;
	}
	if (id < 0) {
		bk_json_reply(res, 400, "{\"error\": \"please provide numeric product id\"}");
		return;
	}
	if (app->ratings_enabled)
		fetch_ratings(app, req, id, stars);

	struct bk_buf *b = &res->body;
	res->status = 200;
	res->content_type = "application/json";
	bk_buf_addf(b, "{\"id\": %ld, \"podname\": ", id);
	bk_buf_add_json_str(b, app->podname, strlen(app->podname));
	bk_buf_adds(b, ", \"clustername\": ");
	bk_buf_add_json_str(b, app->clustername, strlen(app->clustername));
	bk_buf_adds(b, ", \"reviews\": [");
	for (int i = 0; i < 2; i++) {
		bk_buf_addf(b, "%s{\"reviewer\": \"Reviewer%d\", \"text\": \"%s\"", i ? ", " : "",
			    i + 1, review_text[i]);
		if (app->ratings_enabled && stars[i] >= 0)
			bk_buf_addf(b, ", \"rating\": {\"stars\": %d, \"color\": \"%s\"}", stars[i],
				    app->star_color);
		else if (app->ratings_enabled)
			bk_buf_adds(b, ", \"rating\": {\"error\": \"Ratings service is currently "
				       "unavailable\"}");
		bk_buf_adds(b, "}");
	}
	bk_buf_adds(b, "]}");
}
