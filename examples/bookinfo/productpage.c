/* productpage: the front end. GET /productpage renders the book with its
 * details (from details) and reviews (from reviews); /api/v1/products…
 * serve the same data as JSON (swagger.yaml). Istio's behaviour is kept
 * where the traffic-management tasks depend on it:
 *   - a signed-in user (POST /login, cookie "user") is sent on as the
 *     `end-user` header, which the task files match on;
 *   - details gets one try with a 3 s timeout; reviews gets two tries of
 *     3 s each (productpage.py's deliberate "bug" that makes the 7 s
 *     ratings delay end in "Sorry, product reviews are currently
 *     unavailable for this book." after about 6 s);
 *   - trace, session and user-agent headers are forwarded. */

#include <libfyaml.h>
#include <stdio.h>
#include <string.h>

#include "bookinfo.h"

#define CALL_TIMEOUT_MS 3000
#define REVIEWS_TRIES 2

static const char *const product_title = "The Comedy of Errors";
static const char *const product_description =
	"<a href=\"https://en.wikipedia.org/wiki/The_Comedy_of_Errors\">Wikipedia Summary</a>: "
	"The Comedy of Errors is one of <b>William Shakespeare's</b> early plays. It is his "
	"shortest and one of his most farcical comedies, with a major part of the humour coming "
	"from slapstick and mistaken identity, in addition to puns and word play.";

static const char *const details_error =
	"Sorry, product details are currently unavailable for this book.";
static const char *const reviews_error =
	"Sorry, product reviews are currently unavailable for this book.";
static const char *const ratings_error =
	"Sorry, product ratings are currently unavailable for this book.";

/* The signed-in user: the "user" cookie, else an incoming end-user
 * header. Returns the length (0: nobody). */
static size_t current_user(const struct bk_request *req, char *out, size_t cap)
{
	struct sn_str cookie = bk_request_header(req, "cookie");
	long n = cookie.p ? bk_cookie_value(cookie, "user", out, cap) : -1;
	if (n > 0 && bk_user_valid(out, (size_t)n))
		return (size_t)n;
	struct sn_str eu = bk_request_header(req, "end-user");
	if (eu.p && eu.len < cap && bk_user_valid(eu.p, eu.len)) {
		memcpy(out, eu.p, eu.len);
		out[eu.len] = '\0';
		return eu.len;
	}
	out[0] = '\0';
	return 0;
}

/* The headers for calls to details, reviews and ratings. */
static size_t call_headers(const struct bk_request *req, const char *user, size_t ulen,
			   struct bk_header *out)
{
	size_t n = bk_forward_headers(req, out, 1);
	if (ulen > 0 && n < BK_MAX_FORWARD) {
		out[n].name = SN_STR_LIT("end-user");
		out[n].value = sn_str_make(user, ulen);
		n++;
	}
	return n;
}

/* GET svc/<what>/<id> with tries attempts; the result of the last. */
static void call(struct bk_app *app, const struct bk_request *req, const struct bk_service *svc,
		 const char *what, long id, int tries, const struct bk_header *hdrs, size_t nhdrs,
		 struct bk_fetch *f)
{
	char path[64];
	snprintf(path, sizeof(path), "/%s/%ld", what, id);
	for (int i = 0; i < tries; i++) {
		if (i > 0)
			bk_fetch_dispose(f);
		bk_http_get(app, req->conn, svc, path, hdrs, nhdrs, CALL_TIMEOUT_MS, f);
		if (f->status == 200)
			return;
		if (f->status)
			fprintf(stderr, "%s: %s %s:%s%s answered %d (try %d of %d)\n", app->name, what,
				svc->host, svc->port, path, f->status, i + 1, tries);
		else
			fprintf(stderr, "%s: %s %s:%s%s: %s (try %d of %d)\n", app->name, what,
				svc->host, svc->port, path, f->err, i + 1, tries);
	}
}

/* Parses a 200 answer's JSON; NULL (and the fetch marked failed) if it is
 * not a JSON object. */
