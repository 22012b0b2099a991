/* Unit tests for sn_tls_ctx_describe (src/tls/info.c): what a ctx
 * serves — SPIFFE ID, chain (leaf and intermediate) with subject, issuer,
 * serial, validity, SHA-256 and PEM, and the trust bundle's roots —
 * compared with what OpenSSL reads from the same certificates; a swap
 * (sn_tls_ctx_update) seen whole by a reader racing with it; a client
 * ctx without a certificate; and that no private key ever shows. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <cmocka.h>

#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "sinew/identity.h"
#include "sinew/tls_stream.h"

#define TD "cluster.local"
#define REVIEWS "spiffe://cluster.local/ns/default/sa/reviews"
#define RATINGS "spiffe://cluster.local/ns/default/sa/ratings"

struct ident {
	EVP_PKEY *key;
	char *chain;       /* leaf, then the intermediate if the CA has one */
	X509 *leaf;
};

static struct sn_ca *ca_int, *ca_plain;      /* with and without an intermediate */
static struct sn_trust_bundle *bundle_int, *bundle_both;
static struct ident id_reviews, id_ratings;  /* reviews from ca_int, ratings from ca_plain */

static void issue(struct sn_ca *ca, const char *sa, uint32_t ttl, struct ident *out)
{
	struct sn_svid_params p = { .ns = "default", .sa = sa, .ttl = ttl };
	struct sn_id_error err;
	char *csr = NULL;
	size_t len = 0;

	assert_int_equal(sn_workload_key_generate(&out->key), 0);
	assert_int_equal(sn_workload_csr_pem(out->key, NULL, &csr, &len), 0);
	if (sn_ca_sign_csr(ca, csr, len, &p, &out->chain, &len, &err) != 0)
		fail_msg("sign: %s", err.msg);
	free(csr);
	BIO *b = BIO_new_mem_buf(out->chain, -1);
	out->leaf = PEM_read_bio_X509(b, NULL, NULL, NULL);
	BIO_free(b);
	assert_non_null(out->leaf);
}

static void ident_free(struct ident *i)
{
	EVP_PKEY_free(i->key);
	free(i->chain);
	X509_free(i->leaf);
	memset(i, 0, sizeof(*i));
}

static struct sn_tls_ctx *ctx_for(enum sn_tls_role role, const struct ident *i,
				  const struct sn_trust_bundle *b)
{
	struct sn_tls_ctx_opts o = { .role = role, .require_client_cert = 1 };
	struct sn_tls_identity t = { .bundle = b };
	struct sn_tls_ctx *ctx = NULL;
	struct sn_id_error err;

	if (i != NULL) {
		t.key = i->key;
		t.chain_pem = i->chain;
		t.chain_len = strlen(i->chain);
	}
	if (sn_tls_ctx_new(&o, &t, &ctx, &err) != 0)
		fail_msg("ctx: %s", err.msg);
	return ctx;
}

static void update(struct sn_tls_ctx *ctx, const struct ident *i, const struct sn_trust_bundle *b)
{
	struct sn_tls_identity t = { .key = i->key, .chain_pem = i->chain, .chain_len = strlen(i->chain),
				     .bundle = b };
	struct sn_id_error err;

	if (sn_tls_ctx_update(ctx, &t, &err) != 0)
		fail_msg("update: %s", err.msg);
}

/* ---- what OpenSSL says about a certificate, to compare with ---- */

static void sha_hex(X509 *c, char out[65])
{
	uint8_t d[32];

	assert_int_equal(sn_cert_sha256(c, d), 0);
	for (int i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", d[i]);
}

static void serial_hex(X509 *c, char *out, size_t cap)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *p;

	assert_true(i2a_ASN1_INTEGER(b, X509_get0_serialNumber(c)) > 0);
	long n = BIO_get_mem_data(b, &p);
	snprintf(out, cap, "%.*s", (int)n, p);
	BIO_free(b);
}

static int64_t unix_of(const ASN1_TIME *t)
{
	struct tm tm;

	memset(&tm, 0, sizeof(tm));
	assert_int_equal(ASN1_TIME_to_tm(t, &tm), 1);
	return (int64_t)timegm(&tm);
}

