/* String matches (Istio StringMatch) and regexes. Istio regexes are RE2;
 * Sinew compiles them as POSIX extended regexes after rewriting the RE2
 * spellings that POSIX lacks (\d, (?:...), lazy quantifiers, a leading
 * (?i)). A regex matches the whole value, as in Istio. */
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_internal.h"

static int append(char *out, size_t cap, size_t *o, const char *s)
{
	size_t n = strlen(s);
	if (*o + n >= cap)
		return -1;
	memcpy(out + *o, s, n);
	*o += n;
	out[*o] = '\0';
	return 0;
}

/* RE2 → POSIX ERE for the common cases. Returns 0, or -1 with err set. */
/* Repetition, bounded as RE2 bounds it (Istio's regexes are RE2): no
 * repetition of a repetition ("a++", "a*{2}"; a '?' after one is lazy),
 * counts up to 1000, and the pattern's size once every repetition is
 * expanded (what glibc's regcomp builds: "x+" is two copies, "x{2,5}"
 * five) at most REGEX_MAX_EXPANDED. Without this a short pattern made
 * regcomp take gigabytes (":+++…+" doubles its tree per '+'; found by
 * fuzz_config_yaml). */
#define REGEX_MAX_COUNT 1000
#define REGEX_MAX_EXPANDED 20000
#define REGEX_MAX_GROUPS 64

static int count_at(const char *p, unsigned long *hi, size_t *used)
{
	/* {n}, {n,} or {n,m}: its largest count and its length, else 0 */
	const char *q = p + 1;
	unsigned long n = 0, m = 0;
	int dn = 0, dm = 0, comma = 0;
	while (*q >= '0' && *q <= '9' && dn < 6)
		n = n * 10 + (unsigned long)(*q++ - '0'), dn++;
	if (dn == 0)
		return 0;
	if (*q == ',') {
		comma = 1;
		q++;
		while (*q >= '0' && *q <= '9' && dm < 6)
			m = m * 10 + (unsigned long)(*q++ - '0'), dm++;
	}
	if (*q != '}')
		return 0;
	*hi = comma && dm ? (m > n ? m : n) : n + (comma ? 1 : 0);
	*used = (size_t)(q - p) + 1;
	return 1;
}

static int repetition_ok(const char *src, char *err, size_t errlen)
{
	unsigned long total[REGEX_MAX_GROUPS + 1] = { 0 }, last[REGEX_MAX_GROUPS + 1] = { 0 };
	/* counted repetitions nested: of the last atom, and the most in a group */
	unsigned long counted[REGEX_MAX_GROUPS + 1] = { 0 }, most[REGEX_MAX_GROUPS + 1] = { 1 };
	int depth = 0, after_rep = 0;   /* 1: just after a repetition, 2: after its lazy '?' */
	for (const char *p = src; *p; p++) {
		unsigned long mult = 0, hi;
		size_t used = 1;
		if (*p == '*' || *p == '?')
			mult = 1;
		else if (*p == '+')
			mult = 2;
		else if (*p == '{' && count_at(p, &hi, &used)) {
			if (hi > REGEX_MAX_COUNT) {
				snprintf(err, errlen, "a repetition count above %d (RE2's limit)", REGEX_MAX_COUNT);
				return -1;
			}
			mult = hi ? hi : 1;
			if (last[depth] != 0 && after_rep == 0) {
				counted[depth] *= mult;
				if (counted[depth] > REGEX_MAX_COUNT) {
					snprintf(err, errlen, "repetition counts nested to more than %d (RE2's limit)",
						 REGEX_MAX_COUNT);
					return -1;
				}
				if (counted[depth] > most[depth])
					most[depth] = counted[depth];
			}
		}
		if (mult) {
			if (after_rep == 1 && *p == '?') {
				after_rep = 2;   /* lazy */
				continue;
			}
			if (after_rep || last[depth] == 0) {
				snprintf(err, errlen, "bad repetition operator at \"%.8s\": a repetition must follow "
					 "something to repeat, and cannot be repeated itself", p);
				return -1;
			}
			total[depth] += last[depth] * (mult - 1);
			last[depth] *= mult;
			p += used - 1;
			after_rep = 1;
		} else {
			unsigned long atom = 1;
			after_rep = 0;
			if (*p == '\\' && p[1]) {
				p++;
			} else if (*p == '[') {
				const char *q = p + 1;
				if (*q == '^')
					q++;
				if (*q == ']')
					q++;
				while (*q && *q != ']')
					q += (*q == '\\' && q[1]) ? 2 : 1;
				if (*q == '\0')
					break;   /* re2_to_posix reports it */
				p = q;
			} else if (*p == '(') {
				if (p[1] == '?' && p[2] != ':') {
					/* a flags group, (?i): no atom (re2_to_posix judges it) */
					const char *q = strchr(p, ')');
					if (q == NULL)
						break;
					p = q;
					continue;
				}
				if (p[1] == '?')
					p += 2;   /* (?:...) groups like (...) */
				if (depth == REGEX_MAX_GROUPS) {
					snprintf(err, errlen, "groups nested deeper than %d", REGEX_MAX_GROUPS);
					return -1;
				}
				depth++;
				total[depth] = last[depth] = 0;
				most[depth] = 1;
				continue;
			} else if (*p == ')' && depth > 0) {
				atom = total[depth];
				unsigned long inner = most[depth];
				depth--;
				last[depth] = atom;
				total[depth] += atom;
				counted[depth] = inner;
				if (inner > most[depth])
					most[depth] = inner;
				goto check;
			} else if (*p == '|') {
				last[depth] = 0;
				continue;
			}
			last[depth] = atom;
			total[depth] += atom;
			counted[depth] = 1;
		}
check:
		if (total[depth] > REGEX_MAX_EXPANDED || last[depth] > REGEX_MAX_EXPANDED) {
			snprintf(err, errlen, "the regex is too large once its repetitions are expanded (more than %d "
				 "elements); simplify it", REGEX_MAX_EXPANDED);
			return -1;
		}
	}
	return 0;
}