static struct fy_document *parse_json(struct bk_fetch *f)
{
	if (f->status != 200)
		return NULL;
	struct fy_parse_cfg cfg = { .flags = FYPCF_QUIET | FYPCF_JSON_FORCE };
	struct fy_document *doc = fy_document_build_from_string(&cfg, f->body.p, f->body.len);
	struct fy_node *root = doc ? fy_document_root(doc) : NULL;
	if (root == NULL || !fy_node_is_mapping(root)) {
		if (doc)
			fy_document_destroy(doc);
		f->status = 500;
		return NULL;
	}
	return doc;
}

static struct sn_str scalar(struct fy_node *map, const char *key)
{
	struct fy_node *n = map ? fy_node_mapping_lookup_by_string(map, key, FY_NT) : NULL;
	size_t len = 0;
	const char *s = n && fy_node_is_scalar(n) ? fy_node_get_scalar(n, &len) : NULL;
	return s ? sn_str_make(s, len) : SN_STR_NULL;
}

static void page_head(struct bk_buf *b, const char *title)
{
	bk_buf_adds(b, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
		       "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1.0\">\n"
		       "<title>");
	bk_buf_add_html(b, title, strlen(title));
	bk_buf_adds(b, "</title>\n<style>\n"
		       "body{font-family:sans-serif;margin:0;color:#222}\n"
		       "nav{background:#222;color:#eee;padding:10px 20px;display:flex;"
		       "justify-content:space-between;align-items:center}\n"
		       "nav a{color:#9cf}\n"
		       ".row{display:flex;flex-wrap:wrap;padding:0 20px}\n"
		       ".col{flex:1 1 380px;padding:0 10px}\n"
		       "h3,h4{text-align:center;color:#337ab7}\n"
		       "blockquote{border-left:4px solid #ddd;margin:10px 0;padding:5px 15px}\n"
		       "blockquote small{display:block;color:#777}\n"
		       ".stars{font-size:1.3em}\n"
		       "dt{font-weight:bold}\n"
		       "</style>\n</head>\n<body>\n");
}

static void render_details(struct bk_buf *b, struct bk_fetch *f, struct fy_document *doc)
{
	static const char *const fields[][2] = {
		{ "Type", "type" },         { "Pages", "pages" },         { "Publisher", "publisher" },
		{ "Language", "language" }, { "ISBN-10", "ISBN-10" },     { "ISBN-13", "ISBN-13" },
	};
	bk_buf_adds(b, "<div class=\"col\" id=\"details\">\n");
	if (doc == NULL) {
		bk_buf_adds(b, "<h4>Error fetching product details!</h4>\n<p>");
		bk_buf_add_html(b, details_error, strlen(details_error));
		bk_buf_adds(b, "</p>\n</div>\n");
		return;
	}
	struct fy_node *root = fy_document_root(doc);
	bk_buf_adds(b, "<h4>Book Details</h4>\n<dl>\n");
	for (size_t i = 0; i < SN_ARRAY_LEN(fields); i++) {
		struct sn_str v = scalar(root, fields[i][1]);
		bk_buf_addf(b, "<dt>%s:</dt><dd>", fields[i][0]);
		if (v.p)
			bk_buf_add_html(b, v.p, v.len);
		bk_buf_adds(b, "</dd>\n");
	}
	bk_buf_adds(b, "</dl>\n</div>\n");
}

