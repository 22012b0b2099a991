#ifndef SINEW_CONTROL_ADMISSION_INTERNAL_H
#define SINEW_CONTROL_ADMISSION_INTERNAL_H

/* Private to src/control: an apply in two halves, so that the half that
 * runs the config code on untrusted input (decide) can run in a child
 * process (admit_isolate.c) and the half that changes the store (commit)
 * in sinewd. */

#include "sinew/control.h"

/* One resource to persist, owned. item indexes the decision's report. */
struct sn__admit_put {
	long item;
	enum sn_resource_kind kind;
	char *api_version, *ns, *name, *source;
	int line;
	char *text;
	size_t len;
};

/* What an apply decided, before anything is stored. */
struct sn__admit_decision {
	struct sn_apply_report rep;    /* unsorted; results before storing */
	struct sn__admit_put *puts;    /* the accepted resources */
	size_t n_puts;
	struct sn_diags eval;          /* the translation's diagnostics: every status */
	int rc;                        /* 0 or SN_ENOMEM */
};

/* How decide treats each resource of the body (in document order). */
enum { SN__ADMIT_ADMIT = 0, SN__ADMIT_SKIP = 1, SN__ADMIT_CRASHED = 2 };

/* Called once the body is loaded, before anything is translated. */
typedef void (*sn__admit_loaded_cb)(void *user, const struct sn_config_set *body);

/* Loads text, decides per resource and translates with the store; changes
 * nothing. mark/n_mark: see the enum (NULL: admit all). Fills dec (free
 * it with sn__admit_decision_free, or hand it to sn__admit_commit).
 * Returns dec->rc. */
int sn__admit_decide(const struct sn_store *st, const char *source, const char *text, size_t len,
		     const unsigned char *mark, size_t n_mark, sn__admit_loaded_cb on_loaded, void *user,
		     struct sn__admit_decision *dec);
/* Persists dec (which it takes and frees), updates every status, and
 * moves the sorted report to out. Returns 0, SN_EIO or SN_ENOMEM. */
int sn__admit_commit(struct sn_store *st, struct sn__admit_decision *dec, struct sn_apply_report *out);
void sn__admit_decision_free(struct sn__admit_decision *dec);
/* The source name as reports show it (control characters replaced). */
void sn__admit_sanitize_source(const char *in, char *out, size_t size);

#endif
