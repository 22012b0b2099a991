/* JSON input — control-link messages, sinewd's API bodies, answers the CLI
 * reads — parsed by libfyaml (JSON is YAML) with its diagnostics kept
 * away from stderr: a peer's malformed message must not write to sinewd's
 * or the proxy's log (fuzz_control_message found every bad message printed
 * there even with FYPCF_QUIET). The caller reports the failure itself. */
#include <libfyaml.h>

#include "sinew/config.h"

struct fy_document *sn_json_parse(const char *text, size_t len)
{
	struct fy_diag_cfg dcfg;
	fy_diag_cfg_default(&dcfg);
	dcfg.fp = NULL;
	dcfg.output_fn = NULL;
	dcfg.colorize = false;
	dcfg.level = FYET_ERROR;
	struct fy_diag *diag = fy_diag_create(&dcfg);
	if (diag == NULL)
		return NULL;
	struct fy_parse_cfg cfg = { .flags = FYPCF_QUIET, .diag = diag };
	struct fy_document *doc = fy_document_build_from_string(&cfg, text, len);
	fy_diag_unref(diag);   /* the document holds its own reference */
	return doc;
}
