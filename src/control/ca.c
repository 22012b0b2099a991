/* sinewd's CA (docs/internals/identity.md, "sinewd's CA"): the root on
 * disk or the user's, the join-token secret, the spent-token record, and
 * issuance of X.509-SVIDs to a join token or, for renewal, to the holder of
 * a current SVID. Built on the identity library (sinew/identity.h).
 *
 * DATA_DIR/ca/ (0700):
 *   root.pem      the self-signed root; written last, so it marks a complete CA
 *   issuer.pem    intermediates between leaves and root, if any
 *   key.pem       the issuer's key (PKCS#8), 0600
 *   token.key     32 random bytes, the join-token HMAC secret, 0600
 *   trust-domain  the trust domain the generated root serves
 *   used-nonces   "<nonce hex> <exp>\n" per spent token, kept until exp + grace
 *   cross.pem     after a root switch: the current root certified by the
 *                 previous root's key, then the previous root; kept while a
 *                 join token minted before the switch can live
 *
 * Keys and tokens are never logged, nor put in a refusal; nonces are. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "sinew/control.h"
#include "sinew/file.h"
#include "sinew/identity.h"
#include "sinew/join_token.h"
#include "sinew/log.h"

#define CA_PATH_MAX 4096
#define CA_FILE_MAX (1u << 20)          /* bytes of a PEM file we read */
#define CA_SECRET_LEN 32
#define CA_MAX_CHAIN 8
#define CA_MAX_PREV 4

struct spent {
	uint8_t nonce[16];
	int64_t keep_until;                 /* token exp + grace */
};

struct sn_ca_service {
	char dir[CA_PATH_MAX];              /* DATA_DIR/ca */
	/* set: nonces are spent there (shared by replicas), not in used-nonces */
	int (*spend)(void *arg, const char *nonce_hex, time_t until, char *err, size_t err_size);
	void *spend_arg;
	struct sn_ca *ca;
	struct sn_trust_bundle *bundle;
	char *chain_pem;                    /* intermediates, "" without */
	char *bundle_pem;
	char *root_pem;                     /* the issuing CA's root */
	uint8_t root_sha256[32];
	uint8_t secret[CA_SECRET_LEN];
	int provided;                       /* the user's CA files */
	struct sn_ca_params params;         /* for a generated CA and its rotations */
	uint32_t leaf_ttl;
	/* Rotation (docs/internals/identity.md, "Root rotation"): */
	struct sn_ca *next;                 /* distributing: trusted, not issuing yet */
	X509 *prev[CA_MAX_PREV];            /* migrating: old roots still trusted */
	size_t n_prev;
	/* Tokens across a switch (docs/internals/identity.md): */
	X509 *cross;                        /* the current root, certified by cross_by's key */
	X509 *cross_by;                     /* the previous root */
	uint8_t cross_pin[32];              /* SHA-256 of cross_by: the pin of tokens minted before */
	char *cross_pem;                    /* cross then cross_by, PEM; "" without */
	X509 *cross_pending;                /* written at a switch, for the next root */
	uint64_t bundle_version;            /* bumped on every change of the bundle */
	uint64_t issuer_gen;                /* bumped when a new issuer takes over */
	char source[CA_PATH_MAX];           /* where the CA came from, for messages */
	struct spent *spent;
	size_t n_spent, cap_spent;
	size_t file_lines;                  /* lines in used-nonces (live or not) */
	int no_sync;
};

/* ---- small helpers ---------------------------------------------------- */

static void seterr(char *err, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void seterr(char *err, size_t size, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, size, fmt, ap);
	va_end(ap);
}

