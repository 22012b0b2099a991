/* sinewd's CA (src/control/ca.c): files and modes on first start, the same
 * root on reopen, a half-created CA, the trust-domain guard, token TTLs,
 * single use across reopen, spent-nonce expiry and compaction (a line cut
 * by a crash), renewal proofs. Included so static helpers are reachable. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "../src/control/ca.c"

#define NOW ((time_t)1800000000)

static void make_tmp(char *dir, size_t size)
{
	snprintf(dir, size, "/tmp/sinew-ca-XXXXXX");
	assert_non_null(mkdtemp(dir));
}

static void rm_rf(const char *dir)
{
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
}

static struct sn_ca_service *open_ca(const char *dir, const char *td, time_t now)
{
	struct sn_ca_service_opts o = { .data_dir = dir, .trust_domain = td, .no_sync = 1, .now = now };
	struct sn_ca_service *s = NULL;
	char err[1024] = "";
	int rc = sn_ca_service_open(&o, &s, err, sizeof(err));
	if (rc != 0)
		fail_msg("sn_ca_service_open: %d %s", rc, err);
	return s;
}

static int open_fails(const char *dir, const char *td, char *err, size_t size)
{
	struct sn_ca_service_opts o = { .data_dir = dir, .trust_domain = td, .no_sync = 1, .now = NOW };
	struct sn_ca_service *s = NULL;
	int rc = sn_ca_service_open(&o, &s, err, size);
	assert_null(s);
	return rc;
}

static mode_t mode_of(const char *dir, const char *name)
{
	char p[600];
	struct stat sb;
	snprintf(p, sizeof(p), "%s/ca/%s", dir, name);
	assert_int_equal(stat(p, &sb), 0);
	return sb.st_mode & 0777;
}

static char *new_csr(EVP_PKEY **key)
{
	char *pem;
	size_t len;
	assert_int_equal(sn_workload_key_generate(key), 0);
	assert_int_equal(sn_workload_csr_pem(*key, NULL, &pem, &len), 0);
	return pem;
}

static char *mint(struct sn_ca_service *s, const char *sa, uint32_t ttl, time_t now)
{
	struct sn_ca_refusal why;
	char nonce[33], *tok = NULL;
	time_t exp;
	int rc = sn_ca_service_mint(s, "default", sa, ttl, now, &tok, nonce, &exp, &why);
	if (rc != 0)
		fail_msg("mint: %s", why.msg);
	if (now != 0)
		assert_int_equal(exp, now + ttl);
	else
		assert_true(exp >= time(NULL) + ttl - 2 && exp <= time(NULL) + ttl);
	assert_int_equal(strlen(nonce), 32);
	return tok;
}

static int issue(struct sn_ca_service *s, const char *tok, const char *csr, time_t now, struct sn_ca_refusal *why)
{
	struct sn_ca_issued is;
	int rc = sn_ca_service_issue(s, tok, strlen(tok), csr, strlen(csr), now, &is, NULL, why);
	if (rc == 0) {
		assert_non_null(strstr(is.certificate, "BEGIN CERTIFICATE"));
		sn_ca_issued_free(&is);
	}
	return rc;
}

static void test_parse_ttl(void **state)
{
	uint32_t v;
	assert_int_equal(sn_ca_parse_ttl("1h", &v), 0);
	assert_int_equal(v, 3600);
	assert_int_equal(sn_ca_parse_ttl("1h30m", &v), 0);
	assert_int_equal(v, 5400);
	assert_int_equal(sn_ca_parse_ttl("90s", &v), 0);
	assert_int_equal(v, 90);
	assert_int_equal(sn_ca_parse_ttl("600", &v), 0);
	assert_int_equal(v, 600);
	assert_int_equal(sn_ca_parse_ttl("24h", &v), 0);
	assert_int_equal(v, 86400);
	const char *bad[] = { "", "0s", "24h1s", "25h", "1d", "h", "1h 2m", "-1s", "10x", "1h5", "99999999999s", NULL };
	for (size_t i = 0; bad[i] != NULL; i++)
		if (sn_ca_parse_ttl(bad[i], &v) == 0)
			fail_msg("ttl \"%s\" accepted as %u", bad[i], v);
}

static void test_create_then_reload_same_root(void **state)
{
	char dir[64], fp1[65], fp2[65];
	make_tmp(dir, sizeof(dir));
	struct sn_ca_service *s = open_ca(dir, NULL, 0);
	assert_string_equal(sn_ca_service_trust_domain(s), "cluster.local");
	assert_string_equal(sn_ca_service_chain_pem(s), "");
	sn_ca_service_root_sha256_hex(s, fp1);
	assert_int_equal(mode_of(dir, "key.pem"), 0600);
	assert_int_equal(mode_of(dir, "token.key"), 0600);
	assert_int_equal(mode_of(dir, "used-nonces"), 0600);
	assert_int_equal(mode_of(dir, ""), 0700);
	char *tok = mint(s, "reviews", 3600, 0);
	sn_ca_service_free(s);

	s = open_ca(dir, NULL, 0);
	sn_ca_service_root_sha256_hex(s, fp2);
	assert_string_equal(fp1, fp2);
	EVP_PKEY *k;
	char *csr = new_csr(&k);
	struct sn_ca_refusal why;
	/* the secret survived too: a token minted before verifies */
	assert_int_equal(issue(s, tok, csr, 0, &why), 0);
	sn_ca_service_free(s);
	free(tok);
	free(csr);
	EVP_PKEY_free(k);
	rm_rf(dir);
}

