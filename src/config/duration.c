/* Durations as Istio writes them: protobuf JSON ("1.5s") and Go style
 * ("100ms", "2m", "1h30m"). */
#include <stdint.h>
#include <string.h>

#include "sinew/config.h"

#define DURATION_MAX_MS (720ull * 3600 * 1000) /* 30 days: beyond that it's a typo */

int sn_parse_duration_ms(const char *s, uint32_t *ms_out)
{
	if (s == NULL || *s == '\0' || strlen(s) > 64)
		return SN_EINVAL;
	if (strcmp(s, "0") == 0) {
		*ms_out = 0;
		return 0;
	}
	/* Accumulate in nanoseconds; every term is bounded before adding. */
	uint64_t total_ns = 0;
	const char *p = s;
	while (*p) {
		uint64_t whole = 0, frac = 0, frac_div = 1;
		int digits = 0;
		while (*p >= '0' && *p <= '9') {
			if (whole > 1000000000ull)
				return SN_EINVAL;
			whole = whole * 10 + (uint64_t)(*p - '0');
			p++;
			digits++;
		}
		if (*p == '.') {
			p++;
			while (*p >= '0' && *p <= '9') {
				if (frac_div < 1000000000ull) {
					frac = frac * 10 + (uint64_t)(*p - '0');
					frac_div *= 10;
				}
				p++;
				digits++;
			}
		}
		if (digits == 0)
			return SN_EINVAL;
		uint64_t unit_ns;
		if (!strncmp(p, "ns", 2)) {
			unit_ns = 1;
			p += 2;
		} else if (!strncmp(p, "us", 2)) {
			unit_ns = 1000;
			p += 2;
		} else if (!strncmp(p, "\xc2\xb5s", 3)) {
			unit_ns = 1000;
			p += 3;
		} else if (!strncmp(p, "ms", 2)) {
			unit_ns = 1000000;
			p += 2;
		} else if (*p == 's') {
			unit_ns = 1000000000ull;
			p++;
		} else if (*p == 'm') {
			unit_ns = 60ull * 1000000000ull;
			p++;
		} else if (*p == 'h') {
			unit_ns = 3600ull * 1000000000ull;
			p++;
		} else {
			return SN_EINVAL;
		}
		if (whole > DURATION_MAX_MS * 1000000ull / unit_ns)
			return SN_EINVAL;
		/* frac < 1e9 and unit_ns / 1000 <= 3.6e9: no overflow */
		uint64_t frac_ns = unit_ns >= 1000 ? frac * (unit_ns / 1000) / frac_div * 1000
						   : frac * unit_ns / frac_div;
		total_ns += whole * unit_ns + frac_ns;
		if (total_ns > DURATION_MAX_MS * 1000000ull)
			return SN_EINVAL;
	}
	/* round up so "500us" is not silently "no timeout" */
	*ms_out = (uint32_t)((total_ns + 999999) / 1000000);
	return 0;
}
