/* The server name from a TLS ClientHello (src/tls/client_hello.c), on
 * hellos built here byte by byte: found, absent, wanting more bytes, and
 * refused when any length disagrees with what holds it. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "sinew/client_hello.h"
#include "sinew/common.h"

static size_t put16(unsigned char *p, size_t v)
{
	p[0] = (unsigned char)(v >> 8);
	p[1] = (unsigned char)v;
	return 2;
}

/* A ClientHello record; name NULL: no server_name extension. ext_pad
 * adds an unrelated extension before it. Returns its length. */
static size_t hello(unsigned char *b, const char *name, int ext_pad)
{
	unsigned char body[1024];
	size_t n = 0, e = 0;
	unsigned char ext[512];
	body[n++] = 3;
	body[n++] = 3;
	memset(body + n, 0x42, 32);   /* random */
	n += 32;
	body[n++] = 0;                /* session id */
	n += put16(body + n, 2);      /* one cipher suite */
	body[n++] = 0x13;
	body[n++] = 0x01;
	body[n++] = 1;                /* compression: null */
	body[n++] = 0;
	if (ext_pad) {
		e += put16(ext + e, 0x000a);   /* supported_groups */
		e += put16(ext + e, 4);
		e += put16(ext + e, 2);
		e += put16(ext + e, 0x001d);
	}
	if (name != NULL) {
		size_t nl = strlen(name);
		e += put16(ext + e, 0);        /* server_name */
		e += put16(ext + e, nl + 5);
		e += put16(ext + e, nl + 3);
		ext[e++] = 0;                  /* host_name */
		e += put16(ext + e, nl);
		memcpy(ext + e, name, nl);
		e += nl;
	}
	if (name != NULL || ext_pad) {
		n += put16(body + n, e);
		memcpy(body + n, ext, e);
		n += e;
	}
	b[0] = 0x16;
	b[1] = 3;
	b[2] = 1;
	put16(b + 3, n + 4);
	b[5] = 1;
	b[6] = (unsigned char)(n >> 16);
	b[7] = (unsigned char)(n >> 8);
	b[8] = (unsigned char)n;
	memcpy(b + 9, body, n);
	return n + 9;
}

static void test_names(void **state)
{
	(void)state;
	unsigned char b[2048];
	char out[256];
	size_t n = hello(b, "Book.Example.COM.", 1);
	assert_int_equal(sn_client_hello_sni(b, n, out, sizeof(out)), 1);
	assert_string_equal(out, "book.example.com");
	/* what follows the record changes nothing */
	memset(b + n, 0xee, 100);
	assert_int_equal(sn_client_hello_sni(b, n + 100, out, sizeof(out)), 1);
	n = hello(b, NULL, 1);
	assert_int_equal(sn_client_hello_sni(b, n, out, sizeof(out)), 0);
	n = hello(b, NULL, 0);   /* no extensions at all */
	assert_int_equal(sn_client_hello_sni(b, n, out, sizeof(out)), 0);
}

static void test_more_bytes_then_refusals(void **state)
{
	(void)state;
	unsigned char b[2048];
	char out[256];
	size_t n = hello(b, "a.example.com", 0);
	for (size_t k = 0; k < n; k++)
		assert_int_equal(sn_client_hello_sni(b, k, out, sizeof(out)), SN_EAGAIN);
	/* not TLS at all: at once */
	assert_int_equal(sn_client_hello_sni((const unsigned char *)"GET / HTTP/1.1\r\n", 16, out, sizeof(out)),
			 SN_EINVAL);
	unsigned char c[2048];
	memcpy(c, b, n);
	c[5] = 2;   /* a ServerHello */
	assert_int_equal(sn_client_hello_sni(c, 6, out, sizeof(out)), SN_EINVAL);
	memcpy(c, b, n);
	c[8] = (unsigned char)(c[8] + 1);   /* handshake longer than its record */
	assert_int_equal(sn_client_hello_sni(c, n, out, sizeof(out)), SN_EINVAL);
	memcpy(c, b, n);
	c[n - 1] = '/';   /* not a host name */
	assert_int_equal(sn_client_hello_sni(c, n, out, sizeof(out)), SN_EINVAL);
	/* a name longer than out */
	assert_int_equal(sn_client_hello_sni(b, n, out, 5), SN_EINVAL);
	/* a record over 16 KiB */
	memcpy(c, b, n);
	put16(c + 3, 16385);
	assert_int_equal(sn_client_hello_sni(c, 5, out, sizeof(out)), SN_EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_more_bytes_then_refusals),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
