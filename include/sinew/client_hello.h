#ifndef SINEW_CLIENT_HELLO_H
#define SINEW_CLIENT_HELLO_H

/* The server name a TLS client asks for (SNI), read from the first bytes
 * it sends, before any TLS is spoken back: what a gateway routes TLS it
 * passes through by (src/tls/client_hello.c). */

#include <stddef.h>

/* At most this many bytes are needed: one TLS record (16 KiB) and its head. */
#define SN_CLIENT_HELLO_MAX (16384 + 5)

/* Reads the ClientHello in the first record of b[0..n). Returns 1 with the
 * server name (a host name, lower case, no trailing dot, NUL-terminated)
 * in out; 0 for a whole ClientHello that names no server; SN_EAGAIN when
 * more bytes are needed; SN_EINVAL when the bytes are not a TLS
 * ClientHello, the hello spans several records, or the name is not a host
 * name (or does not fit out_size). */
int sn_client_hello_sni(const unsigned char *b, size_t n, char *out, size_t out_size);

#endif