static int refuse(struct sn_ca_refusal *why, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int refuse(struct sn_ca_refusal *why, int status, const char *fmt, ...)
{
	va_list ap;
	why->status = status;
	va_start(ap, fmt);
	vsnprintf(why->msg, sizeof(why->msg), fmt, ap);
	va_end(ap);
	return status >= 500 ? SN_EIO : SN_EINVAL;
}

/* a + "/" + b into out, bounded (no snprintf: gcc -O2 warns on truncation). */
static int join_path(char *out, size_t size, const char *a, const char *b)
{
	size_t al = strlen(a), bl = strlen(b);
	if (al + 1 + bl + 1 > size) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(out, a, al);
	out[al] = '/';
	memcpy(out + al + 1, b, bl);
	out[al + 1 + bl] = '\0';
	return 0;
}

static int unhex(const char *s, size_t n, uint8_t *out)
{
	for (size_t i = 0; i < n; i++) {
		int v = 0;
		for (int k = 0; k < 2; k++) {
			char c = s[2 * i + (size_t)k];
			int h = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
			if (h < 0)
				return -1;
			v = v * 16 + h;
		}
		out[i] = (uint8_t)v;
	}
	return 0;
}

static void time_str(time_t t, char *out, size_t size)
{
	struct tm tm;
	if (gmtime_r(&t, &tm) == NULL || strftime(out, size, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(out, size, "?");
}

static time_t asn1_time(const ASN1_TIME *a)
{
	struct tm tm;
	if (a == NULL || ASN1_TIME_to_tm(a, &tm) != 1)
		return 0;
	return timegm(&tm);
}

static int fsync_dir(const char *dir, int no_sync)
{
	return no_sync ? 0 : sn_fsync_dir(dir);
}

/* Replaces dir/name with data, atomically and durably (sinew/file.h). */
static int write_atomic(const char *dir, const char *name, const void *data, size_t len, mode_t mode, int no_sync)
{
	struct iovec part = { (void *)data, len };
	return sn_write_atomic(dir, name, &part, 1, mode, no_sync);
}

/* Reads a whole file of at most max bytes, NUL-terminated. Returns 0,
 * SN_ENOTFOUND, SN_ELIMIT or SN_EIO (errno). *mode gets its permissions. */
static int read_file(const char *path, size_t max, char **out, size_t *len, mode_t *mode)
{
	struct stat sb;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? SN_ENOTFOUND : SN_EIO;
	if (fstat(fd, &sb) != 0) {
		close(fd);
		return SN_EIO;
	}
	if (sb.st_size < 0 || (size_t)sb.st_size > max) {
		close(fd);
		return SN_ELIMIT;
	}
	char *buf = malloc((size_t)sb.st_size + 1);
	size_t got = 0;
	if (buf == NULL) {
		close(fd);
		return SN_ENOMEM;
	}
	while (got < (size_t)sb.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)sb.st_size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	buf[got] = '\0';
	*out = buf;
	*len = got;
	if (mode != NULL)
		*mode = sb.st_mode & 07777;
	return 0;
}

/* Frees a secret buffer after wiping it. */
static void free_secret(char *p, size_t len)
{
	if (p != NULL)
		OPENSSL_cleanse(p, len);
	free(p);
}

static void warn_mode(const char *path, mode_t mode)
{
	if (mode & 077)
		sn_log(SN_LOG_WARN, "ca: %s is readable by others (mode %04o); chmod 600 it", path, (unsigned)mode);
}

/* ---- the CA's certificates ---------------------------------------------- */

/* The trust bundle: the issuing CA's root, the next one's while it is
 * distributed, the previous ones while proxies migrate. */
static int rebuild_bundle(struct sn_ca_service *s)
{
	struct sn_trust_bundle *b = NULL;
	char *pem = NULL;
	size_t len;

	if (sn_trust_bundle_new(sn_ca_trust_domain(s->ca), &b) != 0 || sn_trust_bundle_add(b, sn_ca_root(s->ca)) != 0)
		goto fail;
	if (s->next != NULL && sn_trust_bundle_add(b, sn_ca_root(s->next)) != 0)
		goto fail;
	for (size_t i = 0; i < s->n_prev; i++)
		if (sn_trust_bundle_add(b, s->prev[i]) != 0)
			goto fail;
	if (sn_trust_bundle_pem(b, &pem, &len) != 0)
		goto fail;
	sn_trust_bundle_free(s->bundle);
	free(s->bundle_pem);
	s->bundle = b;
	s->bundle_pem = pem;
	s->bundle_version++;
	return 0;
fail:
	sn_trust_bundle_free(b);
	return SN_ENOMEM;
}

/* From the CA chain PEM (issuer … root): the intermediates PEM, the
 * bundle, the root pin. */
static int setup_chain(struct sn_ca_service *s, const char *chain_pem, size_t chain_len, char *err, size_t es)
{
	STACK_OF(X509) *certs = NULL;
	BIO *bio = NULL;
	int rc = SN_ENOMEM;

	if (sn_pem_read_certs(chain_pem, chain_len, &certs) != 0) {
		seterr(err, es, "%s: cannot read the CA certificates", s->source);
		return SN_EINVAL;
	}
	X509 *root = sn_ca_root(s->ca);
	bio = BIO_new(BIO_s_mem());
	if (bio == NULL)
		goto out;
	free(s->chain_pem);
	s->chain_pem = NULL;
	for (int i = 0; i < sk_X509_num(certs) - 1; i++)
		if (PEM_write_bio_X509(bio, sk_X509_value(certs, i)) != 1)
			goto out;
	char *p;
	long n = BIO_get_mem_data(bio, &p);
	s->chain_pem = malloc((size_t)n + 1);
	if (s->chain_pem == NULL)
		goto out;
	if (n > 0)
		memcpy(s->chain_pem, p, (size_t)n);
	else
		n = 0;
	s->chain_pem[n] = '\0';
	if (rebuild_bundle(s) != 0 || sn_cert_sha256(root, s->root_sha256) != 0)
		goto out;
	BIO_reset(bio);
	if (PEM_write_bio_X509(bio, root) != 1 || (n = BIO_get_mem_data(bio, &p)) <= 0)
		goto out;
	free(s->root_pem);
	if ((s->root_pem = strndup(p, (size_t)n)) == NULL)
		goto out;
	rc = 0;
out:
	if (rc != 0)
		seterr(err, es, "out of memory setting up the CA");
	BIO_free(bio);
	sk_X509_pop_free(certs, X509_free);
	return rc;
}

static int load_user_ca(struct sn_ca_service *s, const struct sn_ca_service_opts *o, char *err, size_t es)
{
	char *cert = NULL, *key = NULL;
	size_t cl = 0, kl = 0;
	mode_t mode = 0;
	struct sn_id_error e;
	int rc = read_file(o->cert_file, CA_FILE_MAX, &cert, &cl, NULL);
	if (rc != 0) {
		seterr(err, es, "--ca-cert %s: cannot read it: %s", o->cert_file,
		       rc == SN_ENOTFOUND ? "no such file" : rc == SN_ELIMIT ? "larger than 1 MiB" : strerror(errno));
		return rc;
	}
	rc = read_file(o->key_file, CA_FILE_MAX, &key, &kl, &mode);
	if (rc != 0) {
		seterr(err, es, "--ca-key %s: cannot read it: %s", o->key_file,
		       rc == SN_ENOTFOUND ? "no such file" : rc == SN_ELIMIT ? "larger than 1 MiB" : strerror(errno));
		free(cert);
		return rc;
	}
	warn_mode(o->key_file, mode);
	snprintf(s->source, sizeof(s->source), "%s", o->cert_file);
	rc = sn_ca_load_pem(cert, cl, key, kl, o->trust_domain, o->now, &s->ca, &e);
	free_secret(key, kl);
	if (rc != 0) {
		seterr(err, es, "--ca-cert %s / --ca-key %s: %s", o->cert_file, o->key_file, e.msg);
		free(cert);
		return rc;
	}
	s->provided = 1;
	rc = setup_chain(s, cert, cl, err, es);
	free(cert);
	return rc;
}

/* DATA_DIR/ca/trust-domain: a generated root serves one trust domain;
 * restarting with another would issue identities nobody expects. */
static int check_trust_domain(struct sn_ca_service *s, const char *td, int create, char *err, size_t es)
{
	char path[CA_PATH_MAX], *have = NULL;
	size_t len;
	if (join_path(path, sizeof(path), s->dir, "trust-domain") != 0) {
		seterr(err, es, "data directory path too long");
		return SN_EINVAL;
	}
	int rc = read_file(path, 1024, &have, &len, NULL);
	if (rc == SN_ENOTFOUND || create) {
		char line[SN_TRUST_DOMAIN_MAX + 2];
		size_t tl = strlen(td);
		memcpy(line, td, tl);
		line[tl] = '\n';
		free(have);
		if (write_atomic(s->dir, "trust-domain", line, tl + 1, 0644, s->no_sync) != 0) {
			seterr(err, es, "%s: cannot write it: %s", path, strerror(errno));
			return SN_EIO;
		}
		return 0;
	}
	if (rc != 0) {
		seterr(err, es, "%s: cannot read it: %s", path, strerror(errno));
		return SN_EIO;
	}
	while (len > 0 && (have[len - 1] == '\n' || have[len - 1] == ' '))
		have[--len] = '\0';
	if (strcmp(have, td) != 0) {
		seterr(err, es, "the CA in %s serves trust domain %.255s, not %s; pass --trust-domain %.255s, or use "
				"another --data-dir for a new trust domain", s->dir, have, td, have);
		free(have);
		return SN_EINVAL;
	}
	free(have);
	return 0;
}

/* Writes ca's files into dir: key.pem first and root.pem last, so that
 * root.pem marks a complete set. *chain gets issuer … root PEM. */
static int write_ca_files(struct sn_ca_service *s, const char *dir, const struct sn_ca *ca, char **chain_out,
			  size_t *chain_len, char *err, size_t es)
{
	char *chain = NULL, *key = NULL;
	size_t cl = 0, kl = 0;
	STACK_OF(X509) *certs = NULL;
	BIO *bio = NULL;
	int rc = SN_ENOMEM;

	if (sn_ca_write_pem(ca, &chain, &cl, &key, &kl) != 0 || sn_pem_read_certs(chain, cl, &certs) != 0 ||
	    (bio = BIO_new(BIO_s_mem())) == NULL) {
		seterr(err, es, "out of memory writing the CA");
		goto out;
	}
	if (write_atomic(dir, "key.pem", key, kl, 0600, s->no_sync) != 0)
		goto io;
	for (int i = 0; i < sk_X509_num(certs) - 1; i++)
		PEM_write_bio_X509(bio, sk_X509_value(certs, i));
	char *ip;
	long il = BIO_get_mem_data(bio, &ip);
	/* Always written, empty without an intermediate: a rotation's renames
	 * (finish_renames) then move the same three files every time. */
	if (write_atomic(dir, "issuer.pem", il > 0 ? ip : "", il > 0 ? (size_t)il : 0, 0644, s->no_sync) != 0)
		goto io;
	BIO_reset(bio);
	PEM_write_bio_X509(bio, sk_X509_value(certs, sk_X509_num(certs) - 1));
	char *rp;
	long rl = BIO_get_mem_data(bio, &rp);
	if (write_atomic(dir, "root.pem", rp, (size_t)rl, 0644, s->no_sync) != 0)
		goto io;
	*chain_out = chain;
	*chain_len = cl;
	chain = NULL;
	rc = 0;
	goto out;
io:
	seterr(err, es, "cannot write the new CA into %s: %s; check the directory's permissions and free space",
	       dir, strerror(errno));
	rc = SN_EIO;
out:
	BIO_free(bio);
	sk_X509_pop_free(certs, X509_free);
	free(chain);
	free_secret(key, kl);
	return rc;
}

static int create_ca(struct sn_ca_service *s, const struct sn_ca_service_opts *o, char *err, size_t es)
{
	struct sn_id_error e;
	char *chain = NULL;
	size_t cl = 0;
	int rc = sn_ca_create(&s->params, &s->ca, &e);
	if (rc != 0) {
		seterr(err, es, "cannot create the CA: %s", e.msg);
		return rc;
	}
	if (check_trust_domain(s, sn_ca_trust_domain(s->ca), 1, err, es) != 0)
		return SN_EIO;
	rc = write_ca_files(s, s->dir, s->ca, &chain, &cl, err, es);
	if (rc != 0)
		return rc;
	snprintf(s->source, sizeof(s->source), "%s", s->dir);
	rc = setup_chain(s, chain, cl, err, es);
	free(chain);
	return rc;
}

/* ---- rotation state on disk ---------------------------------------------
 *
 * ca/next/{key,issuer,root}.pem   the next CA while its root is distributed
 * ca/previous.pem                 old roots still trusted while proxies migrate
 *
 * A switch writes previous.pem (old roots + the current root) first, then
 * renames next/key.pem, next/issuer.pem and next/root.pem over the current
 * files (root last) and removes next/. A crash in between is finished on
 * the next start: next/root.pem still there with the current root already
 * in previous.pem means the renames were under way. */

static int read_certs_file(const char *path, STACK_OF(X509) **out)
{
	char *pem = NULL;
	size_t len = 0;
	int rc = read_file(path, CA_FILE_MAX, &pem, &len, NULL);
	if (rc != 0)
		return rc;
	rc = sn_pem_read_certs(pem, len, out);
	free(pem);
	return rc;
}

/* Whether the certificate in root_path is among those of list_path. */
static int root_listed(const char *root_path, const char *list_path)
{
	STACK_OF(X509) *r = NULL, *l = NULL;
	uint8_t a[32], b[32];
	int found = 0;

	if (read_certs_file(root_path, &r) == 0 && read_certs_file(list_path, &l) == 0 &&
	    sn_cert_sha256(sk_X509_value(r, 0), a) == 0)
		for (int i = 0; i < sk_X509_num(l) && !found; i++)
			found = sn_cert_sha256(sk_X509_value(l, i), b) == 0 && memcmp(a, b, 32) == 0;
	sk_X509_pop_free(r, X509_free);
	sk_X509_pop_free(l, X509_free);
	return found;
}

static int finish_renames(struct sn_ca_service *s, char *err, size_t es)
{
	static const char *const names[] = { "key.pem", "issuer.pem", "root.pem" };
	char next[CA_PATH_MAX], from[CA_PATH_MAX], to[CA_PATH_MAX];

	if (join_path(next, sizeof(next), s->dir, "next") != 0)
		return SN_EINVAL;
	for (size_t i = 0; i < SN_ARRAY_LEN(names); i++) {
		if (join_path(from, sizeof(from), next, names[i]) != 0 || join_path(to, sizeof(to), s->dir, names[i]) != 0)
			return SN_EINVAL;
		/* ENOENT: moved already (a stop between two renames) */
		if (rename(from, to) != 0 && errno != ENOENT) {
			seterr(err, es, "cannot move %s to %s: %s", from, to, strerror(errno));
			return SN_EIO;
		}
	}
	fsync_dir(s->dir, s->no_sync);
	rmdir(next);
	fsync_dir(s->dir, s->no_sync);
	return 0;
}

static int recover_switch(struct sn_ca_service *s, char *err, size_t es)
{
	char nroot[CA_PATH_MAX], root[CA_PATH_MAX], prev[CA_PATH_MAX];

	if (join_path(nroot, sizeof(nroot), s->dir, "next/root.pem") != 0 ||
	    join_path(root, sizeof(root), s->dir, "root.pem") != 0 ||
	    join_path(prev, sizeof(prev), s->dir, "previous.pem") != 0)
		return SN_EINVAL;
	if (access(nroot, F_OK) != 0 || !root_listed(root, prev))
		return 0;
	sn_log(SN_LOG_WARN, "ca: finishing a root switch interrupted by a stop (%s)", s->dir);
	return finish_renames(s, err, es);
}

/* previous.pem and next/, after the issuing CA loaded. */
static int load_rotation(struct sn_ca_service *s, const struct sn_ca_service_opts *o, char *err, size_t es)
{
	char path[CA_PATH_MAX], kpath[CA_PATH_MAX], ipath[CA_PATH_MAX];
	STACK_OF(X509) *prev = NULL;
	char *root = NULL, *issuer = NULL, *key = NULL, *chain = NULL;
	size_t rl = 0, il = 0, kl = 0;
	struct sn_id_error e;
	int rc;

	if (join_path(path, sizeof(path), s->dir, "previous.pem") != 0)
		return SN_EINVAL;
	rc = read_certs_file(path, &prev);
	if (rc == 0) {
		uint8_t cur[32], h[32];
		sn_cert_sha256(sn_ca_root(s->ca), cur);
		for (int i = 0; i < sk_X509_num(prev) && s->n_prev < CA_MAX_PREV; i++) {
			X509 *c = sk_X509_value(prev, i);
			if (sn_cert_sha256(c, h) != 0 || memcmp(h, cur, 32) == 0 || !X509_up_ref(c))
				continue;
			s->prev[s->n_prev++] = c;
		}
		sk_X509_pop_free(prev, X509_free);
	} else if (rc != SN_ENOTFOUND) {
		seterr(err, es, "%s: cannot read it", path);
		return rc;
	}
	if (join_path(path, sizeof(path), s->dir, "next/root.pem") != 0 ||
	    join_path(ipath, sizeof(ipath), s->dir, "next/issuer.pem") != 0 ||
	    join_path(kpath, sizeof(kpath), s->dir, "next/key.pem") != 0)
		return SN_EINVAL;
	rc = read_file(path, CA_FILE_MAX, &root, &rl, NULL);
	if (rc == SN_ENOTFOUND)
		return rebuild_bundle(s);
	if (rc == 0)
		rc = read_file(kpath, CA_FILE_MAX, &key, &kl, NULL);
	if (rc == 0 && (rc = read_file(ipath, CA_FILE_MAX, &issuer, &il, NULL)) == SN_ENOTFOUND)
		rc = 0;
	if (rc != 0) {
		seterr(err, es, "%s/next: cannot read the next CA (%s); remove the directory to abandon that rotation",
		       s->dir, strerror(errno));
		goto out;
	}
	rc = SN_ENOMEM;
	if ((chain = malloc(il + rl + 1)) == NULL)
		goto out;
	if (il)
		memcpy(chain, issuer, il);
	memcpy(chain + il, root, rl);
	rc = sn_ca_load_pem(chain, il + rl, key, kl, o->trust_domain, o->now, &s->next, &e);
	if (rc != 0) {
		seterr(err, es, "%s/next does not load: %s; remove the directory to abandon that rotation", s->dir, e.msg);
		goto out;
	}
	rc = rebuild_bundle(s);
out:
	free(root);
	free(issuer);
	free(chain);
	free_secret(key, kl);
	return rc;
}

/* ---- tokens across a root switch ---------------------------------------
 *
 * A join token pins the root current when it was minted; the proxy trusts
 * sinewd the first time only through that pin. At a switch, while it still
 * holds the old root's key, sinewd certifies the new root with it (a
 * cross-certificate: the new root's subject, key and extensions, issued by
 * the old root) and keeps it in cross.pem with the old root. The mesh
 * port sends both after its leaf, so a proxy holding a token minted before
 * the switch finds its pinned root in the chain and a path to it
 * (leaf -> cross -> old root), and sinewd honours that pin while the cross
 * is held: until every token minted before the switch has expired (at
 * most SN_CA_TOKEN_TTL_MAX, plus the clock-step grace). Only possible when
 * the old root signed leaves itself (no intermediate: the root's key is
 * not kept then). */

static void cross_clear(struct sn_ca_service *s)
{
	X509_free(s->cross);
	X509_free(s->cross_by);
	free(s->cross_pem);
	s->cross = s->cross_by = NULL;
	s->cross_pem = NULL;
	memset(s->cross_pin, 0, sizeof(s->cross_pin));
}

/* Takes cross and by. */
static int cross_set(struct sn_ca_service *s, X509 *cross, X509 *by)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *p;
	long n;
	int rc = SN_ENOMEM;

	cross_clear(s);
	if (bio == NULL || PEM_write_bio_X509(bio, cross) != 1 || PEM_write_bio_X509(bio, by) != 1 ||
	    (n = BIO_get_mem_data(bio, &p)) <= 0 || (s->cross_pem = strndup(p, (size_t)n)) == NULL ||
	    sn_cert_sha256(by, s->cross_pin) != 0) {
		X509_free(cross);
		X509_free(by);
		goto out;
	}
	s->cross = cross;
	s->cross_by = by;
	rc = 0;
out:
	BIO_free(bio);
	if (rc != 0)
		cross_clear(s);
	return rc;
}

/* Copies extension nid of from into x; 0 if from has none. */
static int copy_ext(X509 *x, X509 *from, int nid)
{
	int i = X509_get_ext_by_NID(from, nid, -1);
	return i < 0 || X509_add_ext(x, X509_get_ext(from, i), -1) == 1 ? 0 : SN_ENOMEM;
}

/* The new root certified by the old root's key, valid from now - 60 s to
 * until (no later than either root). */
static X509 *cross_sign(X509 *new_root, X509 *old_root, EVP_PKEY *old_key, time_t now, time_t until)
{
	X509 *x = X509_new();
	X509V3_CTX v3;
	X509_EXTENSION *aki = NULL;
	BIGNUM *bn = NULL;
	uint8_t serial[16];
	time_t na = SN_MIN(until, SN_MIN(asn1_time(X509_get0_notAfter(old_root)),
					  asn1_time(X509_get0_notAfter(new_root))));

	if (x == NULL || RAND_bytes(serial, sizeof(serial)) != 1)
		goto fail;
	serial[0] &= 0x7f;
	serial[0] |= 0x01;   /* positive, never zero */
	if ((bn = BN_bin2bn(serial, sizeof(serial), NULL)) == NULL ||
	    BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) == NULL)
		goto fail;
	if (!X509_set_version(x, X509_VERSION_3) || !X509_set_subject_name(x, X509_get_subject_name(new_root)) ||
	    !X509_set_issuer_name(x, X509_get_subject_name(old_root)) ||
	    !X509_set_pubkey(x, X509_get0_pubkey(new_root)) ||
	    ASN1_TIME_set(X509_getm_notBefore(x), now - 60) == NULL || ASN1_TIME_set(X509_getm_notAfter(x), na) == NULL)
		goto fail;
	/* The same constraints as the root it stands for; the key identifier
	 * of the old root as authority. */
	if (copy_ext(x, new_root, NID_basic_constraints) != 0 || copy_ext(x, new_root, NID_key_usage) != 0 ||
	    copy_ext(x, new_root, NID_subject_key_identifier) != 0)
		goto fail;
	X509V3_set_ctx_nodb(&v3);
	X509V3_set_ctx(&v3, old_root, x, NULL, NULL, 0);
	if ((aki = X509V3_EXT_conf_nid(NULL, &v3, NID_authority_key_identifier, "keyid:always")) == NULL ||
	    X509_add_ext(x, aki, -1) != 1)
		goto fail;
	if (X509_sign(x, old_key, EVP_sha256()) <= 0)
		goto fail;
	X509_EXTENSION_free(aki);
	BN_free(bn);
	return x;
fail:
	ERR_clear_error();
	X509_EXTENSION_free(aki);
	BN_free(bn);
	X509_free(x);
	return NULL;
}

/* Whether cross certifies the current root (same subject and key) and is
 * signed by by's key. */
static int cross_fits(struct sn_ca_service *s, X509 *cross, X509 *by)
{
	X509 *root = sn_ca_root(s->ca);
	int ok = X509_NAME_cmp(X509_get_subject_name(cross), X509_get_subject_name(root)) == 0 &&
		 EVP_PKEY_eq(X509_get0_pubkey(cross), X509_get0_pubkey(root)) == 1 &&
		 X509_NAME_cmp(X509_get_issuer_name(cross), X509_get_subject_name(by)) == 0 &&
		 X509_verify(cross, X509_get0_pubkey(by)) == 1;
	ERR_clear_error();
	return ok;
}

/* cross.pem at start. One that is past its notAfter is removed; one that
 * does not certify the current root (a stop between its write and the
 * switch's renames) is ignored: the switch, finished or done again,
 * writes it anew. */
static void load_cross(struct sn_ca_service *s, time_t now)
{
	char path[CA_PATH_MAX];
	STACK_OF(X509) *certs = NULL;

	if (join_path(path, sizeof(path), s->dir, "cross.pem") != 0 || read_certs_file(path, &certs) != 0)
		return;
	if (sk_X509_num(certs) == 2) {
		X509 *cross = sk_X509_value(certs, 0), *by = sk_X509_value(certs, 1);
		if (asn1_time(X509_get0_notAfter(cross)) <= now) {
			unlink(path);
			fsync_dir(s->dir, s->no_sync);
		} else if (cross_fits(s, cross, by) && X509_up_ref(cross) && X509_up_ref(by)) {
			if (cross_set(s, cross, by) != 0)
				sn_log(SN_LOG_WARN, "ca: out of memory loading %s; tokens minted before the last root "
						    "switch will not work", path);
		}
	}
	sk_X509_pop_free(certs, X509_free);
}

/* At a switch, before the old key is dropped: cross.pem for the next CA's
 * root. A failure leaves tokens minted before the switch unusable after
 * it (as without cross-signing); the rotation goes on. */
static void write_cross(struct sn_ca_service *s, time_t now)
{
	X509 *old_root = sn_ca_root(s->ca), *new_root = sn_ca_root(s->next);
	X509 *cross = NULL;
	BIO *bio = NULL;
	char *p;
	long n;

	if (X509_cmp(sn_ca_issuer(s->ca), old_root) != 0) {
		sn_log(SN_LOG_WARN, "ca: rotation: the old root's key is not held (the CA issues from an "
				    "intermediate), so the new root is not cross-signed: join tokens minted before "
				    "this switch stop working at it");
		return;
	}
	cross = cross_sign(new_root, old_root, sn_ca_issuer_key(s->ca), now,
			   now + (time_t)SN_CA_TOKEN_TTL_MAX + SN_CA_SPENT_GRACE);
	if (cross == NULL || (bio = BIO_new(BIO_s_mem())) == NULL || PEM_write_bio_X509(bio, cross) != 1 ||
	    PEM_write_bio_X509(bio, old_root) != 1 || (n = BIO_get_mem_data(bio, &p)) <= 0 ||
	    write_atomic(s->dir, "cross.pem", p, (size_t)n, 0644, s->no_sync) != 0) {
		sn_log(SN_LOG_WARN, "ca: rotation: cannot cross-sign the new root into %s/cross.pem (%s); join "
				    "tokens minted before this switch stop working at it", s->dir,
		       cross == NULL ? "signing failed" : strerror(errno));
		X509_free(cross);
		BIO_free(bio);
		return;
	}
	BIO_free(bio);
	s->cross_pending = cross;   /* certifies s->next's root; set once it is current */
}

static int load_dir_ca(struct sn_ca_service *s, const struct sn_ca_service_opts *o, char *err, size_t es)
{
	char rpath[CA_PATH_MAX], ipath[CA_PATH_MAX], kpath[CA_PATH_MAX];
	char *root = NULL, *issuer = NULL, *key = NULL, *chain = NULL;
	size_t rl = 0, il = 0, kl = 0;
	mode_t mode = 0;
	struct sn_id_error e;
	int rc;

	if (join_path(rpath, sizeof(rpath), s->dir, "root.pem") != 0 ||
	    join_path(ipath, sizeof(ipath), s->dir, "issuer.pem") != 0 ||
	    join_path(kpath, sizeof(kpath), s->dir, "key.pem") != 0) {
		seterr(err, es, "data directory path too long");
		return SN_EINVAL;
	}
	if ((rc = recover_switch(s, err, es)) != 0)
		return rc;
	rc = read_file(rpath, CA_FILE_MAX, &root, &rl, NULL);
	if (rc == SN_ENOTFOUND) {
		/* no root.pem: no CA yet, or a crash while creating one (never served) */
		return create_ca(s, o, err, es);
	}
	if (rc != 0) {
		seterr(err, es, "%s: cannot read it: %s", rpath, strerror(errno));
		return rc;
	}
	if (check_trust_domain(s, o->trust_domain ? o->trust_domain : SN_ID_DEFAULT_TRUST_DOMAIN, 0, err, es) != 0) {
		free(root);
		return SN_EINVAL;
	}
	rc = read_file(ipath, CA_FILE_MAX, &issuer, &il, NULL);
	if (rc != 0 && rc != SN_ENOTFOUND) {
		seterr(err, es, "%s: cannot read it: %s", ipath, strerror(errno));
		goto out;
	}
	rc = read_file(kpath, CA_FILE_MAX, &key, &kl, &mode);
	if (rc != 0) {
		seterr(err, es, "%s is there but %s is %s; restore the key from a backup (a new root would "
				"invalidate every certificate and token)", rpath, kpath,
		       rc == SN_ENOTFOUND ? "missing" : "unreadable");
		goto out;
	}
	warn_mode(kpath, mode);
	chain = malloc(il + rl + 1);
	if (chain == NULL) {
		rc = SN_ENOMEM;
		seterr(err, es, "out of memory loading the CA");
		goto out;
	}
	if (il)
		memcpy(chain, issuer, il);
	memcpy(chain + il, root, rl);
	chain[il + rl] = '\0';
	snprintf(s->source, sizeof(s->source), "%s", s->dir);
	rc = sn_ca_load_pem(chain, il + rl, key, kl, o->trust_domain, o->now, &s->ca, &e);
	if (rc != 0) {
		seterr(err, es, "the CA in %s does not load: %s", s->dir, e.msg);
		goto out;
	}
	rc = setup_chain(s, chain, il + rl, err, es);
	if (rc == 0)
		rc = load_rotation(s, o, err, es);
	if (rc == 0)
		load_cross(s, o->now ? o->now : time(NULL));
out:
	free(root);
	free(issuer);
	free(chain);
	free_secret(key, kl);
	return rc;
}

static int load_secret(struct sn_ca_service *s, char *err, size_t es)
{
	char path[CA_PATH_MAX], *buf = NULL;
	size_t len = 0;
	mode_t mode = 0;
	if (join_path(path, sizeof(path), s->dir, "token.key") != 0) {
		seterr(err, es, "data directory path too long");
		return SN_EINVAL;
	}
	int rc = read_file(path, 4096, &buf, &len, &mode);
	if (rc == SN_ENOTFOUND) {
		if (sn_join_token_secret_generate(s->secret, sizeof(s->secret)) != 0) {
			seterr(err, es, "cannot draw random bytes for the token secret");
			return SN_EIO;
		}
		if (write_atomic(s->dir, "token.key", s->secret, sizeof(s->secret), 0600, s->no_sync) != 0) {
			seterr(err, es, "%s: cannot write it: %s", path, strerror(errno));
			return SN_EIO;
		}
		return 0;
	}
	if (rc != 0 || len != CA_SECRET_LEN) {
		seterr(err, es, "%s: %s; remove it to draw a new secret (tokens minted before stop working)", path,
		       rc != 0 ? "cannot read it" : "not 32 bytes");
		free_secret(buf, len);
		return rc != 0 ? rc : SN_EINVAL;
	}
	warn_mode(path, mode);
	memcpy(s->secret, buf, CA_SECRET_LEN);
	free_secret(buf, len);
	return 0;
}

/* ---- spent tokens ------------------------------------------------------- */

static int spent_find(const struct sn_ca_service *s, const uint8_t nonce[16])
{
	for (size_t i = 0; i < s->n_spent; i++)
		if (!memcmp(s->spent[i].nonce, nonce, 16))
			return 1;
	return 0;
}

static void spent_expire(struct sn_ca_service *s, int64_t now)
{
	size_t k = 0;
	for (size_t i = 0; i < s->n_spent; i++)
		if (s->spent[i].keep_until > now)
			s->spent[k++] = s->spent[i];
	s->n_spent = k;
}

/* Rewrites used-nonces with the live entries, atomically. */
static int spent_compact(struct sn_ca_service *s)
{
	size_t cap = s->n_spent * 54 + 1;
	char *buf = malloc(cap), hx[33];
	size_t off = 0;
	if (buf == NULL)
		return SN_ENOMEM;
	for (size_t i = 0; i < s->n_spent; i++) {
		sn_hex(s->spent[i].nonce, 16, hx);
		off += (size_t)snprintf(buf + off, cap - off, "%s %lld\n", hx, (long long)s->spent[i].keep_until);
	}
	int rc = write_atomic(s->dir, "used-nonces", buf, off, 0600, s->no_sync);
	free(buf);
	if (rc != 0)
		return SN_EIO;
	s->file_lines = s->n_spent;
	return 0;
}

static int spent_load(struct sn_ca_service *s, int64_t now, char *err, size_t es)
{
	char path[CA_PATH_MAX], *buf = NULL;
	size_t len = 0, bad = 0;
	if (join_path(path, sizeof(path), s->dir, "used-nonces") != 0) {
		seterr(err, es, "data directory path too long");
		return SN_EINVAL;
	}
	int rc = read_file(path, (size_t)SN_CA_MAX_SPENT * 2 * 64, &buf, &len, NULL);
	if (rc != 0 && rc != SN_ENOTFOUND) {
		seterr(err, es, "%s: cannot read it: %s", path, strerror(errno));
		return rc;
	}
	for (char *p = buf, *end = buf ? buf + len : NULL; p != NULL && p < end;) {
		char *nl = memchr(p, '\n', (size_t)(end - p));
		if (nl == NULL)
			nl = end;   /* a line cut by a crash: its leaf was never sent */
		struct spent e;
		char *sp = memchr(p, ' ', (size_t)(nl - p));
		long long k = 0;
		int ok = sp == p + 32 && unhex(p, 16, e.nonce) == 0 && nl - sp > 1 && nl - sp < 20;
		for (char *q = sp ? sp + 1 : NULL; ok && q < nl; q++) {
			if (*q < '0' || *q > '9')
				ok = 0;
			else
				k = k * 10 + (*q - '0');
		}
		if (!ok) {
			bad++;
		} else if (k > now && s->n_spent < SN_CA_MAX_SPENT) {
			if (s->n_spent == s->cap_spent) {
				size_t nc = s->cap_spent ? s->cap_spent * 2 : 64;
				struct spent *v = realloc(s->spent, nc * sizeof(*v));
				if (v == NULL) {
					free(buf);
					seterr(err, es, "out of memory loading %s", path);
					return SN_ENOMEM;
				}
				s->spent = v;
				s->cap_spent = nc;
			}
			e.keep_until = k;
			s->spent[s->n_spent++] = e;
		}
		p = nl + 1;
	}
	free(buf);
	if (bad)
		sn_log(SN_LOG_WARN, "ca: %s: %zu malformed lines skipped", path, bad);
	/* always rewrite: drops expired entries and any line a crash cut short,
	 * so that appends start on a clean line */
	if (spent_compact(s) != 0) {
		seterr(err, es, "%s: cannot write it: %s", path, strerror(errno));
		return SN_EIO;
	}
	return 0;
}

/* Records a spent nonce durably (fsync'd append, or a compaction). */
static int spent_record(struct sn_ca_service *s, const uint8_t nonce[16], int64_t keep_until)
{
	if (s->n_spent == s->cap_spent) {
		size_t nc = s->cap_spent ? s->cap_spent * 2 : 64;
		struct spent *v = realloc(s->spent, nc * sizeof(*v));
		if (v == NULL)
			return SN_ENOMEM;
		s->spent = v;
		s->cap_spent = nc;
	}
	memcpy(s->spent[s->n_spent].nonce, nonce, 16);
	s->spent[s->n_spent].keep_until = keep_until;
	s->n_spent++;
	if (s->file_lines >= 2 * s->n_spent + 64) {
		if (spent_compact(s) != 0) {
			s->n_spent--;
			return SN_EIO;
		}
		return 0;
	}
	char path[CA_PATH_MAX], line[64], hx[33];
	sn_hex(nonce, 16, hx);
	int n = snprintf(line, sizeof(line), "%s %lld\n", hx, (long long)keep_until);
	if (join_path(path, sizeof(path), s->dir, "used-nonces") != 0) {
		s->n_spent--;
		return SN_EIO;
	}
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0 || sn_write_all(fd, line, (size_t)n) != 0 || (!s->no_sync && fsync(fd) != 0)) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		s->n_spent--;
		errno = e;
		return SN_EIO;
	}
	close(fd);
	s->file_lines++;
	return 0;
}

