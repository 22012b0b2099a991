/* Fuzz target: YAML applied through sinewd's admission, in process
 * (sn_admit_apply, src/control/admission.c), against a real store in a
 * temp dir that already holds bookinfo-like resources. So besides the
 * loader and translation that fuzz_config_yaml covers, the code only an
 * apply reaches runs too: resources that replace stored ones (same or
 * changed text), duplicates within one apply, VirtualServices shadowed by
 * stored ones for the same host, refusals of one resource with the others
 * re-translated, statuses of the whole store, persistence. After each
 * input the store is put back (fz_store_reset), so inputs do not depend
 * on one another. Dictionary: fuzz/control_admission.dict. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sinew/control.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* tests/config/bookinfo-registry.yaml, shortened, plus routing */
static const char BASE[] =
	"apiVersion: v1\nkind: Service\nmetadata: {name: productpage, labels: {app: productpage}}\n"
	"spec:\n  selector: {app: productpage}\n  ports:\n  - {name: http, port: 9080}\n"
	"---\napiVersion: v1\nkind: Service\nmetadata: {name: reviews}\nspec:\n  selector: {app: reviews}\n"
	"  ports:\n  - {name: http, port: 9080}\n"
	"---\napiVersion: v1\nkind: Service\nmetadata: {name: ratings}\nspec:\n  selector: {app: ratings}\n"
	"  ports:\n  - {name: http, port: 9080}\n"
	"---\napiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: reviews-v1}\n"
	"spec:\n  address: 127.0.10.3\n  labels: {app: reviews, version: v1}\n  serviceAccount: bookinfo-reviews\n"
	"---\napiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: reviews-v2}\n"
	"spec:\n  address: 127.0.10.4\n  labels: {app: reviews, version: v2}\n  serviceAccount: bookinfo-reviews\n"
	"---\napiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: ratings-v1}\n"
	"spec: {address: 127.0.10.6, labels: {app: ratings, version: v1}}\n"
	"---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: reviews}\n"
	"spec:\n  host: reviews\n  subsets:\n  - {name: v1, labels: {version: v1}}\n  - {name: v2, labels: {version: v2}}\n"
	"---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: reviews}\n"
	"spec:\n  hosts: [reviews]\n  http:\n  - match: [{headers: {end-user: {exact: jason}}}]\n"
	"    route: [{destination: {host: reviews, subset: v2}}]\n  - route: [{destination: {host: reviews, subset: v1}}]\n"
	"---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: ratings}\n"
	"spec:\n  selector: {matchLabels: {app: ratings}}\n  action: ALLOW\n"
	"  rules:\n  - from: [{source: {principals: [cluster.local/ns/default/sa/bookinfo-reviews]}}]\n";

static struct {
	int ready;
	struct sn_store st;
	uint64_t base_revision;
} F;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sn_apply_report rep;

	if (size > (1u << 20))
		return 0;
	if (!F.ready) {
		fz_quiet();
		fz_store_open(&F.st, fz_tempdir("ctladm"), BASE);
		F.base_revision = F.st.revision;
		F.ready = 1;
	}
	sn_admit_apply(&F.st, "fuzz.yaml", (const char *)data, size, &rep);
	char buf[512];
	for (size_t i = 0; i < rep.n; i++)
		for (size_t k = 0; k < rep.v[i].diags.n; k++)
			sn_diag_format(&rep.v[i].diags.v[k], buf, sizeof(buf));
	sn_apply_report_free(&rep);
	fz_store_reset(&F.st, &F.base_revision, BASE);
	return 0;
}