static void render_reviews(struct bk_buf *b, struct bk_fetch *f, struct fy_document *doc)
{
	bk_buf_adds(b, "<div class=\"col\" id=\"reviews\">\n");
	struct fy_node *list = doc ? fy_node_mapping_lookup_by_string(fy_document_root(doc),
								       "reviews", FY_NT)
				   : NULL;
	if (list == NULL || !fy_node_is_sequence(list)) {
		bk_buf_adds(b, "<h4>Error fetching product reviews!</h4>\n<p>");
		bk_buf_add_html(b, reviews_error, strlen(reviews_error));
		bk_buf_adds(b, "</p>\n</div>\n");
		return;
	}
	bk_buf_adds(b, "<h4>Book Reviews</h4>\n");
	void *it = NULL;
	struct fy_node *r;
	while ((r = fy_node_sequence_iterate(list, &it)) != NULL) {
		if (!fy_node_is_mapping(r))
			continue;
		struct sn_str text = scalar(r, "text"), who = scalar(r, "reviewer");
		bk_buf_adds(b, "<blockquote>\n<p>");
		if (text.p)
			bk_buf_add_html(b, text.p, text.len);
		bk_buf_adds(b, "</p>\n<small>");
		if (who.p)
			bk_buf_add_html(b, who.p, who.len);
		bk_buf_adds(b, "</small>\n");
		struct fy_node *rating = fy_node_mapping_lookup_by_string(r, "rating", FY_NT);
		if (rating && fy_node_is_mapping(rating)) {
			long stars = bk_parse_id(scalar(rating, "stars"));
			struct sn_str color = scalar(rating, "color");
			struct sn_str err = scalar(rating, "error");
			if (stars >= 1 && stars <= 5) {
				bk_buf_adds(b, "<font class=\"stars\" color=\"");
				if (color.p)
					bk_buf_add_html(b, color.p, color.len);
				bk_buf_adds(b, "\">");
				for (long i = 0; i < 5; i++)
					bk_buf_adds(b, i < stars ? "\u2605" : "\u2606");
				bk_buf_adds(b, "</font>\n");
			} else if (err.p) {
				bk_buf_adds(b, "<p><i>");
				bk_buf_add_html(b, err.p, err.len);
				bk_buf_adds(b, "</i></p>\n");
			}
		}
		bk_buf_adds(b, "</blockquote>\n");
	}
	bk_buf_adds(b, "</div>\n");
}

static void productpage(struct bk_app *app, const struct bk_request *req, struct bk_response *res)
{
	char user[128];
	struct bk_header hdrs[BK_MAX_FORWARD];
	struct bk_fetch details, reviews;
	size_t ulen = current_user(req, user, sizeof(user));
	size_t nhdrs = call_headers(req, user, ulen, hdrs);

	call(app, req, &app->details, "details", 0, 1, hdrs, nhdrs, &details);
	call(app, req, &app->reviews, "reviews", 0, REVIEWS_TRIES, hdrs, nhdrs, &reviews);
	struct fy_document *ddoc = parse_json(&details);
	struct fy_document *rdoc = parse_json(&reviews);

	struct bk_buf *b = &res->body;
	res->status = 200;
	res->content_type = "text/html; charset=utf-8";
	page_head(b, "Simple Bookstore App");
	bk_buf_adds(b, "<nav>\n<b>BookInfo Sample</b>\n");
	if (ulen > 0) {
		bk_buf_adds(b, "<span id=\"user\">");
		bk_buf_add_html(b, user, ulen);
		bk_buf_adds(b, " ( <a href=\"logout\">sign out</a> )</span>\n");
	} else {
		bk_buf_adds(b, "<form method=\"post\" action=\"login\" name=\"login_form\">"
			       "<input type=\"text\" name=\"username\" placeholder=\"User Name\"> "
			       "<input type=\"password\" name=\"passwd\" placeholder=\"Password\"> "
			       "<button type=\"submit\">Sign in</button></form>\n");
	}
	bk_buf_adds(b, "</nav>\n<div class=\"row\"><div class=\"col\">\n<h3>");
	bk_buf_add_html(b, product_title, strlen(product_title));
	bk_buf_addf(b, "</h3>\n<p>Summary: %s</p>\n</div></div>\n<div class=\"row\">\n",
		    product_description);
	render_details(b, &details, ddoc);
	render_reviews(b, &reviews, rdoc);
	bk_buf_adds(b, "</div>\n</body>\n</html>\n");

	if (ddoc)
		fy_document_destroy(ddoc);
	if (rdoc)
		fy_document_destroy(rdoc);
	bk_fetch_dispose(&details);
	bk_fetch_dispose(&reviews);
}