static void name_of(const X509_NAME *n, char *out, size_t cap)
{
	char *s = X509_NAME_oneline(n, NULL, 0);
	snprintf(out, cap, "%s", s);
	OPENSSL_free(s);
}

static void assert_cert(const struct sn_tls_cert_info *ci, X509 *c, enum sn_tls_cert_kind kind)
{
	char want[SN_TLS_INFO_NAME_MAX];

	assert_int_equal(ci->kind, kind);
	name_of(X509_get_subject_name(c), want, sizeof(want));
	assert_string_equal(ci->subject, want);
	name_of(X509_get_issuer_name(c), want, sizeof(want));
	assert_string_equal(ci->issuer, want);
	serial_hex(c, want, sizeof(want));
	assert_string_equal(ci->serial, want);
	sha_hex(c, want);
	assert_string_equal(ci->sha256, want);
	assert_int_equal(ci->not_before, unix_of(X509_get0_notBefore(c)));
	assert_int_equal(ci->not_after, unix_of(X509_get0_notAfter(c)));
}

/* No private key anywhere in the description (every byte of it). */
static void assert_no_key(const struct sn_tls_ctx_info *in)
{
	assert_null(memmem(in, sizeof(*in), "PRIVATE KEY", 11));
}

/* ---- tests ---- */

static void test_server_with_intermediate(void **state)
{
	struct sn_tls_ctx *ctx = ctx_for(SN_TLS_SERVER, &id_reviews, bundle_int);
	struct sn_tls_ctx_info *in = malloc(sizeof(*in));

	assert_non_null(in);
	assert_int_equal(sn_tls_ctx_describe(ctx, SN_TLS_INFO_PEM, in), 0);
	assert_int_equal(in->generation, 0);
	assert_int_equal(in->has_cert, 1);
	assert_string_equal(in->spiffe_id, REVIEWS);
	assert_string_equal(in->trust_domain, TD);

	/* leaf, then the intermediate; the root is not sent */
	assert_int_equal(in->n_chain, 2);
	assert_int_equal(in->chain_total, 2);
	assert_cert(&in->chain[0], id_reviews.leaf, SN_TLS_CERT_LEAF);
	assert_cert(&in->chain[1], sn_ca_issuer(ca_int), SN_TLS_CERT_INTERMEDIATE);
	assert_string_equal(in->chain[0].subject, "");   /* an SVID's subject is empty */
	assert_string_equal(in->chain[0].issuer, in->chain[1].subject);
	assert_int_equal(in->chain[0].not_after - in->chain[0].not_before, SN_SVID_DEFAULT_TTL + SN_SVID_BACKDATE);

	/* the PEM is the chain sinewd issued, byte for byte, and splits per certificate */
	assert_int_equal(in->chain_pem_len, strlen(id_reviews.chain));
	assert_string_equal(in->chain_pem, id_reviews.chain);
	assert_int_equal(in->chain[0].pem_off, 0);
	assert_int_equal(in->chain[1].pem_off, in->chain[0].pem_len);
	assert_int_equal(in->chain[0].pem_len + in->chain[1].pem_len, in->chain_pem_len);
	BIO *b = BIO_new_mem_buf(in->chain_pem + in->chain[1].pem_off, (int)in->chain[1].pem_len);
	X509 *x = PEM_read_bio_X509(b, NULL, NULL, NULL);
	BIO_free(b);
	assert_non_null(x);
	assert_int_equal(X509_cmp(x, sn_ca_issuer(ca_int)), 0);
	X509_free(x);

	/* the roots */
	assert_int_equal(in->n_roots, 1);
	assert_int_equal(in->roots_total, 1);
	assert_cert(&in->roots[0], sn_ca_root(ca_int), SN_TLS_CERT_ROOT);
	assert_string_equal(in->chain[1].issuer, in->roots[0].subject);
	assert_int_equal(in->roots[0].pem_len, 0);
	assert_no_key(in);

	/* without SN_TLS_INFO_PEM: the same, no PEM */
	assert_int_equal(sn_tls_ctx_describe(ctx, 0, in), 0);
	assert_int_equal(in->n_chain, 2);
	assert_int_equal(in->chain_pem_len, 0);
	assert_int_equal(in->chain[0].pem_len, 0);
	assert_string_equal(in->chain_pem, "");
	assert_string_equal(in->spiffe_id, REVIEWS);

	assert_string_equal(sn_tls_cert_kind_str(SN_TLS_CERT_LEAF), "leaf");
	assert_string_equal(sn_tls_cert_kind_str(SN_TLS_CERT_INTERMEDIATE), "intermediate");
	assert_string_equal(sn_tls_cert_kind_str(SN_TLS_CERT_ROOT), "root");
	free(in);
	sn_tls_ctx_free(ctx);
}