static void test_half_created_and_missing_key(void **state)
{
	char dir[64], p[600], err[1024], fp1[65], fp2[65];
	make_tmp(dir, sizeof(dir));
	struct sn_ca_service *s = open_ca(dir, NULL, 0);
	sn_ca_service_root_sha256_hex(s, fp1);
	sn_ca_service_free(s);

	/* root.pem without key.pem: refuse (a new root would orphan every leaf) */
	snprintf(p, sizeof(p), "%s/ca/key.pem", dir);
	assert_int_equal(unlink(p), 0);
	assert_int_not_equal(open_fails(dir, NULL, err, sizeof(err)), 0);
	assert_non_null(strstr(err, "missing"));

	/* no root.pem (a crash before it was written): a new CA */
	snprintf(p, sizeof(p), "%s/ca/root.pem", dir);
	assert_int_equal(unlink(p), 0);
	s = open_ca(dir, NULL, 0);
	sn_ca_service_root_sha256_hex(s, fp2);
	assert_string_not_equal(fp1, fp2);
	sn_ca_service_free(s);
	rm_rf(dir);
}

static void test_trust_domain_guard(void **state)
{
	char dir[64], err[1024];
	make_tmp(dir, sizeof(dir));
	struct sn_ca_service *s = open_ca(dir, "example.org", 0);
	assert_string_equal(sn_ca_service_trust_domain(s), "example.org");
	sn_ca_service_free(s);
	assert_int_equal(open_fails(dir, NULL, err, sizeof(err)), SN_EINVAL);
	assert_non_null(strstr(err, "serves trust domain example.org"));
	assert_int_equal(open_fails(dir, "Bad_TD:1", err, sizeof(err)), SN_EINVAL);
	assert_non_null(strstr(err, "--trust-domain"));
	rm_rf(dir);
}

static void test_single_use_expiry_and_compaction(void **state)
{
	char dir[64], p[600];
	struct sn_ca_refusal why;
	EVP_PKEY *k;
	make_tmp(dir, sizeof(dir));
	time_t now = time(NULL);
	struct sn_ca_service *s = open_ca(dir, NULL, 0);
	char *csr = new_csr(&k);

	char *t1 = mint(s, "reviews", 60, now);
	assert_int_equal(issue(s, t1, csr, now, &why), 0);
	assert_int_equal(issue(s, t1, csr, now, &why), SN_EINVAL);
	assert_int_equal(why.status, 401);
	assert_non_null(strstr(why.msg, "already used"));
	assert_null(strstr(why.msg, t1));
	/* expired: refused as expired, not as used */
	assert_int_equal(issue(s, t1, csr, now + 61, &why), SN_EINVAL);
	assert_non_null(strstr(why.msg, "expired"));

	/* a bad CSR does not spend the token */
	char *t2 = mint(s, "ratings", 600, now);
	assert_int_equal(issue(s, t2, "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
			       now, &why), SN_EINVAL);
	assert_int_equal(why.status, 400);
	assert_int_equal(issue(s, t2, csr, now, &why), 0);
	assert_int_equal(sn_ca_service_spent_count(s), 2);
	sn_ca_service_free(s);

	/* reopen: both still spent; a line cut short by a crash is dropped */
	snprintf(p, sizeof(p), "%s/ca/used-nonces", dir);
	FILE *f = fopen(p, "a");
	assert_non_null(f);
	fputs("0123456789abcdef0123", f);
	fclose(f);
	s = open_ca(dir, NULL, now);
	assert_int_equal(sn_ca_service_spent_count(s), 2);
	assert_int_equal(issue(s, t1, csr, now, &why), SN_EINVAL);
	assert_non_null(strstr(why.msg, "already used"));
	assert_int_equal(issue(s, t2, csr, now, &why), SN_EINVAL);
	assert_non_null(strstr(why.msg, "already used"));
	sn_ca_service_free(s);

	/* past t1's expiry + grace, its nonce is forgotten; t2's kept */
	s = open_ca(dir, NULL, now + 60 + SN_CA_SPENT_GRACE + 1);
	assert_int_equal(sn_ca_service_spent_count(s), 1);
	/* many spends over time: expired nonces leave memory, and the file is
	 * compacted, never more than 2n + 64 lines */
	time_t base = now + 60 + SN_CA_SPENT_GRACE + 1;
	for (int i = 0; i < 300; i++) {
		time_t t = base + i * 10;
		char *tk = mint(s, "bulk", 1, t);
		assert_int_equal(issue(s, tk, csr, t, &why), 0);
		free(tk);
	}
	size_t n = sn_ca_service_spent_count(s);
	assert_true(n <= 33);
	assert_true(s->file_lines <= 2 * n + 64);
	f = fopen(p, "r");
	assert_non_null(f);
	size_t lines = 0;
	for (int ch; (ch = fgetc(f)) != EOF;)
		lines += ch == '\n';
	fclose(f);
	assert_int_equal(lines, s->file_lines);
	sn_ca_service_free(s);
	s = open_ca(dir, NULL, base + 3000 + 2 * SN_CA_SPENT_GRACE);
	assert_int_equal(sn_ca_service_spent_count(s), 0);
	sn_ca_service_free(s);
	free(t1);
	free(t2);
	free(csr);
	EVP_PKEY_free(k);
	rm_rf(dir);
}

