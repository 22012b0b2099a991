/* Leveled logging to stderr. */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sinew/common.h"
#include "sinew/log.h"

int sn_log_current_level = SN_LOG_INFO;

static const char *const level_names[] = { "error", "warn", "info", "debug", "trace" };

const char *sn_log_level_str(enum sn_log_level level)
{
	if ((unsigned)level >= SN_ARRAY_LEN(level_names))
		return "?";
	return level_names[level];
}

void sn_log_set_level(enum sn_log_level level)
{
	sn_log_current_level = (int)level;
}

int sn_log_set_level_name(const char *name)
{
	for (size_t i = 0; i < SN_ARRAY_LEN(level_names); i++) {
		if (strcmp(name, level_names[i]) == 0) {
			sn_log_current_level = (int)i;
			return 0;
		}
	}
	return SN_EINVAL;
}

void sn_log_write(enum sn_log_level level, const char *fmt, ...)
{
	char line[2048];
	struct timespec ts;
	struct tm tm;
	size_t n;
	va_list ap;
	int r;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
	r = snprintf(line + n, sizeof(line) - n, ".%03ldZ %-5s ", ts.tv_nsec / 1000000,
		     sn_log_level_str(level));
	if (r > 0)
		n += (size_t)r;
	va_start(ap, fmt);
	r = vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
	va_end(ap);
	if (r > 0)
		n += SN_MIN((size_t)r, sizeof(line) - n - 2);
	line[n++] = '\n';
	/* One write per line so lines from several threads do not interleave. */
	ssize_t w = write(STDERR_FILENO, line, n);
	(void)w;
}
