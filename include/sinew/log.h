#ifndef SINEW_LOG_H
#define SINEW_LOG_H

/* Leveled logging to stderr. The level is checked before formatting, so a
 * disabled sn_log costs one comparison. Lines carry a timestamp, the level
 * and, by convention, "conn=ID" and what the connection was doing. Never log
 * secrets or bodies. */

#include <stdarg.h>

enum sn_log_level {
	SN_LOG_ERROR = 0,
	SN_LOG_WARN = 1,
	SN_LOG_INFO = 2,
	SN_LOG_DEBUG = 3,
	SN_LOG_TRACE = 4,
};

extern int sn_log_current_level;

/* Sets the level from a name: error, warn, info, debug, trace.
 * Returns 0, or SN_EINVAL for an unknown name. */
int sn_log_set_level_name(const char *name);
void sn_log_set_level(enum sn_log_level level);
const char *sn_log_level_str(enum sn_log_level level);

void sn_log_write(enum sn_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#define sn_log(level, ...)                                   \
	do {                                                 \
		if ((int)(level) <= sn_log_current_level)    \
			sn_log_write((level), __VA_ARGS__);  \
	} while (0)

#endif