static void test_refusals_name_the_reason(void **state)
{
	char dir[64], dir2[64];
	struct sn_ca_refusal why;
	EVP_PKEY *k;
	make_tmp(dir, sizeof(dir));
	make_tmp(dir2, sizeof(dir2));
	struct sn_ca_service *s = open_ca(dir, NULL, 0), *other = open_ca(dir2, NULL, 0);
	char *csr = new_csr(&k);
	char *foreign = mint(other, "reviews", 600, 0);
	assert_int_equal(issue(s, foreign, csr, 0, &why), SN_EINVAL);
	assert_int_equal(why.status, 401);
	assert_non_null(strstr(why.msg, "bad token signature"));
	/* the same secret under another root: the pin */
	memcpy(other->secret, s->secret, sizeof(s->secret));
	char *pinned = mint(other, "reviews", 600, 0);
	assert_int_equal(issue(s, pinned, csr, 0, &why), SN_EINVAL);
	assert_non_null(strstr(why.msg, "not this CA's current root"));
	struct sn_ca_refusal w2;
	char *t = NULL, nonce[33];
	time_t exp;
	assert_int_equal(sn_ca_service_mint(s, "default", "a/b", 60, 0, &t, nonce, &exp, &w2), SN_EINVAL);
	assert_int_equal(w2.status, 400);
	assert_null(t);
	assert_int_equal(sn_ca_service_mint(s, "default", "a", SN_CA_TOKEN_TTL_MAX + 1, 0, &t, nonce, &exp, &w2),
			 SN_EINVAL);
	sn_ca_service_free(s);
	sn_ca_service_free(other);
	free(foreign);
	free(pinned);
	free(csr);
	EVP_PKEY_free(k);
	rm_rf(dir);
	rm_rf(dir2);
}

/* base64 of key's signature over the renewal message for csr_pem. */
static char *renew_sig(EVP_PKEY *key, const char *csr_pem, const char *context)
{
	unsigned char *der = NULL, sig[128];
	long dl;
	X509_REQ *req;
	struct sn_ca_refusal why;
	size_t sl = sizeof(sig);
	assert_int_equal(read_csr(csr_pem, strlen(csr_pem), &der, &dl, &req, &why), 0);
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	assert_int_equal(EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key), 1);
	assert_int_equal(EVP_DigestSignUpdate(md, context, strlen(context) + 1), 1);
	assert_int_equal(EVP_DigestSignUpdate(md, der, (size_t)dl), 1);
	assert_int_equal(EVP_DigestSignFinal(md, sig, &sl), 1);
	EVP_MD_CTX_free(md);
	X509_REQ_free(req);
	OPENSSL_free(der);
	char *b64 = malloc(4 * ((sl + 2) / 3) + 1);
	EVP_EncodeBlock((unsigned char *)b64, sig, (int)sl);
	return b64;
}