size_t sn_ca_service_spent_count(const struct sn_ca_service *s)
{
	return s->n_spent;
}

/* ---- open / free -------------------------------------------------------- */

int sn_ca_service_open(const struct sn_ca_service_opts *o, struct sn_ca_service **out, char *err, size_t es)
{
	struct sn_id_error e;
	const char *td = o->trust_domain ? o->trust_domain : SN_ID_DEFAULT_TRUST_DOMAIN;
	int rc;

	*out = NULL;
	if (sn_trust_domain_check(td, &e) != 0) {
		seterr(err, es, "--trust-domain %s: %s", td, e.msg);
		return SN_EINVAL;
	}
	if ((o->cert_file == NULL) != (o->key_file == NULL)) {
		seterr(err, es, "--ca-cert and --ca-key go together: the certificate chain and its issuer's key");
		return SN_EINVAL;
	}
	struct sn_ca_service *s = calloc(1, sizeof(*s));
	if (s == NULL) {
		seterr(err, es, "out of memory");
		return SN_ENOMEM;
	}
	s->no_sync = o->no_sync;
	s->params.trust_domain = td;
	s->params.root_ttl = o->root_ttl;
	s->params.intermediate = o->intermediate;
	s->params.now = o->now;
	s->leaf_ttl = o->leaf_ttl;
	s->issuer_gen = 1;
	if (join_path(s->dir, sizeof(s->dir), o->data_dir, "ca") != 0) {
		seterr(err, es, "--data-dir %s: path too long", o->data_dir);
		rc = SN_EINVAL;
		goto fail;
	}
	if (mkdir(s->dir, 0700) == 0) {
		fsync_dir(o->data_dir, s->no_sync);
	} else if (errno != EEXIST) {
		seterr(err, es, "cannot create %s: %s", s->dir, strerror(errno));
		rc = SN_EIO;
		goto fail;
	}
	struct sn_ca_service_opts oo = *o;
	oo.trust_domain = td;
	rc = o->cert_file ? load_user_ca(s, &oo, err, es) : load_dir_ca(s, &oo, err, es);
	if (rc != 0)
		goto fail;
	if (o->token_secret != NULL)
		memcpy(s->secret, o->token_secret, CA_SECRET_LEN);
	else if ((rc = load_secret(s, err, es)) != 0)
		goto fail;
	s->spend = o->spend;
	s->spend_arg = o->spend_arg;
	if ((rc = spent_load(s, (int64_t)(o->now ? o->now : time(NULL)), err, es)) != 0)
		goto fail;
	*out = s;
	return 0;
fail:
	sn_ca_service_free(s);
	return rc;
}

