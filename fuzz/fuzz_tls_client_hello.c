/* Fuzzes sn_client_hello_sni (what a gateway reads from a TLS client
 * before routing its passthrough connection) and checks, beyond not
 * crashing:
 * - the result is 1, 0, SN_EAGAIN or SN_EINVAL;
 * - a name is NUL-terminated, 1 to 253 bytes, lower case host characters;
 * - the answer depends on the first record only: more bytes after it
 *   change nothing, and a shorter prefix of a decided input is never
 *   another decision (only SN_EAGAIN or the same). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sinew/client_hello.h"
#include "sinew/common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char name[256], again[256];
	if (size > SN_CLIENT_HELLO_MAX + 64)
		size = SN_CLIENT_HELLO_MAX + 64;
	int r = sn_client_hello_sni(data, size, name, sizeof(name));
	CHECK(r == 1 || r == 0 || r == SN_EAGAIN || r == SN_EINVAL);
	if (r == 1) {
		size_t n = strlen(name);
		CHECK(n >= 1 && n <= 253);
		for (size_t i = 0; i < n; i++)
			CHECK((name[i] >= 'a' && name[i] <= 'z') || (name[i] >= '0' && name[i] <= '9') ||
				   name[i] == '-' || name[i] == '.' || name[i] == '_');
	}
	if (r == 1 || r == 0) {
		/* decided by the first record: its end is 5 + its length */
		size_t rec = 5 + ((size_t)data[3] << 8 | data[4]);
		CHECK(rec <= size);
		int r2 = sn_client_hello_sni(data, rec, again, sizeof(again));
		CHECK(r2 == r);
		if (r == 1)
			CHECK(strcmp(name, again) == 0);
		/* a prefix: not yet, or (when it is refused early) never 0/1 */
		size_t half = rec / 2;
		int r3 = sn_client_hello_sni(data, half, again, sizeof(again));
		CHECK(r3 == SN_EAGAIN);
	}
	return 0;
}