/* RE2 syntax into POSIX ERE, anchored as a whole-value match; or, with
 * groups (a rewrite's pattern), unanchored, and groups[k] the POSIX group
 * that is the source's capture group k (1..*n_groups: a (?:...) becomes a
 * POSIX group too, which shifts the numbers). */
static int re2_to_posix(const char *src, char *out, size_t cap, int *icase, char *err, size_t errlen,
			unsigned char *groups, size_t *n_groups)
{
	size_t o = 0;
	int in_bracket = 0;
	const char *p = src;
	unsigned posix_groups = 0;

	out[0] = '\0';
	if (!strncmp(p, "(?i)", 4)) {
		*icase = 1;
		p += 4;
	}
	if (groups == NULL && append(out, cap, &o, "^(") < 0)
		goto toolong;
	if (groups != NULL)
		*n_groups = 0;
	for (; *p; p++) {
		char tmp[2] = { *p, 0 };
		if (in_bracket) {
			if (*p == ']' && !(in_bracket == 1)) {
				in_bracket = 0;
				if (append(out, cap, &o, "]") < 0)
					goto toolong;
				continue;
			}
			in_bracket++;
			if (*p == '\\' && p[1]) {
				p++;
				const char *rep = NULL;
				char lit[2] = { *p, 0 };
				switch (*p) {
				case 'd': rep = "0-9"; break;
				case 's': rep = "[:space:]"; break;
				case 'w': rep = "[:alnum:]_"; break;
				case ']':
				case '\\':
				case '^':
					snprintf(err, errlen, "escaped '%c' inside [...] is not supported; reorder the class", *p);
					return -1;
				default: rep = lit; break;
				}
				if (append(out, cap, &o, rep) < 0)
					goto toolong;
				continue;
			}
			if (append(out, cap, &o, tmp) < 0)
				goto toolong;
			continue;
		}
		if (*p == '[') {
			in_bracket = 1;
			if (append(out, cap, &o, "[") < 0)
				goto toolong;
			if (p[1] == '^') {
				p++;
				if (append(out, cap, &o, "^") < 0)
					goto toolong;
			}
			continue;
		}
		if (*p == '\\' && p[1]) {
			p++;
			const char *rep = NULL;
			char esc[3] = { '\\', *p, 0 };
			switch (*p) {
			case 'd': rep = "[0-9]"; break;
			case 'D': rep = "[^0-9]"; break;
			case 'A': case 'z': case 'p': case 'P': case 'Q': case 'E': case 'C':
				snprintf(err, errlen, "\\%c is not supported", *p);
				return -1;
			case '1': case '2': case '3': case '4': case '5': case '6': case '7': case '8': case '9':
				/* POSIX would take it as a backreference: slow, and not RE2 */
				snprintf(err, errlen, "\\%c (a backreference) is not RE2 syntax", *p);
				return -1;
			default: rep = esc; break;
			}
			if (append(out, cap, &o, rep) < 0)
				goto toolong;
			continue;
		}
		if (*p == '(' && p[1] == '?') {
			if (p[2] == ':') {
				p += 2;
				posix_groups++;
				if (append(out, cap, &o, "(") < 0)
					goto toolong;
				continue;
			}
			snprintf(err, errlen, "(?%c...) groups are not supported", p[2] ? p[2] : ' ');
			return -1;
		}
		/* Lazy quantifiers: whole-value matching does not depend on
		 * greediness, so "*?" is "*"; what a rewrite captures does. */
		if (*p == '?' && p > src && (p[-1] == '*' || p[-1] == '+' || p[-1] == '?' || p[-1] == '}')) {
			if (groups != NULL) {
				snprintf(err, errlen, "lazy quantifiers (*?, +?, ?\?) are not supported in a rewrite's "
					 "pattern (POSIX matching is greedy)");
				return -1;
			}
			continue;
		}
		if (*p == '(') {
			posix_groups++;
			if (groups != NULL) {
				if (*n_groups == 9) {
					snprintf(err, errlen, "more than 9 capture groups");
					return -1;
				}
				groups[++*n_groups] = (unsigned char)posix_groups;
			}
		}
		if (append(out, cap, &o, tmp) < 0)
			goto toolong;
	}
	if (in_bracket) {
		snprintf(err, errlen, "unterminated [ ]");
		return -1;
	}
	if (groups == NULL && append(out, cap, &o, ")$") < 0)
		goto toolong;
	return 0;
toolong:
	snprintf(err, errlen, "regex too long");
	return -1;
}