static void test_renewal(void **state)
{
	char dir[64];
	struct sn_ca_refusal why;
	struct sn_ca_issued is, is2;
	EVP_PKEY *k1, *k2;
	make_tmp(dir, sizeof(dir));
	struct sn_ca_service *s = open_ca(dir, NULL, 0);
	char *csr1 = new_csr(&k1), *csr2 = new_csr(&k2);
	char *tok = mint(s, "reviews", 600, 0);
	assert_int_equal(sn_ca_service_issue(s, tok, strlen(tok), csr1, strlen(csr1), 0, &is, NULL, &why), 0);

	char *sig = renew_sig(k1, csr2, SN_CA_RENEW_CONTEXT);
	assert_int_equal(sn_ca_service_renew(s, is.certificate, strlen(is.certificate), csr2, strlen(csr2), sig,
					     strlen(sig), is.spiffe_id, 0, &is2, &why), 0);
	assert_string_equal(is2.spiffe_id, "spiffe://cluster.local/ns/default/sa/reviews");
	sn_ca_issued_free(&is2);

	/* wrong key, wrong context, other identity, expired leaf */
	char *bad = renew_sig(k2, csr2, SN_CA_RENEW_CONTEXT);
	assert_int_equal(sn_ca_service_renew(s, is.certificate, strlen(is.certificate), csr2, strlen(csr2), bad,
					     strlen(bad), NULL, 0, &is2, &why), SN_EINVAL);
	assert_int_equal(why.status, 401);
	assert_non_null(strstr(why.msg, "does not verify"));
	free(bad);
	bad = renew_sig(k1, csr2, "TLS 1.3, client CertificateVerify");
	assert_int_equal(sn_ca_service_renew(s, is.certificate, strlen(is.certificate), csr2, strlen(csr2), bad,
					     strlen(bad), NULL, 0, &is2, &why), SN_EINVAL);
	free(bad);
	assert_int_equal(sn_ca_service_renew(s, is.certificate, strlen(is.certificate), csr2, strlen(csr2), sig,
					     strlen(sig), "spiffe://cluster.local/ns/default/sa/ratings", 0, &is2, &why),
			 SN_EINVAL);
	assert_non_null(strstr(why.msg, "renews only its own identity"));
	assert_int_equal(sn_ca_service_renew(s, is.certificate, strlen(is.certificate), csr2, strlen(csr2), sig,
					     strlen(sig), NULL, time(NULL) + 2 * 86400, &is2, &why), SN_EINVAL);
	assert_non_null(strstr(why.msg, "expired"));
	assert_int_equal(sn_ca_service_renew(s, "junk", 4, csr2, strlen(csr2), sig, strlen(sig), NULL, 0, &is2, &why),
			 SN_EINVAL);
	assert_int_equal(why.status, 401);

	sn_ca_issued_free(&is);
	free(sig);
	free(tok);
	free(csr1);
	free(csr2);
	EVP_PKEY_free(k1);
	EVP_PKEY_free(k2);
	sn_ca_service_free(s);
	rm_rf(dir);
}

static struct sn_ca_service *open_ca_inter(const char *dir, int intermediate)
{
	struct sn_ca_service_opts o = { .data_dir = dir, .no_sync = 1, .now = NOW, .intermediate = intermediate };
	struct sn_ca_service *s = NULL;
	char err[1024] = "";
	if (sn_ca_service_open(&o, &s, err, sizeof(err)) != 0)
		fail_msg("sn_ca_service_open: %s", err);
	return s;
}

static void sign_one(struct sn_ca_service *s)
{
	EVP_PKEY *k = NULL;
	char *csr = NULL;
	size_t csr_len = 0;
	struct sn_ca_issued is;
	struct sn_ca_refusal why;
	assert_int_equal(sn_workload_key_generate(&k), 0);
	assert_int_equal(sn_workload_csr_pem(k, NULL, &csr, &csr_len), 0);
	assert_int_equal(sn_ca_service_issue_for(s, "default", "reviews", csr, csr_len, NOW, &is, &why), 0);
	/* the leaf chains to the issuing root */
	char *chain = NULL;
	assert_int_equal(asprintf(&chain, "%s%s", is.certificate, sn_ca_service_chain_pem(s)) > 0, 1);
	struct sn_svid_verify_opts vo = { .bundle = s->bundle, .now = NOW };
	struct sn_id_error e;
	assert_int_equal(sn_svid_verify_pem(&vo, chain, strlen(chain), NULL, &e), 0);
	free(chain);
	sn_ca_issued_free(&is);
	free(csr);
	EVP_PKEY_free(k);
}

