/* SPIFFE IDs (SPIFFE-ID §2) and the identity module's error helpers.
 * Strict on purpose: the character rules exist so that two parties can
 * never disagree on whether two IDs are equal, so nothing is normalised
 * (no case folding, no percent-decoding, no dot-segment removal). */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "sinew/identity.h"
#include "tls_internal.h"

#define SCHEME "spiffe://"
#define SCHEME_LEN 9

static const char *const err_names[] = {
	[SN_ID_OK] = "ok",
	[SN_ID_E_BAD_SPIFFE_ID] = "bad_spiffe_id",
	[SN_ID_E_URI_SAN_COUNT] = "uri_san_count",
	[SN_ID_E_TRUST_DOMAIN] = "trust_domain",
	[SN_ID_E_ID_NOT_ALLOWED] = "id_not_allowed",
	[SN_ID_E_LEAF_CA] = "leaf_ca",
	[SN_ID_E_LEAF_KEY_USAGE] = "leaf_key_usage",
	[SN_ID_E_LEAF_EXTENSIONS] = "leaf_extensions",
	[SN_ID_E_EXPIRED] = "expired",
	[SN_ID_E_NOT_YET_VALID] = "not_yet_valid",
	[SN_ID_E_UNTRUSTED] = "untrusted",
	[SN_ID_E_CHAIN] = "chain",
	[SN_ID_E_MALFORMED] = "malformed",
	[SN_ID_E_CSR_KEY] = "csr_key",
	[SN_ID_E_CSR_SIGNATURE] = "csr_signature",
	[SN_ID_E_CA] = "ca",
	[SN_ID_E_TOKEN_MALFORMED] = "token_malformed",
	[SN_ID_E_TOKEN_MAC] = "token_mac",
	[SN_ID_E_TOKEN_EXPIRED] = "token_expired",
	[SN_ID_E_NOMEM] = "nomem",
	[SN_ID_E_CRYPTO] = "crypto",
};

const char *sn_id_err_str(enum sn_id_err code)
{
	if ((unsigned)code >= SN_ARRAY_LEN(err_names) || err_names[code] == NULL)
		return "?";
	return err_names[code];
}

int sn_id_fail(struct sn_id_error *err, int rc, enum sn_id_err code, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL)
		return rc;
	err->code = code;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
	return rc;
}

void sn_id_ok(struct sn_id_error *err)
{
	if (err != NULL) {
		err->code = SN_ID_OK;
		err->msg[0] = '\0';
	}
}

int sn_spiffe_td_char(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_';
}

int sn_spiffe_path_char(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '-' || c == '_';
}

/* A character for a message: 'x' if printable, else \xNN. */
static void char_repr(int c, char out[8])
{
	if (c > 0x20 && c < 0x7f && c != '\'')
		snprintf(out, 8, "'%c'", c);
	else
		snprintf(out, 8, "\\x%02x", (unsigned)c & 0xff);
}

/* The reason c is not allowed, naming the URI part it would start. */
static int bad_char(struct sn_id_error *err, const char *where, int c, size_t pos)
{
	char r[8];

	switch (c) {
	case '?':
		return sn_id_fail(err, SN_EINVAL, SN_ID_E_BAD_SPIFFE_ID,
				  "SPIFFE ID has a query; it may not");
	case '#':
		return sn_id_fail(err, SN_EINVAL, SN_ID_E_BAD_SPIFFE_ID,
				  "SPIFFE ID has a fragment; it may not");
	case '%':
		return sn_id_fail(err, SN_EINVAL, SN_ID_E_BAD_SPIFFE_ID,
				  "SPIFFE ID has percent-encoding at byte %zu; it may not", pos);
	}
	char_repr(c, r);
	return sn_id_fail(err, SN_EINVAL, SN_ID_E_BAD_SPIFFE_ID,
			  "SPIFFE ID has %s at byte %zu: %s allows only %s", r, pos, where,
			  where[0] == 't' ? "[a-z0-9.-_]" : "[A-Za-z0-9.-_]");
}