static void index_page(struct bk_app *app, struct bk_response *res)
{
	struct bk_buf *b = &res->body;
	res->status = 200;
	res->content_type = "text/html; charset=utf-8";
	page_head(b, "Simple Bookstore App");
	bk_buf_adds(b, "<nav><b>BookInfo Sample</b></nav>\n<div class=\"row\"><div class=\"col\">\n"
		       "<h3>Hello! This is a simple bookstore application consisting of three "
		       "services as shown below</h3>\n<table border=\"1\" cellpadding=\"4\">\n"
		       "<tr><th>service</th><th>calls</th></tr>\n");
	bk_buf_addf(b, "<tr><td>productpage</td><td>http://%s:%s/details, http://%s:%s/reviews"
		       "</td></tr>\n<tr><td>reviews</td><td>http://%s:%s/ratings</td></tr>\n"
		       "</table>\n",
		    app->details.host, app->details.port, app->reviews.host, app->reviews.port,
		    app->ratings.host, app->ratings.port);
	bk_buf_adds(b, "<p>Click on one of the links below to auto generate a request to the "
		       "backend as a real user or a tester</p>\n"
		       "<p><a href=\"productpage?u=normal\">Normal user</a></p>\n"
		       "<p><a href=\"productpage?u=test\">Test user</a></p>\n"
		       "</div></div>\n</body>\n</html>\n");
}

/* POST /login: the form's username becomes the "user" cookie. Back to the
 * page the form was on (the Referer's path), else productpage. */
static void redirect_back(const struct bk_request *req, struct bk_response *res)
{
	char loc[512] = "productpage";
	struct sn_str ref = bk_request_header(req, "referer");
	if (ref.p) {
		const char *p = ref.p, *end = ref.p + ref.len;
		const char *sch = memmem(p, ref.len, "://", 3);
		if (sch) {
			p = sch + 3;
			while (p < end && *p != '/')
				p++;
		}
		size_t n = (size_t)(end - p);
		/* A path of this site only: never "//host" (another site). */
		if (n > 0 && n < sizeof(loc) && p[0] == '/' && (n == 1 || p[1] != '/')) {
			memcpy(loc, p, n);
			loc[n] = '\0';
		}
	}
	res->status = 302;
	res->content_type = "text/html; charset=utf-8";
	bk_response_header(res, "Location", loc);
	bk_buf_adds(&res->body, "<a href=\"");
	bk_buf_add_html(&res->body, loc, strlen(loc));
	bk_buf_adds(&res->body, "\">Redirecting</a>\n");
}

static void login(const struct bk_request *req, struct bk_response *res)
{
	char user[128], enc[400], cookie[512];
	long n = bk_form_value(req->body, "username", user, sizeof(user));
	if (n < 0)
		n = bk_form_value(req->query, "username", user, sizeof(user));
	if (n < 0 || !bk_user_valid(user, (size_t)n) ||
	    bk_cookie_encode(user, enc, sizeof(enc)) < 0) {
		res->status = 400;
		res->content_type = "text/plain; charset=utf-8";
		bk_buf_adds(&res->body, "A user name is 1 to 64 printable ASCII characters.\n");
		return;
	}
	snprintf(cookie, sizeof(cookie), "user=%s; Path=/; HttpOnly; SameSite=Lax", enc);
	bk_response_header(res, "Set-Cookie", cookie);
	redirect_back(req, res);
}

static void logout(const struct bk_request *req, struct bk_response *res)
{
	bk_response_header(res, "Set-Cookie", "user=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax");
	redirect_back(req, res);
}

/* /api/v1/products/{id}[/reviews|/ratings]: the dependency's JSON as it
 * came, or Istio's error object with the dependency's status (500 when
 * there was no answer). */
