/* The server name (SNI, RFC 6066 section 3) from a TLS ClientHello (RFC
 * 8446 section 4.1.2; TLS 1.2's has the same shape), read from bytes the
 * client sent: every length is checked against what holds it. */
#include "sinew/client_hello.h"
#include "sinew/common.h"

static size_t be16(const unsigned char *p)
{
	return (size_t)p[0] << 8 | p[1];
}

/* A host name: letters, digits, '-', '.', '_' (seen in the wild), no
 * empty label at the front; a trailing dot dropped. */
static int copy_host(const unsigned char *p, size_t n, char *out, size_t size)
{
	if (n > 0 && p[n - 1] == '.')
		n--;
	if (n == 0 || n > 253 || n >= size || p[0] == '.')
		return SN_EINVAL;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = p[i];
		if (c >= 'A' && c <= 'Z')
			c = (unsigned char)(c - 'A' + 'a');
		else if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_'))
			return SN_EINVAL;
		out[i] = (char)c;
	}
	out[n] = '\0';
	return 1;
}

/* server_name's extension_data: ServerNameList. */
static int server_name(const unsigned char *p, const unsigned char *end, char *out, size_t size)
{
	if (end - p < 2 || be16(p) != (size_t)(end - p - 2))
		return SN_EINVAL;
	p += 2;
	while (end - p >= 3) {
		unsigned type = p[0];
		size_t len = be16(p + 1);
		p += 3;
		if ((size_t)(end - p) < len)
			return SN_EINVAL;
		if (type == 0)   /* host_name */
			return copy_host(p, len, out, size);
		p += len;
	}
	return p == end ? 0 : SN_EINVAL;
}

int sn_client_hello_sni(const unsigned char *b, size_t n, char *out, size_t out_size)
{
	/* record: handshake (22), version 3.x, length */
	if ((n >= 1 && b[0] != 0x16) || (n >= 2 && b[1] != 0x03))
		return SN_EINVAL;
	if (n < 5)
		return SN_EAGAIN;
	size_t rlen = be16(b + 3);
	if (rlen < 4 || rlen > 16384)
		return SN_EINVAL;
	if (n >= 6 && b[5] != 0x01)   /* client_hello */
		return SN_EINVAL;
	if (n < 5 + rlen)
		return SN_EAGAIN;
	const unsigned char *p = b + 5;
	size_t hlen = (size_t)p[1] << 16 | (size_t)p[2] << 8 | p[3];
	if (hlen > rlen - 4)
		return SN_EINVAL;   /* continued in another record: not read */
	p += 4;
	const unsigned char *end = p + hlen;
	size_t l;
	if (end - p < 34)   /* legacy_version, random */
		return SN_EINVAL;
	p += 34;
	if (end - p < 1 || (l = p[0]) > 32 || (size_t)(end - p - 1) < l)   /* legacy_session_id */
		return SN_EINVAL;
	p += 1 + l;
	if (end - p < 2 || (l = be16(p)) < 2 || (l & 1) || (size_t)(end - p - 2) < l)   /* cipher_suites */
		return SN_EINVAL;
	p += 2 + l;
	if (end - p < 1 || (l = p[0]) < 1 || (size_t)(end - p - 1) < l)   /* legacy_compression_methods */
		return SN_EINVAL;
	p += 1 + l;
	if (p == end)
		return 0;   /* no extensions at all (an old client) */
	if (end - p < 2 || be16(p) != (size_t)(end - p - 2))
		return SN_EINVAL;
	p += 2;
	while (end - p >= 4) {
		unsigned type = (unsigned)be16(p);
		size_t len = be16(p + 2);
		p += 4;
		if ((size_t)(end - p) < len)
			return SN_EINVAL;
		if (type == 0)
			return server_name(p, p + len, out, out_size);
		p += len;
	}
	return p == end ? 0 : SN_EINVAL;
}