static int check_td(const char *s, size_t len, struct sn_id_error *err, size_t base)
{
	if (len == 0)
		return sn_id_fail(err, SN_EINVAL, SN_ID_E_BAD_SPIFFE_ID, "SPIFFE ID has an empty trust domain");
	if (len > SN_TRUST_DOMAIN_MAX)
		return sn_id_fail(err, SN_EINVAL, SN_ID_E_BAD_SPIFFE_ID,
				  "trust domain is %zu bytes; at most %d are allowed", len, SN_TRUST_DOMAIN_MAX);
	for (size_t i = 0; i < len; i++) {
		int c = (unsigned char)s[i];
		if (sn_spiffe_td_char(c))
			continue;
		if (c == '@')
			return sn_id_fail(err, SN_EINVAL, SN_ID_E_BAD_SPIFFE_ID,
					  "SPIFFE ID has userinfo ('@' in the trust domain); it may not");
		if (c == ':')
			return sn_id_fail(err, SN_EINVAL, SN_ID_E_BAD_SPIFFE_ID,
					  "SPIFFE ID has a port (':' in the trust domain); it may not");
		if (c >= 'A' && c <= 'Z')
			return sn_id_fail(err, SN_EINVAL, SN_ID_E_BAD_SPIFFE_ID,
					  "trust domain has upper-case '%c' at byte %zu; it must be lower-case",
					  c, base + i);
		return bad_char(err, "the trust domain", c, base + i);
	}
	return 0;
}

int sn_trust_domain_check(const char *td, struct sn_id_error *err)
{
	if (td == NULL)
		return sn_id_fail(err, SN_EINVAL, SN_ID_E_BAD_SPIFFE_ID, "no trust domain given");
	return check_td(td, strnlen(td, SN_TRUST_DOMAIN_MAX + 1), err, 0);
}

static int check_path(const char *s, size_t len, struct sn_id_error *err, size_t base)
{
	size_t i = 0;

	/* s[0] is '/' when len > 0; each round reads one "/segment". */
	while (i < len) {
		size_t start = ++i;
		while (i < len && s[i] != '/') {
			int c = (unsigned char)s[i];
			if (!sn_spiffe_path_char(c))
				return bad_char(err, "a path segment", c, base + i);
			i++;
		}
		size_t n = i - start;
		if (n == 0)
			return sn_id_fail(err, SN_EINVAL, SN_ID_E_BAD_SPIFFE_ID,
					  "SPIFFE ID path has an empty segment at byte %zu (\"//\" or a trailing '/')",
					  base + start);
		if ((n == 1 && s[start] == '.') || (n == 2 && s[start] == '.' && s[start + 1] == '.'))
			return sn_id_fail(err, SN_EINVAL, SN_ID_E_BAD_SPIFFE_ID,
					  "SPIFFE ID path has a dot segment (\"%.*s\") at byte %zu",
					  (int)n, s + start, base + start);
	}
	return 0;
}

int sn_spiffe_id_parse(const char *s, size_t len, struct sn_spiffe_id *out, struct sn_id_error *err)
{
	size_t td_end;

	if (len == 0)
		return sn_id_fail(err, SN_EINVAL, SN_ID_E_BAD_SPIFFE_ID, "SPIFFE ID is empty");
	if (len > SN_SPIFFE_ID_MAX)
		return sn_id_fail(err, SN_EINVAL, SN_ID_E_BAD_SPIFFE_ID,
				  "SPIFFE ID is %zu bytes; at most %d are allowed", len, SN_SPIFFE_ID_MAX);
	if (len < SCHEME_LEN || memcmp(s, SCHEME, SCHEME_LEN) != 0) {
		if (len >= SCHEME_LEN && strncasecmp(s, SCHEME, SCHEME_LEN) == 0)
			return sn_id_fail(err, SN_EINVAL, SN_ID_E_BAD_SPIFFE_ID,
					  "SPIFFE ID scheme must be lower-case \"spiffe\"");
		/* Name another scheme ("https://…") if there is one; only
		 * letters reach the message. */
		size_t n = 0;
		while (n < len && n < 32 && ((s[n] >= 'a' && s[n] <= 'z') || (s[n] >= 'A' && s[n] <= 'Z')))
			n++;
		if (n > 0 && len - n >= 3 && memcmp(s + n, "://", 3) == 0)
			return sn_id_fail(err, SN_EINVAL, SN_ID_E_BAD_SPIFFE_ID,
					  "SPIFFE ID scheme is \"%.*s\"; it must be \"spiffe\"", (int)n, s);
		return sn_id_fail(err, SN_EINVAL, SN_ID_E_BAD_SPIFFE_ID,
				  "not a SPIFFE ID: it must start with \"spiffe://\"");
	}
	td_end = SCHEME_LEN;
	while (td_end < len && s[td_end] != '/')
		td_end++;
	if (check_td(s + SCHEME_LEN, td_end - SCHEME_LEN, err, SCHEME_LEN) != 0)
		return SN_EINVAL;
	if (check_path(s + td_end, len - td_end, err, td_end) != 0)
		return SN_EINVAL;
	if (out != NULL) {
		memcpy(out->uri, s, len);
		out->uri[len] = '\0';
		out->len = len;
		out->td_len = td_end - SCHEME_LEN;
		out->path_off = td_end;
	}
	sn_id_ok(err);
	return 0;
}