static void api_product(struct bk_app *app, const struct bk_request *req, struct bk_response *res,
			long id, const char *what)
{
	char user[128];
	struct bk_header hdrs[BK_MAX_FORWARD];
	struct bk_fetch f;
	size_t ulen = current_user(req, user, sizeof(user));
	size_t nhdrs = call_headers(req, user, ulen, hdrs);
	const struct bk_service *svc = &app->details;
	const char *err = details_error;
	int tries = 1;
	if (strcmp(what, "reviews") == 0) {
		svc = &app->reviews;
		err = reviews_error;
		tries = REVIEWS_TRIES;
	} else if (strcmp(what, "ratings") == 0) {
		svc = &app->ratings;
		err = ratings_error;
	}
	call(app, req, svc, what, id, tries, hdrs, nhdrs, &f);
	struct fy_document *doc = parse_json(&f);
	res->content_type = "application/json";
	if (doc) {
		res->status = 200;
		bk_buf_add(&res->body, f.body.p, f.body.len);
		fy_document_destroy(doc);
	} else {
		res->status = f.status ? f.status : 500;
		bk_buf_adds(&res->body, "{\"error\": ");
		bk_buf_add_json_str(&res->body, err, strlen(err));
		bk_buf_adds(&res->body, "}");
	}
	bk_fetch_dispose(&f);
}

static void api_products(struct bk_response *res)
{
	struct bk_buf *b = &res->body;
	res->status = 200;
	res->content_type = "application/json";
	bk_buf_adds(b, "[{\"id\": 0, \"title\": ");
	bk_buf_add_json_str(b, product_title, strlen(product_title));
	bk_buf_adds(b, ", \"descriptionHtml\": ");
	bk_buf_add_json_str(b, product_description, strlen(product_description));
	bk_buf_adds(b, "}]");
}

static int starts_with(struct sn_str s, const char *prefix)
{
	size_t n = strlen(prefix);
	return s.len >= n && memcmp(s.p, prefix, n) == 0;
}

void bk_productpage_handle(struct bk_app *app, const struct bk_request *req,
			   struct bk_response *res)
{
	struct sn_str path = req->path;
	int get = sn_str_eq_cstr(req->h1.method, "GET") || sn_str_eq_cstr(req->h1.method, "HEAD");
	int post = sn_str_eq_cstr(req->h1.method, "POST");

	if (sn_str_eq_cstr(path, "/login")) {
		if (post) {
			login(req, res);
			return;
		}
		bk_response_header(res, "Allow", "POST");
		bk_json_reply(res, 405, "{\"error\": \"method not allowed\"}");
		return;
	}
	if (!get) {
		bk_response_header(res, "Allow", "GET, HEAD");
		bk_json_reply(res, 405, "{\"error\": \"method not allowed\"}");
		return;
	}
	if (sn_str_eq_cstr(path, "/") || sn_str_eq_cstr(path, "/index.html")) {
		index_page(app, res);
	} else if (sn_str_eq_cstr(path, "/health")) {
		res->status = 200;
		res->content_type = "text/plain; charset=utf-8";
		bk_buf_adds(&res->body, "Product page is healthy");
	} else if (sn_str_eq_cstr(path, "/logout")) {
		logout(req, res);
	} else if (sn_str_eq_cstr(path, "/productpage")) {
		productpage(app, req, res);
	} else if (sn_str_eq_cstr(path, "/api/v1/products")) {
		api_products(res);
	} else if (starts_with(path, "/api/v1/products/")) {
		struct sn_str rest = sn_str_make(path.p + 17, path.len - 17);
		const char *slash = memchr(rest.p, '/', rest.len);
		struct sn_str ids = slash ? sn_str_make(rest.p, (size_t)(slash - rest.p)) : rest;
		struct sn_str sub = slash ? sn_str_make(slash, (size_t)(rest.p + rest.len - slash))
					  : SN_STR_NULL;
		long id = bk_parse_id(ids);
		const char *what = NULL;
		if (sub.len == 0)
			what = "details";
		else if (sn_str_eq_cstr(sub, "/reviews"))
			what = "reviews";
		else if (sn_str_eq_cstr(sub, "/ratings"))
			what = "ratings";
		if (what == NULL)
			bk_json_reply(res, 404, "{\"error\": \"not found\"}");
		else if (id < 0)
			bk_json_reply(res, 400, "{\"error\": \"Invalid product id\"}");
		else
			api_product(app, req, res, id, what);
	} else {
		bk_json_reply(res, 404, "{\"error\": \"not found\"}");
	}
}
