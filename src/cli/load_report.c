/* sinew load: the report, as text for people and JSON for scripts.
 * Latencies are kept in nanoseconds and printed in milliseconds (text) or
 * microseconds with three decimals (JSON). No locale: printf's %f uses
 * the C locale's '.' because nothing here calls setlocale. */
#include <inttypes.h>
#include <stdio.h>

#include "sinew/common.h"
#include "sinew/json.h"
#include "load.h"

static const struct {
	const char *name;
	double p;
} percentiles[] = {
	{ "p50", 50.0 }, { "p90", 90.0 }, { "p99", 99.0 }, { "p99.9", 99.9 },
};

static double rate(const struct sn_load_result *r)
{
	return r->elapsed_ns ? (double)r->completed * 1e9 / (double)r->elapsed_ns : 0.0;
}

static void text_hist(FILE *f, const char *title, const struct sn_hist *h)
{
	fprintf(f, "%s\n", title);
	if (h->total == 0) {
		fprintf(f, "  (no responses)\n");
		return;
	}
	fprintf(f, " ");
	for (size_t i = 0; i < SN_ARRAY_LEN(percentiles); i++)
		fprintf(f, " %s %.3f", percentiles[i].name,
			(double)sn_hist_percentile(h, percentiles[i].p) / 1e6);
	fprintf(f, "  max %.3f  (mean %.3f, min %.3f) ms\n", (double)h->max / 1e6,
		sn_hist_mean(h) / 1e6, (double)h->min / 1e6);
}

void sn_load_report_text(FILE *f, const struct sn_load_opts *o, const struct sn_load_result *r)
{
	uint64_t errors = sn_load_errors_total(r);

	fprintf(f, "sinew load %s %s: %u connections, ", o->method, o->url, o->connections);
	if (o->h2_streams > 0)
		fprintf(f, "HTTP/2 with %u streams each, ", o->h2_streams);
	if (o->qps > 0)
		fprintf(f, "target %.1f req/s", o->qps);
	else
		fprintf(f, "as fast as possible");
	fprintf(f, "%s\n", r->interrupted ? " (interrupted)" : "");
	fprintf(f, "requests  %" PRIu64 " scheduled, %" PRIu64 " sent, %" PRIu64 " completed in %.3f s\n",
		r->scheduled, r->sent, r->completed, (double)r->elapsed_ns / 1e9);
	fprintf(f, "rate      %.1f req/s achieved", rate(r));
	if (o->qps > 0)
		fprintf(f, " (%.2f %% of target)", rate(r) * 100.0 / o->qps);
	fprintf(f, "\nstatus   ");
	int any = 0;
	for (int s = 100; s < 600; s++) {
		if (r->status[s]) {
			fprintf(f, " %d: %" PRIu64, s, r->status[s]);
			any = 1;
		}
	}
	if (r->status_other) {
		fprintf(f, " other: %" PRIu64, r->status_other);
		any = 1;
	}
	fprintf(f, "%s\nerrors    %" PRIu64, any ? "" : " (none)", errors);
	if (errors) {
		const char *sep = " (";
		for (int e = 0; e < SN_LOAD_ERR_COUNT; e++) {
			if (r->errors[e]) {
				fprintf(f, "%s%s %" PRIu64, sep, sn_load_err_str(e), r->errors[e]);
				sep = ", ";
			}
		}
		fprintf(f, ")");
	}
	fprintf(f, "\n");
	text_hist(f, "latency from scheduled send (corrected for coordinated omission), ms:", &r->latency);
	text_hist(f, "service time from actual send, ms:", &r->service);
	if (o->qps > 0)
		fprintf(f, "send lag  p99 %.3f ms, max %.3f ms; most waiting for a connection: %" PRIu64 "\n",
			(double)sn_hist_percentile(&r->send_lag, 99.0) / 1e6, (double)r->send_lag.max / 1e6,
			r->max_backlog);
	fprintf(f, "bytes     %" PRIu64 " sent, %" PRIu64 " received; %" PRIu64 " connects\n",
		r->bytes_sent, r->bytes_received, r->connects);
}

static void json_hist(FILE *f, const char *key, const struct sn_hist *h)
{
	fprintf(f, "  \"%s\": {\"count\": %" PRIu64, key, h->total);
	for (size_t i = 0; i < SN_ARRAY_LEN(percentiles); i++)
		fprintf(f, ", \"%s\": %.3f", percentiles[i].name,
			(double)sn_hist_percentile(h, percentiles[i].p) / 1e3);
	fprintf(f, ", \"max\": %.3f, \"min\": %.3f, \"mean\": %.3f}",
		(double)h->max / 1e3, h->total ? (double)h->min / 1e3 : 0.0, sn_hist_mean(h) / 1e3);
}

/* The URL and method were validated (token, no quotes or controls) except
 * the URL's path; escape the two characters JSON cares about. */
void sn_load_report_json(FILE *f, const struct sn_load_opts *o, const struct sn_load_result *r)
{
	fprintf(f, "{\n  \"url\": ");
	sn_json_fput_cstr(f, o->url);
	fprintf(f, ",\n  \"method\": ");
	sn_json_fput_cstr(f, o->method);
	fprintf(f, ",\n  \"connections\": %u,\n  \"h2_streams\": %u,\n  \"target_qps\": %.3f,\n", o->connections,
		o->h2_streams, o->qps);
	fprintf(f, "  \"duration_s\": %.3f,\n  \"body_size\": %zu,\n", (double)o->duration_ns / 1e9, o->body_size);
	fprintf(f, "  \"interrupted\": %s,\n", r->interrupted ? "true" : "false");
	fprintf(f, "  \"scheduled\": %" PRIu64 ",\n  \"sent\": %" PRIu64 ",\n  \"completed\": %" PRIu64 ",\n",
		r->scheduled, r->sent, r->completed);
	fprintf(f, "  \"elapsed_s\": %.6f,\n  \"achieved_qps\": %.3f,\n", (double)r->elapsed_ns / 1e9, rate(r));
	fprintf(f, "  \"errors_total\": %" PRIu64 ",\n  \"errors\": {", sn_load_errors_total(r));
	for (int e = 0; e < SN_LOAD_ERR_COUNT; e++)
		fprintf(f, "%s\"%s\": %" PRIu64, e ? ", " : "", sn_load_err_str(e), r->errors[e]);
	fprintf(f, "},\n  \"status\": {");
	const char *sep = "";
	for (int s = 100; s < 600; s++) {
		if (r->status[s]) {
			fprintf(f, "%s\"%d\": %" PRIu64, sep, s, r->status[s]);
			sep = ", ";
		}
	}
	if (r->status_other)
		fprintf(f, "%s\"other\": %" PRIu64, sep, r->status_other);
	fprintf(f, "},\n");
	json_hist(f, "latency_us", &r->latency);
	fprintf(f, ",\n");
	json_hist(f, "service_us", &r->service);
	fprintf(f, ",\n");
	json_hist(f, "send_lag_us", &r->send_lag);
	fprintf(f, ",\n  \"max_backlog\": %" PRIu64 ",\n  \"connects\": %" PRIu64 ",\n", r->max_backlog, r->connects);
	fprintf(f, "  \"bytes_sent\": %" PRIu64 ",\n  \"bytes_received\": %" PRIu64 "\n}\n",
		r->bytes_sent, r->bytes_received);
}