void sn_ca_service_free(struct sn_ca_service *s)
{
	if (s == NULL)
		return;
	sn_ca_free(s->ca);
	sn_ca_free(s->next);
	for (size_t i = 0; i < s->n_prev; i++)
		X509_free(s->prev[i]);
	cross_clear(s);
	X509_free(s->cross_pending);
	sn_trust_bundle_free(s->bundle);
	free(s->chain_pem);
	free(s->bundle_pem);
	free(s->root_pem);
	free(s->spent);
	OPENSSL_cleanse(s->secret, sizeof(s->secret));
	free(s);
}

const char *sn_ca_service_chain_pem(const struct sn_ca_service *s)
{
	return s->chain_pem;
}

const char *sn_ca_service_root_pem(const struct sn_ca_service *s)
{
	return s->root_pem;
}

const char *sn_ca_service_bundle_pem(const struct sn_ca_service *s)
{
	return s->bundle_pem;
}

const char *sn_ca_service_trust_domain(const struct sn_ca_service *s)
{
	return sn_ca_trust_domain(s->ca);
}

void sn_ca_service_root_sha256_hex(const struct sn_ca_service *s, char out[65])
{
	sn_hex(s->root_sha256, 32, out);
}

const char *sn_ca_service_cross_pem(const struct sn_ca_service *s)
{
	return s->cross_pem != NULL ? s->cross_pem : "";
}

