/* Fuzzes sn_spiffe_id_parse and checks its invariants, not only that it
 * does not crash:
 * - it accepts exactly the strings the SPIFFE-ID rules allow, checked
 *   here by an independent, simpler restatement of those rules;
 * - an accepted ID is copied whole and NUL-terminated, its views lie
 *   inside it, and it parses again to the same thing;
 * - /ns/X/sa/Y paths round-trip through sn_spiffe_id_from_workload;
 * - a refusal has the code BAD_SPIFFE_ID and a non-empty message.
 * The same bytes also go to the join token reader, sinewd's other
 * attacker-facing identity parser (claims, base64url): it must not crash,
 * and what it accepts must name a valid identity. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sinew/identity.h"
#include "sinew/join_token.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#include "fuzz_check.h"

static int td_ok(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_';
}

static int seg_ok(int c)
{
	return td_ok(c) || (c >= 'A' && c <= 'Z');
}

/* The rules, restated plainly. */
static int model_valid(const char *s, size_t n)
{
	size_t i = 9, td_start;

	if (n < 9 || n > 2048 || memcmp(s, "spiffe://", 9) != 0)
		return 0;
	td_start = i;
	while (i < n && s[i] != '/') {
		if (!td_ok((unsigned char)s[i]))
			return 0;
		i++;
	}
	if (i == td_start || i - td_start > 255)
		return 0;
	while (i < n) {
		size_t st = ++i;
		while (i < n && s[i] != '/') {
			if (!seg_ok((unsigned char)s[i]))
				return 0;
			i++;
		}
		if (i == st)
			return 0;
		if (i - st == 1 && s[st] == '.')
			return 0;
		if (i - st == 2 && s[st] == '.' && s[st + 1] == '.')
			return 0;
	}
	return 1;
}

static void check_id(const uint8_t *data, size_t size)
{
	struct sn_spiffe_id id, again;
	struct sn_id_error err;
	int rc = sn_spiffe_id_parse((const char *)data, size, &id, &err);

	CHECK((rc == 0) == model_valid((const char *)data, size));
	if (rc != 0) {
		CHECK(rc == SN_EINVAL && err.code == SN_ID_E_BAD_SPIFFE_ID);
		CHECK(err.msg[0] != '\0' && strnlen(err.msg, sizeof(err.msg)) < sizeof(err.msg));
		return;
	}
	CHECK(err.code == SN_ID_OK);
	CHECK(id.len == size && memcmp(id.uri, data, size) == 0 && id.uri[size] == '\0');
	CHECK(id.td_len > 0 && 9 + id.td_len == id.path_off && id.path_off <= id.len);
	CHECK(sn_spiffe_id_parse(id.uri, id.len, &again, NULL) == 0);
	CHECK(again.td_len == id.td_len && again.path_off == id.path_off);

	struct sn_str ns, sa;
	if (sn_spiffe_id_workload(&id, &ns, &sa) == 0) {
		char td[256], nsb[2048], sab[2048];
		struct sn_str t = sn_spiffe_id_trust_domain(&id);
		CHECK(t.len < sizeof(td) && ns.len < sizeof(nsb) && sa.len < sizeof(sab));
		memcpy(td, t.p, t.len);
		td[t.len] = '\0';
		memcpy(nsb, ns.p, ns.len);
		nsb[ns.len] = '\0';
		memcpy(sab, sa.p, sa.len);
		sab[sa.len] = '\0';
		CHECK(sn_spiffe_id_from_workload(td, nsb, sab, &again, NULL) == 0);
		CHECK(again.len == id.len && memcmp(again.uri, id.uri, id.len) == 0);
	}
}

static void check_token(const uint8_t *data, size_t size)
{
	static const uint8_t secret[32] = "fuzz-secret-fuzz-secret-fuzz-sec";
	struct sn_join_token t;
	struct sn_id_error err;
	struct sn_spiffe_id id;

	if (sn_join_token_parse((const char *)data, size, &t, &err) == 0) {
		CHECK(t.expires_at > 0);
		CHECK(sn_spiffe_id_from_workload(t.trust_domain, t.ns, t.sa, &id, NULL) == 0);
	} else {
		CHECK(err.msg[0] != '\0');
	}
	/* Cannot forge the MAC: only refusals, never a crash. */
	CHECK(sn_join_token_verify((const char *)data, size, secret, sizeof(secret), 1, &t, &err) != 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check_id(data, size);
	check_token(data, size);
	return 0;
}