/* cfg_regex_compile, or with groups a rewrite's pattern (unanchored,
 * with submatches: re2_to_posix). */
static int regex_compile(const char *src, int icase, regex_t **out, unsigned char *groups, size_t *n_groups,
			 char *err, size_t errlen)
{
	size_t len = strlen(src);
	if (len > CFG_MAX_REGEX) {
		snprintf(err, errlen, "regex is %zu bytes, more than the limit of %d", len, CFG_MAX_REGEX);
		return SN_EINVAL;
	}
	size_t cap = len * 12 + 16;
	char *posix = malloc(cap);
	regex_t *re = malloc(sizeof(*re));
	if (posix == NULL || re == NULL) {
		free(posix);
		free(re);
		snprintf(err, errlen, "out of memory");
		return SN_ENOMEM;
	}
	if (repetition_ok(src, err, errlen) < 0 ||
	    re2_to_posix(src, posix, cap, &icase, err, errlen, groups, n_groups) < 0) {
		free(posix);
		free(re);
		return SN_EINVAL;
	}
	int rc = regcomp(re, posix, REG_EXTENDED | (groups ? 0 : REG_NOSUB) | (icase ? REG_ICASE : 0));
	free(posix);
	if (rc != 0) {
		char buf[200];
		regerror(rc, re, buf, sizeof(buf));
		snprintf(err, errlen, "%s", buf);
		/* glibc frees partial state on failure */
		free(re);
		return SN_EINVAL;
	}
	*out = re;
	return 0;
}

int cfg_regex_compile(const char *src, int icase, regex_t **out, char *err, size_t errlen)
{
	return regex_compile(src, icase, out, NULL, NULL, err, errlen);
}

int cfg_regex_compile_rewrite(const char *src, const char *sub, regex_t **out, unsigned char groups[10], char *err,
			      size_t errlen)
{
	size_t n = 0;
	groups[0] = 0;
	char why[160];
	int rc = regex_compile(src, 0, out, groups, &n, why, sizeof(why));
	if (rc != 0) {
		snprintf(err, errlen, "match does not compile: %s", why);
		return rc;
	}
	for (const char *p = sub; *p; p++) {
		if (*p != '\\')
			continue;
		p++;
		if (*p >= '0' && *p <= '9' && (size_t)(*p - '0') > n) {
			snprintf(err, errlen, "rewrite: \\%c names a capture group the pattern does not have (it has %zu)",
				 *p, n);
		} else if (*p == '\\' || (*p >= '0' && *p <= '9')) {
			continue;
		} else {
			snprintf(err, errlen, "rewrite: '\\' is \\0 to \\9 (a capture group) or \\\\ (a backslash)");
		}
		regfree(*out);
		free(*out);
		*out = NULL;
		return SN_EINVAL;
	}
	return 0;
}