int sn_ca_service_expire_cross(struct sn_ca_service *s, time_t now)
{
	char path[CA_PATH_MAX];

	if (s->cross == NULL || asn1_time(X509_get0_notAfter(s->cross)) > now)
		return 0;
	cross_clear(s);
	if (join_path(path, sizeof(path), s->dir, "cross.pem") == 0 && unlink(path) == 0)
		fsync_dir(s->dir, s->no_sync);
	sn_log(SN_LOG_INFO, "ca: the cross-certificate of the last root switch expired: join tokens minted before "
			    "it have all expired too");
	return 1;
}

/* ---- tokens ------------------------------------------------------------- */

int sn_ca_parse_ttl(const char *s, uint32_t *out)
{
	uint64_t total = 0;
	const char *p = s;
	if (s == NULL || *s == '\0')
		return SN_EINVAL;
	while (*p != '\0') {
		uint64_t v = 0;
		const char *d = p;
		while (*p >= '0' && *p <= '9' && p - d < 9)
			v = v * 10 + (uint64_t)(*p++ - '0');
		if (p == d)
			return SN_EINVAL;
		uint64_t unit = 1;
		if (*p == 'h')
			unit = 3600;
		else if (*p == 'm')
			unit = 60;
		else if (*p == 's')
			unit = 1;
		else if (*p != '\0' || d != s)
			return SN_EINVAL;   /* a bare number is seconds, and only alone */
		if (*p != '\0')
			p++;
		total += v * unit;
		if (total > SN_CA_TOKEN_TTL_MAX)
			return SN_EINVAL;
	}
	if (total == 0)
		return SN_EINVAL;
	*out = (uint32_t)total;
	return 0;
}