static void test_update_is_seen(void **state)
{
	struct sn_tls_ctx *ctx = ctx_for(SN_TLS_SERVER, &id_reviews, bundle_int);
	struct sn_tls_ctx_info *in = malloc(sizeof(*in));

	assert_non_null(in);
	/* rotation: the other CA's leaf, both roots trusted */
	update(ctx, &id_ratings, bundle_both);
	assert_int_equal(sn_tls_ctx_describe(ctx, SN_TLS_INFO_PEM, in), 0);
	assert_int_equal(in->generation, 1);
	assert_int_equal(in->generation, sn_tls_ctx_generation(ctx));
	assert_string_equal(in->spiffe_id, RATINGS);
	assert_int_equal(in->n_chain, 1);   /* ca_plain issues from its root */
	assert_cert(&in->chain[0], id_ratings.leaf, SN_TLS_CERT_LEAF);
	assert_string_equal(in->chain_pem, id_ratings.chain);
	assert_int_equal(in->n_roots, 2);
	char r1[65], r2[65];
	sha_hex(sn_ca_root(ca_int), r1);
	sha_hex(sn_ca_root(ca_plain), r2);
	int seen1 = 0, seen2 = 0;
	for (size_t i = 0; i < in->n_roots; i++) {
		seen1 |= !strcmp(in->roots[i].sha256, r1);
		seen2 |= !strcmp(in->roots[i].sha256, r2);
		assert_int_equal(in->roots[i].kind, SN_TLS_CERT_ROOT);
	}
	assert_true(seen1 && seen2);
	assert_no_key(in);
	free(in);
	sn_tls_ctx_free(ctx);
}

static void test_client_without_cert(void **state)
{
	struct sn_tls_ctx *ctx = ctx_for(SN_TLS_CLIENT, NULL, bundle_int);
	struct sn_tls_ctx_info *in = malloc(sizeof(*in));

	assert_non_null(in);
	assert_int_equal(sn_tls_ctx_describe(ctx, SN_TLS_INFO_PEM, in), 0);
	assert_int_equal(in->has_cert, 0);
	assert_string_equal(in->spiffe_id, "");
	assert_string_equal(in->trust_domain, TD);
	assert_int_equal(in->n_chain, 0);
	assert_int_equal(in->chain_pem_len, 0);
	assert_int_equal(in->n_roots, 1);
	assert_cert(&in->roots[0], sn_ca_root(ca_int), SN_TLS_CERT_ROOT);
	free(in);
	sn_tls_ctx_free(ctx);
}

/* More certificates than described: the first SN_TLS_INFO_CHAIN_MAX,
 * and the count of all. */
static void test_long_chain_is_cut(void **state)
{
	X509 *inter = sn_ca_issuer(ca_int);
	BIO *b = BIO_new(BIO_s_mem());
	char *pem;
	struct ident many = { .key = id_reviews.key };

	assert_non_null(b);
	BIO_write(b, id_reviews.chain, (int)strlen(id_reviews.chain));   /* leaf + intermediate */
	for (int i = 0; i < SN_TLS_INFO_CHAIN_MAX + 1; i++)
		assert_int_equal(PEM_write_bio_X509(b, inter), 1);
	long n = BIO_get_mem_data(b, &pem);
	many.chain = strndup(pem, (size_t)n);
	BIO_free(b);

	struct sn_tls_ctx *ctx = ctx_for(SN_TLS_SERVER, &many, bundle_int);
	struct sn_tls_ctx_info *in = malloc(sizeof(*in));
	assert_non_null(in);
	assert_int_equal(sn_tls_ctx_describe(ctx, SN_TLS_INFO_PEM, in), 0);
	assert_int_equal(in->n_chain, SN_TLS_INFO_CHAIN_MAX);
	assert_int_equal(in->chain_total, SN_TLS_INFO_CHAIN_MAX + 3);   /* leaf + 1 + 9 */
	assert_string_equal(in->spiffe_id, REVIEWS);
	for (size_t i = 1; i < in->n_chain; i++)
		assert_cert(&in->chain[i], inter, SN_TLS_CERT_INTERMEDIATE);
	assert_int_equal(in->chain[SN_TLS_INFO_CHAIN_MAX - 1].pem_off + in->chain[SN_TLS_INFO_CHAIN_MAX - 1].pem_len,
			 in->chain_pem_len);
	assert_int_equal(strncmp(in->chain_pem, many.chain, in->chain_pem_len), 0);
	free(in);
	free(many.chain);
	sn_tls_ctx_free(ctx);
}

