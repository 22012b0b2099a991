/* Fuzzes RequestAuthentication's token check (src/proxy/filter_jwt.c):
 * the input is the token as a client sends it (header.payload.signature,
 * base64url JSON and a signature), checked against a JWKS with an RSA,
 * an EC P-256 and an Ed25519 key of issuer https://fuzz.test. A valid
 * token must name that issuer and give a principal "iss/sub"; an invalid
 * one must say why; neither may crash, leak or read out of bounds. The
 * seed corpus has tokens those keys signed (RS256, PS384, ES256, EdDSA,
 * RS512 without kid), an expired one, alg none, and junk. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/proxy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#include "fuzz_check.h"

static const char jwks[] = "{\"keys\": [{\"kty\": \"RSA\", \"kid\": \"r1\", \"n\": \"yC-G4TEugBQHcCsXqTR9HwdC1j_xOeGbfwVFzx9aN4kN-67jvEnXn0jvwS5NgpP4bVGYvybM3rp1kw54IkSaW8XsQrLHmCSlgVTdoIy8HvpZgeT5fcSpXFnvJcQoVqnpTf0mvSFyT_7TlQ-SGmxuZYErhTqsd9-WFtITV-vRVB9mXkmB-qIN36MbptyvWJK_uOvrNSl3i4H6TXMoiWL2Ia62ryP6nHAlDnE-bomYzqLWgS-L5MFZyFNloQ3wiOmfSYWcjeaWL8k2jGhoCfE64LmpIS9pxY7qJKcM7TXhidKCFraaV1KV2HGmpKurexhKi3MV8tGGi-FhY54_pcL9cQ\", \"e\": \"AQAB\"}, {\"kty\": \"EC\", \"kid\": \"e1\", \"crv\": \"P-256\", \"x\": \"9RhMX4tZuMCvjtWmGmId8lV-PWw9Og5JmovFp9Em9gk\", \"y\": \"-hB6RDcCmf3hMSNuWotyel4zYi2TiClRwYmzUMX0bRc\"}, {\"kty\": \"OKP\", \"kid\": \"d1\", \"crv\": \"Ed25519\", \"x\": \"YWT85dncqABg6mnwf3veLTfBldefIsVWMpGZDbiesUY\"}]}";

static struct sn_snapshot *snap(void)
{
	static struct sn_snapshot *s;
	if (s != NULL)
		return s;
	char text[4096];
	snprintf(text, sizeof(text),
		 "apiVersion: security.istio.io/v1\nkind: RequestAuthentication\nmetadata: {name: f}\nspec:\n"
		 "  jwtRules:\n  - issuer: https://fuzz.test\n    jwks: '%s'\n"
		 "  - issuer: https://remote.test\n    jwksUri: https://remote.test/k\n", jwks);
	static const struct sn_proxy_identity id = { .service = "f", .namespace_ = "default" };
	struct sn_config_set set;
	struct sn_diags d;
	sn_config_set_init(&set);
	sn_diags_init(&d);
	if (sn_config_load_text(&set, "f.yaml", text, strlen(text), &d) != 0 ||
	    sn_config_translate(&set, &id, &d, &s) != 0 || s->n_jwt_rules != 2)
		abort();
	sn_diags_free(&d);
	sn_config_set_free(&set);
	return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct sn_worker w;   /* the key cache is all the check uses of it */
	struct sn_str principal;
	const char *why = sn_jwt_check_token(&w, snap(), sn_str_make((const char *)data, size), &principal);
	if (why == NULL) {
		CHECK(principal.len > strlen("https://fuzz.test/") &&
			   !memcmp(principal.p, "https://fuzz.test/", strlen("https://fuzz.test/")));
	} else {
		CHECK(why[0] != '\0');
	}
	return 0;
}