int sn_ca_service_mint(struct sn_ca_service *s, const char *ns, const char *sa, uint32_t ttl, time_t now,
		       char **token, char nonce_hex[33], time_t *expires_at, struct sn_ca_refusal *why)
{
	struct sn_join_token t;
	struct sn_spiffe_id id;
	struct sn_id_error e;
	size_t len;

	*token = NULL;
	if (ttl == 0 || ttl > SN_CA_TOKEN_TTL_MAX)
		return refuse(why, 400, "ttl must be between 1s and 24h");
	if (strlen(ns) > SN_JOIN_TOKEN_NS_MAX || strlen(sa) > SN_JOIN_TOKEN_SA_MAX)
		return refuse(why, 400, "namespace (at most %d bytes) or serviceAccount (at most %d) is too long",
			      SN_JOIN_TOKEN_NS_MAX, SN_JOIN_TOKEN_SA_MAX);
	if (sn_spiffe_id_from_workload(sn_ca_trust_domain(s->ca), ns, sa, &id, &e) != 0)
		return refuse(why, 400, "namespace %.63s / serviceAccount %.253s do not form a SPIFFE ID: %s", ns, sa,
			      e.msg);
	memset(&t, 0, sizeof(t));
	memcpy(t.trust_domain, sn_ca_trust_domain(s->ca), strlen(sn_ca_trust_domain(s->ca)) + 1);
	memcpy(t.ns, ns, strlen(ns) + 1);
	memcpy(t.sa, sa, strlen(sa) + 1);
	t.expires_at = (int64_t)(now ? now : time(NULL)) + ttl;
	memcpy(t.root_sha256, s->root_sha256, 32);
	int rc = sn_join_token_create(&t, s->secret, sizeof(s->secret), token, &len);
	if (rc != 0)
		return refuse(why, 500, "could not mint a token (%s)", rc == SN_ENOMEM ? "out of memory" : "no randomness");
	sn_join_token_nonce_hex(&t, nonce_hex);
	*expires_at = (time_t)t.expires_at;
	return 0;
}

/* ---- issuance ----------------------------------------------------------- */

void sn_ca_issued_free(struct sn_ca_issued *c)
{
	free(c->certificate);
	free(c->spiffe_id);
	memset(c, 0, sizeof(*c));
}

/* Reads a PEM CSR: *der gets its exact DER (what a renewal signs), *req
 * the parsed request. Returns 0 or a refusal (400). */
static int read_csr(const char *pem, size_t len, unsigned char **der, long *der_len, X509_REQ **req,
		    struct sn_ca_refusal *why)
{
	*der = NULL;
	*req = NULL;
	if (pem == NULL || len == 0)
		return refuse(why, 400, "csr is missing: send a PEM certificate request (-----BEGIN CERTIFICATE "
					"REQUEST-----)");
	if (len > SN_CA_MAX_CSR_PEM)
		return refuse(why, 400, "csr is larger than %u bytes", SN_CA_MAX_CSR_PEM);
	BIO *bio = BIO_new_mem_buf(pem, (int)len);
	char *name = NULL, *header = NULL;
	int ok = bio != NULL && PEM_read_bio(bio, &name, &header, der, der_len) == 1 &&
		 (!strcmp(name, PEM_STRING_X509_REQ) || !strcmp(name, PEM_STRING_X509_REQ_OLD));
	BIO_free(bio);
	OPENSSL_free(name);
	OPENSSL_free(header);
	if (ok) {
		const unsigned char *p = *der;
		*req = d2i_X509_REQ(NULL, &p, *der_len);
		ok = *req != NULL && p == *der + *der_len;
	}
	if (!ok) {
		ERR_clear_error();
		X509_REQ_free(*req);
		OPENSSL_free(*der);
		*req = NULL;
		*der = NULL;
		return refuse(why, 400, "csr is not a PEM certificate request (-----BEGIN CERTIFICATE REQUEST-----)");
	}
	return 0;
}

/* Signs req for ns/sa into out. */
static int sign(struct sn_ca_service *s, X509_REQ *req, const char *ns, const char *sa, time_t now,
		struct sn_ca_issued *out, struct sn_ca_refusal *why)
{
	struct sn_svid_params p = { .ns = ns, .sa = sa, .now = now, .ttl = s->leaf_ttl };
	struct sn_spiffe_id id;
	struct sn_id_error e;
	X509 *leaf = NULL;
	BIO *bio = NULL;
	int rc = sn_ca_sign_req(s->ca, req, &p, &leaf, &e);

	memset(out, 0, sizeof(*out));
	if (rc != 0) {
		int bad_csr = e.code == SN_ID_E_CSR_KEY || e.code == SN_ID_E_CSR_SIGNATURE || e.code == SN_ID_E_MALFORMED;
		return refuse(why, bad_csr ? 400 : 500, "%s%s", bad_csr ? "csr refused: " : "could not sign: ", e.msg);
	}
	if (sn_spiffe_id_from_workload(sn_ca_trust_domain(s->ca), ns, sa, &id, &e) != 0)
		goto nomem;
	bio = BIO_new(BIO_s_mem());
	char *pp;
	long pl;
	if (bio == NULL || PEM_write_bio_X509(bio, leaf) != 1 || (pl = BIO_get_mem_data(bio, &pp)) <= 0)
		goto nomem;
	out->certificate = malloc((size_t)pl + 1);
	out->spiffe_id = strdup(id.uri);
	if (out->certificate == NULL || out->spiffe_id == NULL)
		goto nomem;
	memcpy(out->certificate, pp, (size_t)pl);
	out->certificate[pl] = '\0';
	out->not_before = asn1_time(X509_get0_notBefore(leaf));
	out->not_after = asn1_time(X509_get0_notAfter(leaf));
	const ASN1_INTEGER *ser = X509_get0_serialNumber(leaf);
	size_t sl = (size_t)ASN1_STRING_length(ser);
	sn_hex(ASN1_STRING_get0_data(ser), SN_MIN(sl, (sizeof(out->serial) - 1) / 2), out->serial);
	BIO_free(bio);
	X509_free(leaf);
	return 0;
nomem:
	BIO_free(bio);
	X509_free(leaf);
	sn_ca_issued_free(out);
	return refuse(why, 500, "out of memory issuing a certificate");
}

int sn_ca_service_issue(struct sn_ca_service *s, const char *token, size_t token_len, const char *csr_pem,
			size_t csr_len, time_t now, struct sn_ca_issued *out, char nonce_hex[33],
			struct sn_ca_refusal *why)
{
	struct sn_join_token t;
	struct sn_id_error e;
	unsigned char *der = NULL;
	long der_len = 0;
	X509_REQ *req = NULL;
	char hx[65];

	memset(out, 0, sizeof(*out));
	if (nonce_hex != NULL)
		nonce_hex[0] = '\0';
	now = now ? now : time(NULL);
	if (token == NULL || token_len == 0)
		return refuse(why, 401, "token is missing: mint one with `sinew token create --service-account SA`");
	if (sn_join_token_verify(token, token_len, s->secret, sizeof(s->secret), now, &t, &e) != 0) {
		switch (e.code) {
		case SN_ID_E_TOKEN_EXPIRED:
			return refuse(why, 401, "%s; mint a new one with `sinew token create`", e.msg);
		case SN_ID_E_TOKEN_MAC:
			return refuse(why, 401, "bad token signature: %s", e.msg);
		default:
			return refuse(why, 401, "malformed token: %s", e.msg);
		}
	}
	if (nonce_hex != NULL)
		sn_join_token_nonce_hex(&t, nonce_hex);
	if (strcmp(t.trust_domain, sn_ca_trust_domain(s->ca)) != 0)
		return refuse(why, 401, "wrong trust domain: the token is for %s, this CA serves %s", t.trust_domain,
			      sn_ca_trust_domain(s->ca));
	/* The current root, or the previous one while its cross-certificate
	 * lets such a token's proxy verify us (tokens across a switch). */
	int pin_ok = CRYPTO_memcmp(t.root_sha256, s->root_sha256, 32) == 0 ||
		     (s->cross != NULL && asn1_time(X509_get0_notAfter(s->cross)) > now &&
		      CRYPTO_memcmp(t.root_sha256, s->cross_pin, 32) == 0);
	if (!pin_ok) {
		sn_hex(t.root_sha256, 32, hx);
		return refuse(why, 401, "the token pins CA root sha256 %s, which is not this CA's current root (nor "
					"the previous one, cross-signed at the last switch); mint a new token", hx);
	}
	spent_expire(s, (int64_t)now);
	if (spent_find(s, t.nonce))
		return refuse(why, 401, "token already used (single use); mint a new one with `sinew token create`");
	if (s->n_spent >= SN_CA_MAX_SPENT)
		return refuse(why, 503, "%u unexpired tokens are spent, the limit; retry once some expire", SN_CA_MAX_SPENT);
	int rc = read_csr(csr_pem, csr_len, &der, &der_len, &req, why);
	if (rc != 0)
		return rc;
	rc = sign(s, req, t.ns, t.sa, now, out, why);
	X509_REQ_free(req);
	OPENSSL_free(der);
	if (rc != 0)
		return rc;
	/* the leaf leaves only once its token is durably spent */
	if (s->spend != NULL) {
		char hexn[33], serr[300];
		sn_join_token_nonce_hex(&t, hexn);
		int sp = s->spend(s->spend_arg, hexn, (time_t)(t.expires_at + SN_CA_SPENT_GRACE), serr, sizeof(serr));
		if (sp != 0) {
			sn_ca_issued_free(out);
			return sp == 1 ? refuse(why, 401, "token already used (single use, at another sinewd replica); "
						      "mint a new one with `sinew token create`")
				       : refuse(why, 503, "could not record the token as used (%s); the certificate "
							  "was not issued, retry", serr);
		}
		return 0;
	}
	if (spent_record(s, t.nonce, t.expires_at + SN_CA_SPENT_GRACE) != 0) {
		sn_ca_issued_free(out);
		return refuse(why, 500, "could not record the token as used in %s/used-nonces (%s); the certificate "
					"was not issued, retry", s->dir, strerror(errno));
	}
	return 0;
}