int sn_str_match_test(const struct sn_str_match *m, struct sn_str s)
{
	const char *p = s.p ? s.p : "";

	switch (m->kind) {
	case SN_MATCH_ANY:
	case SN_MATCH_PRESENT:
		return 1;
	case SN_MATCH_EXACT: {
		size_t n = strlen(m->value);
		if (n != s.len)
			return 0;
		return m->ignore_case ? sn_str_ieq(s, sn_str_make(m->value, n))
				      : (n == 0 || memcmp(p, m->value, n) == 0);
	}
	case SN_MATCH_PREFIX: {
		size_t n = strlen(m->value);
		if (n > s.len)
			return 0;
		return m->ignore_case ? sn_str_ieq(sn_str_make(p, n), sn_str_make(m->value, n))
				      : (n == 0 || memcmp(p, m->value, n) == 0);
	}
	case SN_MATCH_PATH_PREFIX: {
		size_t n = strlen(m->value);
		if (n > s.len || (n > 1 && n < s.len && p[n] != '/'))
			return 0;
		return n == 0 || memcmp(p, m->value, n) == 0;
	}
	case SN_MATCH_REGEX: {
		if (m->re == NULL)
			return 0;
		/* A NUL-terminated copy: views (an HTTP/2 header's value in its
		 * codec's buffer) need not be followed by a NUL, and while
		 * glibc's REG_STARTEND stays within the view, a sanitizer's
		 * regexec runs strlen past it. Views are bounded by the head
		 * limits; a short one is copied on the stack. */
		char small[512], *z = s.len < sizeof(small) ? small : malloc(s.len + 1);
		if (z == NULL)
			return 0;
		memcpy(z, p, s.len);
		z[s.len] = '\0';
		int r = regexec(m->re, z, 0, NULL, 0) == 0;
		if (z != small)
			free(z);
		return r;
	}
	}
	return 0;
}

int cfg_parse_string_match(struct cfg_ctx *c, const struct yn *v, int allow_present, struct sn_str_match *out)
{
	int r = cfg_want_map(c, v);
	memset(out, 0, sizeof(*out));
	if (r < 0)
		return -1;
	if (r == 1 || v->n == 0) {
		if (allow_present) {
			out->kind = SN_MATCH_PRESENT;
			return 0;
		}
		cfg_err(c, v, "empty match; set one of exact, prefix or regex");
		return -1;
	}
	int set = 0, bad = 0;
	for (size_t i = 0; i < v->n; i++) {
		const char *k = v->keys[i]->s;
		enum sn_str_match_kind kind;
		if (!strcmp(k, "exact"))
			kind = SN_MATCH_EXACT;
		else if (!strcmp(k, "prefix"))
			kind = SN_MATCH_PREFIX;
		else if (!strcmp(k, "regex"))
			kind = SN_MATCH_REGEX;
		else {
			size_t pl = cfg_path_push(c, ".%s", k);
			cfg_warn_unknown(c, v->keys[i]);
			cfg_path_pop(c, pl);
			continue;
		}
		size_t pl = cfg_path_push(c, ".%s", k);
		if (set++) {
			cfg_err(c, v->keys[i], "set only one of exact, prefix or regex");
			bad = 1;
		} else {
			char *s = NULL;
			int g = cfg_get_str(c, v->items[i], kind == SN_MATCH_REGEX ? CFG_MAX_REGEX : CFG_MAX_STR, &s);
			if (g < 0) {
				bad = 1;
			} else {
				out->kind = kind;
				out->value = s ? s : sn_arena_strdup(c->a, "");
				if (kind == SN_MATCH_REGEX) {
					regex_t *re = NULL;
					char err[256];
					if (cfg_regex_compile(out->value, 0, &re, err, sizeof(err)) != 0) {
						cfg_err(c, v->items[i],
							"regex \"%.200s\" does not compile: %s; Sinew uses POSIX "
							"extended regexes with RE2's \\d and (?:...)",
							out->value, err);
						bad = 1;
					} else {
						regfree(re);
						free(re);
					}
				}
			}
		}
		cfg_path_pop(c, pl);
	}
	if (!set && !bad) {
		if (allow_present) {
			out->kind = SN_MATCH_PRESENT;
			return 0;
		}
		cfg_err(c, v, "set one of exact, prefix or regex");
		return -1;
	}
	return bad ? -1 : 0;
}