/* A reader racing with swaps sees one generation whole: an even
 * generation is always reviews' chain and bundle, an odd one ratings'. */
struct race {
	struct sn_tls_ctx *ctx;
	int stop;
	int bad;
	unsigned reads;
	char sha_reviews[65], sha_ratings[65];
};

static void *reader(void *arg)
{
	struct race *r = arg;
	struct sn_tls_ctx_info *in = malloc(sizeof(*in));

	if (in == NULL)
		return NULL;
	while (!__atomic_load_n(&r->stop, __ATOMIC_ACQUIRE)) {
		if (sn_tls_ctx_describe(r->ctx, 0, in) != 0) {
			r->bad++;
			break;
		}
		int even = in->generation % 2 == 0;
		if (strcmp(in->chain[0].sha256, even ? r->sha_reviews : r->sha_ratings) != 0 ||
		    strcmp(in->spiffe_id, even ? REVIEWS : RATINGS) != 0 || in->n_chain != (even ? 2u : 1u) ||
		    in->n_roots != (even ? 1u : 2u))
			r->bad++;
		r->reads++;
	}
	free(in);
	return NULL;
}

static void test_describe_races_update(void **state)
{
	struct race r = { .ctx = ctx_for(SN_TLS_SERVER, &id_reviews, bundle_int) };
	pthread_t t;

	sha_hex(id_reviews.leaf, r.sha_reviews);
	sha_hex(id_ratings.leaf, r.sha_ratings);
	assert_int_equal(pthread_create(&t, NULL, reader, &r), 0);
	for (int i = 0; i < 100; i++) {
		if (i % 2 == 0)
			update(r.ctx, &id_ratings, bundle_both);
		else
			update(r.ctx, &id_reviews, bundle_int);
	}
	__atomic_store_n(&r.stop, 1, __ATOMIC_RELEASE);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(r.bad, 0);
	assert_true(r.reads > 0);
	assert_int_equal(sn_tls_ctx_generation(r.ctx), 100);
	sn_tls_ctx_free(r.ctx);
}

static int setup(void **state)
{
	struct sn_ca_params pi = { .trust_domain = TD, .intermediate = 1 };
	struct sn_ca_params pp = { .trust_domain = TD };
	struct sn_id_error err;

	if (sn_ca_create(&pi, &ca_int, &err) != 0 || sn_ca_create(&pp, &ca_plain, &err) != 0)
		fail_msg("ca: %s", err.msg);
	assert_int_equal(sn_trust_bundle_new(TD, &bundle_int), 0);
	assert_int_equal(sn_trust_bundle_add(bundle_int, sn_ca_root(ca_int)), 0);
	assert_int_equal(sn_trust_bundle_new(TD, &bundle_both), 0);
	assert_int_equal(sn_trust_bundle_add(bundle_both, sn_ca_root(ca_int)), 0);
	assert_int_equal(sn_trust_bundle_add(bundle_both, sn_ca_root(ca_plain)), 0);
	issue(ca_int, "reviews", 0, &id_reviews);
	issue(ca_plain, "ratings", 3600, &id_ratings);
	return 0;
}

static int teardown(void **state)
{
	ident_free(&id_reviews);
	ident_free(&id_ratings);
	sn_trust_bundle_free(bundle_int);
	sn_trust_bundle_free(bundle_both);
	sn_ca_free(ca_int);
	sn_ca_free(ca_plain);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_server_with_intermediate),
		cmocka_unit_test(test_update_is_seen),
		cmocka_unit_test(test_client_without_cert),
		cmocka_unit_test(test_long_chain_is_cut),
		cmocka_unit_test(test_describe_races_update),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