/* base64 (standard alphabet, padding optional) into out. Returns bytes or -1. */
static long b64_decode(const char *in, size_t n, unsigned char *out, size_t cap)
{
	char buf[512];
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		char c = in[i];
		if (c == '\n' || c == '\r' || c == ' ')
			continue;
		if (k + 4 >= sizeof(buf))
			return -1;
		buf[k++] = c;
	}
	size_t pad = 0;
	while (k > 0 && buf[k - 1] == '=') {
		k--;
		pad++;
	}
	if (pad > 2 || k % 4 == 1)
		return -1;
	size_t full = k;
	while (full % 4)
		buf[full++] = '=';
	if (full / 4 * 3 > cap)
		return -1;
	int got = EVP_DecodeBlock(out, (const unsigned char *)buf, (int)full);
	if (got < 0)
		return -1;
	return got - (long)(full - k);
}

int sn_ca_service_renew(struct sn_ca_service *s, const char *cert_pem, size_t cert_len, const char *csr_pem,
			size_t csr_len, const char *sig_b64, size_t sig_len, const char *want_id, time_t now,
			struct sn_ca_issued *out, struct sn_ca_refusal *why)
{
	STACK_OF(X509) *certs = NULL;
	X509_REQ *req = NULL;
	unsigned char *der = NULL, sig[256];
	long der_len = 0, sl;
	struct sn_spiffe_id id;
	struct sn_id_error e;
	struct sn_str ns, sa;
	EVP_MD_CTX *md = NULL;
	char nsb[SN_JOIN_TOKEN_NS_MAX + 1], sab[SN_JOIN_TOKEN_SA_MAX + 1];
	int rc;

	memset(out, 0, sizeof(*out));
	now = now ? now : time(NULL);
	if (want_id != NULL && sn_spiffe_id_parse(want_id, strlen(want_id), &id, &e) != 0)
		return refuse(why, 400, "spiffeId is not a SPIFFE ID: %s", e.msg);
	if (cert_len > SN_CA_MAX_CERT_PEM)
		return refuse(why, 400, "certificate is larger than %u bytes", SN_CA_MAX_CERT_PEM);
	rc = sn_pem_read_certs(cert_pem, cert_len, &certs);
	if (rc != 0)
		return refuse(why, rc == SN_ENOMEM ? 500 : 401, "certificate is not a PEM certificate chain (your "
								 "current leaf first)");
	if (sk_X509_num(certs) > CA_MAX_CHAIN) {
		rc = refuse(why, 401, "certificate chain is longer than %d certificates", CA_MAX_CHAIN);
		goto out;
	}
	X509 *leaf = sk_X509_shift(certs);
	struct sn_svid_verify_opts vo = { .bundle = s->bundle, .trust_domain = sn_ca_trust_domain(s->ca),
					  .purpose = SN_SVID_PURPOSE_CLIENT, .now = now };
	rc = sn_svid_verify(&vo, leaf, certs, &id, &e);
	if (rc != 0) {
		X509_free(leaf);
		rc = refuse(why, rc == SN_ENOMEM ? 500 : 401, "current certificate refused (%s): %s; bootstrap again "
							      "with a join token", sn_id_err_str(e.code), e.msg);
		goto out;
	}
	if (sn_spiffe_id_workload(&id, &ns, &sa) != 0 || ns.len >= sizeof(nsb) || sa.len >= sizeof(sab)) {
		X509_free(leaf);
		rc = refuse(why, 401, "current certificate's SPIFFE ID %s is not a workload identity (/ns/NS/sa/SA)",
			    id.uri);
		goto out;
	}
	if (want_id != NULL && strcmp(want_id, id.uri) != 0) {
		X509_free(leaf);
		rc = refuse(why, 401, "current certificate is for %s, not %.300s; a certificate renews only its own "
				      "identity", id.uri, want_id);
		goto out;
	}
	memcpy(nsb, ns.p, ns.len);
	nsb[ns.len] = '\0';
	memcpy(sab, sa.p, sa.len);
	sab[sa.len] = '\0';
	rc = read_csr(csr_pem, csr_len, &der, &der_len, &req, why);
	if (rc != 0) {
		X509_free(leaf);
		goto out;
	}
	/* proof of possession of the current key, over exactly this CSR */
	sl = sig_b64 ? b64_decode(sig_b64, sig_len, sig, sizeof(sig)) : -1;
	int ok = 0;
	if (sl > 0 && (md = EVP_MD_CTX_new()) != NULL &&
	    EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, X509_get0_pubkey(leaf)) == 1 &&
	    EVP_DigestVerifyUpdate(md, SN_CA_RENEW_CONTEXT, sizeof(SN_CA_RENEW_CONTEXT)) == 1 &&
	    EVP_DigestVerifyUpdate(md, der, (size_t)der_len) == 1)
		ok = EVP_DigestVerifyFinal(md, sig, (size_t)sl) == 1;
	ERR_clear_error();
	X509_free(leaf);
	if (!ok) {
		rc = refuse(why, 401, "%s; sign \"" SN_CA_RENEW_CONTEXT "\", a NUL byte and the CSR's DER with the "
				      "current certificate's key (ECDSA SHA-256, base64)",
			    sig_b64 == NULL ? "signature is missing" : sl <= 0 ? "signature is not base64"
									     : "renewal signature does not verify");
		goto out;
	}
	rc = sign(s, req, nsb, sab, now, out, why);
out:
	EVP_MD_CTX_free(md);
	X509_REQ_free(req);
	OPENSSL_free(der);
	sk_X509_pop_free(certs, X509_free);
	return rc;
}

/* ---- rotation ----------------------------------------------------------- */

enum sn_ca_phase sn_ca_service_phase(const struct sn_ca_service *s)
{
	return s->next != NULL ? SN_CA_DISTRIBUTING : s->n_prev > 0 ? SN_CA_MIGRATING : SN_CA_STABLE;
}

const char *sn_ca_phase_str(enum sn_ca_phase p)
{
	return p == SN_CA_DISTRIBUTING ? "distributing" : p == SN_CA_MIGRATING ? "migrating" : "stable";
}

uint64_t sn_ca_service_bundle_version(const struct sn_ca_service *s)
{
	return s->bundle_version;
}

uint64_t sn_ca_service_issuer_gen(const struct sn_ca_service *s)
{
	return s->issuer_gen;
}

time_t sn_ca_service_issuer_not_after(const struct sn_ca_service *s, time_t *not_before)
{
	X509 *c = sn_ca_issuer(s->ca);
	if (not_before != NULL)
		*not_before = asn1_time(X509_get0_notBefore(c));
	time_t na = asn1_time(X509_get0_notAfter(c));
	time_t ra = asn1_time(X509_get0_notAfter(sn_ca_root(s->ca)));
	return ra < na ? ra : na;
}

static int busy(const struct sn_ca_service *s, char *err, size_t es)
{
	if (s->provided) {
		seterr(err, es, "the CA comes from --ca-cert %s; to rotate it, restart sinewd with new files (sinewd "
				"rotates only a CA it generated)", s->source);
		return SN_EINVAL;
	}
	return 0;
}

