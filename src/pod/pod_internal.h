#ifndef SINEW_POD_INTERNAL_H
#define SINEW_POD_INTERNAL_H

/* Shared inside src/pod/ only. */

#include <stddef.h>

/* "/run/netns/NAME" into buf; SN_EINVAL for a name with '/' or too long. */
int sn_pod_netns_path(const char *netns, char *buf, size_t size);
/* Runs fn(arg) on a new thread that has entered netns; returns fn's value
 * (errno from the thread), or SN_EIO when the namespace cannot be entered. */
int sn_pod_in_netns(const char *netns, int (*fn)(void *arg), void *arg);
/* sn_pod_exec that turns a non-zero status into SN_EIO and a message in err
 * naming the command and its output. */
int sn_pod_exec_checked(char *const argv[], const char *input, size_t input_len, char *err, size_t err_size);

/* DIR/NAME replaced by text, atomically (state.c). */
int sn__pod_write_atomic(const char *dir, const char *name, const char *text, size_t len, char *err,
			 size_t err_size);
/* A small file into buf (NUL-terminated). 0, SN_ENOTFOUND or SN_EIO. */
int sn__pod_read_small(const char *path, char *buf, size_t size, size_t *len);

#endif