static int check_segment(const char *what, const char *seg, struct sn_id_error *err)
{
	size_t n;

	if (seg == NULL || seg[0] == '\0')
		return sn_id_fail(err, SN_EINVAL, SN_ID_E_BAD_SPIFFE_ID, "%s is empty", what);
	n = strnlen(seg, SN_SPIFFE_ID_MAX + 1);
	if (n > SN_SPIFFE_ID_MAX)
		return sn_id_fail(err, SN_EINVAL, SN_ID_E_BAD_SPIFFE_ID, "%s is too long", what);
	if (strcmp(seg, ".") == 0 || strcmp(seg, "..") == 0)
		return sn_id_fail(err, SN_EINVAL, SN_ID_E_BAD_SPIFFE_ID, "%s may not be \"%s\"", what, seg);
	for (size_t i = 0; i < n; i++) {
		if (!sn_spiffe_path_char((unsigned char)seg[i])) {
			char r[8];
			char_repr((unsigned char)seg[i], r);
			return sn_id_fail(err, SN_EINVAL, SN_ID_E_BAD_SPIFFE_ID,
					  "%s has %s at byte %zu; only [A-Za-z0-9.-_] are allowed", what, r, i);
		}
	}
	return 0;
}

int sn_spiffe_id_from_workload(const char *td, const char *ns, const char *sa,
			       struct sn_spiffe_id *out, struct sn_id_error *err)
{
	char buf[SN_SPIFFE_ID_MAX + 2];
	int n;

	if (sn_trust_domain_check(td, err) != 0 || check_segment("namespace", ns, err) != 0 ||
	    check_segment("service account", sa, err) != 0)
		return SN_EINVAL;
	n = snprintf(buf, sizeof(buf), SCHEME "%s/ns/%s/sa/%s", td, ns, sa);
	if (n < 0 || (size_t)n > SN_SPIFFE_ID_MAX)
		return sn_id_fail(err, SN_EINVAL, SN_ID_E_BAD_SPIFFE_ID,
				  "SPIFFE ID would exceed %d bytes", SN_SPIFFE_ID_MAX);
	return sn_spiffe_id_parse(buf, (size_t)n, out, err);
}

struct sn_str sn_spiffe_id_trust_domain(const struct sn_spiffe_id *id)
{
	return sn_str_make(id->uri + SCHEME_LEN, id->td_len);
}

struct sn_str sn_spiffe_id_path(const struct sn_spiffe_id *id)
{
	return sn_str_make(id->uri + id->path_off, id->len - id->path_off);
}

int sn_spiffe_id_workload(const struct sn_spiffe_id *id, struct sn_str *ns, struct sn_str *sa)
{
	struct sn_str p = sn_spiffe_id_path(id);
	const char *seg[4];
	size_t seglen[4];
	size_t k = 0, i = 0;

	/* The parser guarantees "/seg" repeated with non-empty segments. */
	while (i < p.len) {
		size_t start = ++i;
		while (i < p.len && p.p[i] != '/')
			i++;
		if (k == 4)
			return SN_ENOTFOUND;
		seg[k] = p.p + start;
		seglen[k] = i - start;
		k++;
	}
	if (k != 4 || seglen[0] != 2 || memcmp(seg[0], "ns", 2) != 0 || seglen[2] != 2 ||
	    memcmp(seg[2], "sa", 2) != 0)
		return SN_ENOTFOUND;
	*ns = sn_str_make(seg[1], seglen[1]);
	*sa = sn_str_make(seg[3], seglen[3]);
	return 0;
}