int sn_ca_service_rotate_begin(struct sn_ca_service *s, time_t now, char *err, size_t es)
{
	char dir[CA_PATH_MAX], *chain = NULL;
	size_t cl = 0;
	struct sn_id_error e;
	struct sn_ca *ca = NULL;
	int rc;

	if ((rc = busy(s, err, es)) != 0)
		return rc;
	if (sn_ca_service_phase(s) != SN_CA_STABLE) {
		seterr(err, es, "a rotation is already under way (%s); it finishes on its own",
		       sn_ca_phase_str(sn_ca_service_phase(s)));
		return SN_ELIMIT;
	}
	struct sn_ca_params p = s->params;
	p.now = now;
	if ((rc = sn_ca_create(&p, &ca, &e)) != 0) {
		seterr(err, es, "cannot create the new CA: %s", e.msg);
		return rc;
	}
	if (join_path(dir, sizeof(dir), s->dir, "next") != 0) {
		sn_ca_free(ca);
		return SN_EINVAL;
	}
	if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
		seterr(err, es, "cannot create %s: %s", dir, strerror(errno));
		sn_ca_free(ca);
		return SN_EIO;
	}
	fsync_dir(s->dir, s->no_sync);
	rc = write_ca_files(s, dir, ca, &chain, &cl, err, es);
	free(chain);
	if (rc != 0) {
		sn_ca_free(ca);
		return rc;
	}
	s->next = ca;
	if (rebuild_bundle(s) != 0) {
		seterr(err, es, "out of memory");
		return SN_ENOMEM;
	}
	return 0;
}

int sn_ca_service_rotate_switch(struct sn_ca_service *s, char *err, size_t es)
{
	char *chain = NULL, *key = NULL;
	size_t cl = 0, kl = 0;
	BIO *bio = NULL;
	int rc = SN_ENOMEM;

	if (s->next == NULL) {
		seterr(err, es, "no next CA to switch to");
		return SN_EINVAL;
	}
	if (s->n_prev >= CA_MAX_PREV) {
		seterr(err, es, "%d old roots are still trusted, the limit", CA_MAX_PREV);
		return SN_ELIMIT;
	}
	/* cross.pem while the old root's key is still here; then
	 * previous.pem: with it on disk, a stop mid-way is finished at the
	 * next start (recover_switch). */
	X509_free(s->cross_pending);
	s->cross_pending = NULL;
	write_cross(s, time(NULL));
	if ((bio = BIO_new(BIO_s_mem())) == NULL)
		goto out;
	for (size_t i = 0; i < s->n_prev; i++)
		PEM_write_bio_X509(bio, s->prev[i]);
	if (PEM_write_bio_X509(bio, sn_ca_root(s->ca)) != 1)
		goto out;
	char *pp;
	long pl = BIO_get_mem_data(bio, &pp);
	if (write_atomic(s->dir, "previous.pem", pp, (size_t)pl, 0644, s->no_sync) != 0) {
		seterr(err, es, "cannot write %s/previous.pem: %s", s->dir, strerror(errno));
		rc = SN_EIO;
		goto out;
	}
	if ((rc = finish_renames(s, err, es)) != 0)
		goto out;
	rc = SN_ENOMEM;
	if (!X509_up_ref(sn_ca_root(s->ca)))
		goto out;
	s->prev[s->n_prev++] = sn_ca_root(s->ca);
	sn_ca_free(s->ca);
	s->ca = s->next;
	s->next = NULL;
	s->issuer_gen++;
	if (sn_ca_write_pem(s->ca, &chain, &cl, &key, &kl) != 0 || setup_chain(s, chain, cl, err, es) != 0)
		goto out;
	if (s->cross_pending != NULL) {
		X509 *by = s->prev[s->n_prev - 1];
		X509 *cross = s->cross_pending;
		s->cross_pending = NULL;
		if (!X509_up_ref(by)) {
			X509_free(cross);
			goto out;
		}
		if (cross_set(s, cross, by) != 0)
			goto out;
	}
	rc = 0;
out:
	if (rc == SN_ENOMEM && err[0] == '\0')
		seterr(err, es, "out of memory");
	BIO_free(bio);
	free(chain);
	free_secret(key, kl);
	return rc;
}

int sn_ca_service_rotate_finish(struct sn_ca_service *s, char *err, size_t es)
{
	char path[CA_PATH_MAX];

	if (s->n_prev == 0)
		return 0;
	if (join_path(path, sizeof(path), s->dir, "previous.pem") != 0)
		return SN_EINVAL;
	if (unlink(path) != 0 && errno != ENOENT) {
		seterr(err, es, "cannot remove %s: %s", path, strerror(errno));
		return SN_EIO;
	}
	fsync_dir(s->dir, s->no_sync);
	for (size_t i = 0; i < s->n_prev; i++)
		X509_free(s->prev[i]);
	s->n_prev = 0;
	if (rebuild_bundle(s) != 0) {
		seterr(err, es, "out of memory");
		return SN_ENOMEM;
	}
	return 0;
}

int sn_ca_service_issue_for(struct sn_ca_service *s, const char *ns, const char *sa, const char *csr_pem,
			    size_t csr_len, time_t now, struct sn_ca_issued *out, struct sn_ca_refusal *why)
{
	unsigned char *der = NULL;
	long der_len = 0;
	X509_REQ *req = NULL;
	int rc = read_csr(csr_pem, csr_len, &der, &der_len, &req, why);
	if (rc != 0)
		return rc;
	rc = sign(s, req, ns, sa, now ? now : time(NULL), out, why);
	X509_REQ_free(req);
	OPENSSL_free(der);
	return rc;
}

/* ---- GET /api/v1/ca ----------------------------------------------------- */

static void out_cert(struct sn_out *o, X509 *c, time_t now, int with_pem)
{
	uint8_t fp[32];
	char fph[65], nb[32], na[32], *subj;
	time_t tnb = asn1_time(X509_get0_notBefore(c)), tna = asn1_time(X509_get0_notAfter(c));
	sn_cert_sha256(c, fp);
	sn_hex(fp, 32, fph);
	time_str(tnb, nb, sizeof(nb));
	time_str(tna, na, sizeof(na));
	subj = X509_NAME_oneline(X509_get_subject_name(c), NULL, 0);
	sn_out_cstr(o, "{\"subject\":");
	sn_out_json_cstr(o, subj ? subj : "?");
	OPENSSL_free(subj);
	sn_out_printf(o, ",\"sha256\":\"%s\",\"notBefore\":\"%s\",\"notAfter\":\"%s\",\"notAfterUnix\":%lld,"
			 "\"expiresInSeconds\":%lld", fph, nb, na, (long long)tna, (long long)(tna - now));
	if (with_pem) {
		BIO *bio = BIO_new(BIO_s_mem());
		char *p;
		long n;
		if (bio != NULL && PEM_write_bio_X509(bio, c) == 1 && (n = BIO_get_mem_data(bio, &p)) > 0) {
			sn_out_cstr(o, ",\"pem\":");
			sn_out_json_str(o, p, (size_t)n);
		}
		BIO_free(bio);
	}
	sn_out_cstr(o, "}");
}

void sn_ca_service_render(const struct sn_ca_service *s, struct sn_out *o, time_t now)
{
	now = now ? now : time(NULL);
	sn_out_cstr(o, "{\"trustDomain\":");
	sn_out_json_cstr(o, sn_ca_trust_domain(s->ca));
	sn_out_printf(o, ",\"source\":\"%s\",\"roots\":[", s->provided ? "provided" : "generated");
	for (size_t i = 0; i < sn_trust_bundle_count(s->bundle); i++) {
		if (i)
			sn_out_cstr(o, ",");
		out_cert(o, sn_trust_bundle_get(s->bundle, i), now, 1);
	}
	sn_out_cstr(o, "],\"issuer\":");
	out_cert(o, sn_ca_issuer(s->ca), now, 0);
	sn_out_cstr(o, ",\"bundle\":");
	sn_out_json_cstr(o, s->bundle_pem);
	sn_out_cstr(o, ",\"chain\":");
	sn_out_json_cstr(o, s->chain_pem);
	sn_out_printf(o, ",\"leafTtlSeconds\":%u,\"tokenTtlMaxSeconds\":%u,\"spentTokens\":%zu,"
			 "\"rotation\":{\"phase\":\"%s\",\"bundleVersion\":%llu,\"issuerGeneration\":%llu",
		      s->leaf_ttl ? s->leaf_ttl : (unsigned)SN_SVID_DEFAULT_TTL, SN_CA_TOKEN_TTL_MAX, s->n_spent,
		      sn_ca_phase_str(sn_ca_service_phase(s)), (unsigned long long)s->bundle_version,
		      (unsigned long long)s->issuer_gen);
	if (s->next != NULL) {
		sn_out_cstr(o, ",\"next\":");
		out_cert(o, sn_ca_root(s->next), now, 0);
	}
	sn_out_cstr(o, ",\"previous\":[");
	for (size_t i = 0; i < s->n_prev; i++) {
		if (i)
			sn_out_cstr(o, ",");
		out_cert(o, s->prev[i], now, 0);
	}
	sn_out_cstr(o, "]}");
	/* Tokens pinning crossSigned.by's sha256 are honoured until its notAfter. */
	sn_out_cstr(o, ",\"crossSigned\":");
	if (s->cross != NULL) {
		sn_out_cstr(o, "{\"certificate\":");
		out_cert(o, s->cross, now, 0);
		sn_out_cstr(o, ",\"by\":");
		out_cert(o, s->cross_by, now, 0);
		sn_out_cstr(o, "}");
	} else {
		sn_out_cstr(o, "null");
	}
	sn_out_cstr(o, "}");
}