/* Root rotation: begin, a stop in the middle of the switch's renames (key
 * and issuer moved, root not yet), recovery at the next open; with and
 * without an intermediate. */
static void test_rotation_crash_recovery(void **state)
{
	(void)state;
	for (int inter = 0; inter <= 1; inter++) {
		char dir[64], path[700], to[700];
		make_tmp(dir, sizeof(dir));
		struct sn_ca_service *s = open_ca_inter(dir, inter);
		uint8_t old_root[32], new_root[32];
		memcpy(old_root, s->root_sha256, 32);
		char err[512] = "";
		assert_int_equal(sn_ca_service_rotate_begin(s, NOW, err, sizeof(err)), 0);
		assert_int_equal(sn_ca_service_phase(s), SN_CA_DISTRIBUTING);
		assert_int_equal(sn_trust_bundle_count(s->bundle), 2);
		assert_int_equal(sn_cert_sha256(sn_ca_root(s->next), new_root), 0);
		sign_one(s);   /* the old issuer still signs */
		assert_int_equal(sn_ca_service_rotate_begin(s, NOW, err, sizeof(err)), SN_ELIMIT);
		/* the switch, cut short: previous.pem written, key and issuer moved */
		snprintf(path, sizeof(path), "%s/ca/previous.pem", dir);
		FILE *f = fopen(path, "w");
		assert_non_null(f);
		fputs(sn_ca_service_root_pem(s), f);
		fclose(f);
		snprintf(path, sizeof(path), "%s/ca/next/key.pem", dir);
		snprintf(to, sizeof(to), "%s/ca/key.pem", dir);
		assert_int_equal(rename(path, to), 0);
		snprintf(path, sizeof(path), "%s/ca/next/issuer.pem", dir);
		snprintf(to, sizeof(to), "%s/ca/issuer.pem", dir);
		assert_int_equal(rename(path, to), 0);
		sn_ca_service_free(s);

		s = open_ca_inter(dir, inter);
		assert_int_equal(sn_ca_service_phase(s), SN_CA_MIGRATING);
		assert_memory_equal(s->root_sha256, new_root, 32);
		assert_int_equal(sn_trust_bundle_count(s->bundle), 2);
		sign_one(s);   /* the new issuer signs */
		snprintf(path, sizeof(path), "%s/ca/next", dir);
		assert_int_not_equal(access(path, F_OK), 0);
		assert_int_equal(sn_ca_service_rotate_finish(s, err, sizeof(err)), 0);
		assert_int_equal(sn_ca_service_phase(s), SN_CA_STABLE);
		assert_int_equal(sn_trust_bundle_count(s->bundle), 1);
		sn_ca_service_free(s);
		s = open_ca_inter(dir, inter);
		assert_int_equal(sn_ca_service_phase(s), SN_CA_STABLE);
		assert_memory_equal(s->root_sha256, new_root, 32);
		assert_memory_not_equal(s->root_sha256, old_root, 32);
		/* and a clean switch persists too */
		assert_int_equal(sn_ca_service_rotate_begin(s, NOW, err, sizeof(err)), 0);
		assert_int_equal(sn_ca_service_rotate_switch(s, err, sizeof(err)), 0);
		sn_ca_service_free(s);
		s = open_ca_inter(dir, inter);
		assert_int_equal(sn_ca_service_phase(s), SN_CA_MIGRATING);
		sign_one(s);
		sn_ca_service_free(s);
		rm_rf(dir);
	}
}

static void test_b64_decode(void **state)
{
	unsigned char out[16];
	assert_int_equal(b64_decode("aGk=", 4, out, sizeof(out)), 2);
	assert_memory_equal(out, "hi", 2);
	assert_int_equal(b64_decode("aGk", 3, out, sizeof(out)), 2);
	assert_int_equal(b64_decode("aGVsbG8h", 8, out, sizeof(out)), 6);
	assert_int_equal(b64_decode("a", 1, out, sizeof(out)), -1);
	assert_int_equal(b64_decode("a===", 4, out, sizeof(out)), -1);
	assert_int_equal(b64_decode("!!!!", 4, out, sizeof(out)), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_ttl),
		cmocka_unit_test(test_create_then_reload_same_root),
		cmocka_unit_test(test_half_created_and_missing_key),
		cmocka_unit_test(test_trust_domain_guard),
		cmocka_unit_test(test_single_use_expiry_and_compaction),
		cmocka_unit_test(test_refusals_name_the_reason),
		cmocka_unit_test(test_renewal),
		cmocka_unit_test(test_b64_decode),
		cmocka_unit_test(test_rotation_crash_recovery),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
