/* Small helpers for src/tls/: clocks and times, memory BIOs, base64url. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/asn1.h>
#include <openssl/bio.h>

#include "tls_internal.h"

time_t sn_id_now(time_t now)
{
	return now != 0 ? now : time(NULL);
}

void sn_time_str(time_t t, char *out, size_t cap)
{
	struct tm tm;

	if (gmtime_r(&t, &tm) == NULL || strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(out, cap, "?");
}

int sn_asn1_time_to_time(const ASN1_TIME *t, time_t *out)
{
	struct tm tm;

	memset(&tm, 0, sizeof(tm));
	if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1)
		return SN_EINVAL;
	*out = timegm(&tm);
	return 0;
}

void sn_asn1_time_str(const ASN1_TIME *t, char *out, size_t cap)
{
	time_t tt;

	if (sn_asn1_time_to_time(t, &tt) != 0)
		snprintf(out, cap, "?");
	else
		sn_time_str(tt, out, cap);
}

int sn_bio_to_str(BIO *bio, char **out, size_t *len)
{
	char *data;
	long n = BIO_get_mem_data(bio, &data);
	char *s;

	if (n < 0)
		return SN_ENOMEM;
	s = malloc((size_t)n + 1);
	if (s == NULL)
		return SN_ENOMEM;
	memcpy(s, data, (size_t)n);
	s[n] = '\0';
	*out = s;
	if (len != NULL)
		*len = (size_t)n;
	return 0;
}

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

size_t sn_b64url_encode(const uint8_t *in, size_t n, char *out)
{
	size_t o = 0, i = 0;

	for (; i + 3 <= n; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
		out[o++] = b64url[v >> 18];
		out[o++] = b64url[(v >> 12) & 63];
		out[o++] = b64url[(v >> 6) & 63];
		out[o++] = b64url[v & 63];
	}
	if (n - i == 1) {
		uint32_t v = (uint32_t)in[i] << 16;
		out[o++] = b64url[v >> 18];
		out[o++] = b64url[(v >> 12) & 63];
	} else if (n - i == 2) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
		out[o++] = b64url[v >> 18];
		out[o++] = b64url[(v >> 12) & 63];
		out[o++] = b64url[(v >> 6) & 63];
	}
	out[o] = '\0';
	return o;
}

static int b64url_val(int c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '-')
		return 62;
	if (c == '_')
		return 63;
	return -1;
}

/* Canonical only: no padding, and the unused low bits of the last
 * character must be zero, so each byte string has one encoding (a token
 * cannot be altered in its text while keeping its meaning). */
long sn_b64url_decode(const char *in, size_t n, uint8_t *out, size_t cap)
{
	size_t o = 0, i = 0;
	uint32_t acc = 0;
	int bits = 0;

	if (n % 4 == 1)
		return -1;
	if ((n / 4) * 3 + (n % 4 ? n % 4 - 1 : 0) > cap)
		return -1;
	for (; i < n; i++) {
		int v = b64url_val((unsigned char)in[i]);
		if (v < 0)
			return -1;
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (uint8_t)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	if (acc != 0)
		return -1;
	return (long)o;
}

void sn_hex(const uint8_t *b, size_t n, char *out)
{
	static const char d[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = d[b[i] >> 4];
		out[2 * i + 1] = d[b[i] & 15];
	}
	out[2 * n] = '\0';
}
