#ifndef SINEW_LOOP_H
#define SINEW_LOOP_H

/* One event loop per worker thread: epoll (edge-triggered), a hierarchical
 * timer wheel, a deferred queue and a reclaim queue.
 *
 * Phase order of one iteration, fixed (STYLE.md):
 *   1. compute timeout: 0 if deferred work is pending, else the next timer;
 *   2. poll: epoll_wait;
 *   3. I/O callbacks, in the order epoll reported them;
 *   4. deferred queue (work scheduled during 3, FIFO; work it schedules
 *      runs in the same phase, bounded by a per-iteration budget);
 *   5. timers that are due;
 *   6. reclaim: objects closed during this iteration are freed here, after
 *      every callback that could still hold a pointer to them has returned
 *      (libuv's uv_close).
 *
 * Cross-thread: sn_loop_post() is the only function another thread may
 * call; it queues a message and wakes the loop through an eventfd. */

#include <pthread.h>
#include <stdint.h>

#include "sinew/common.h"

struct sn_loop;
struct sn_io;
struct sn_timer;
struct sn_task;

#define SN_IO_READ 0x1u
#define SN_IO_WRITE 0x2u
#define SN_IO_HUP 0x4u   /* peer hung up or error: read to find out */

typedef void (*sn_io_cb)(struct sn_loop *loop, struct sn_io *io, unsigned events);
typedef void (*sn_timer_cb)(struct sn_loop *loop, struct sn_timer *timer);
typedef void (*sn_task_cb)(struct sn_loop *loop, struct sn_task *task);

/* A file descriptor watched for readiness. Embed it in the owner and use
 * sn_container_of in the callback. Registered edge-triggered for both read
 * and write: the owner keeps reading/writing until EAGAIN. */
struct sn_io {
	int fd;
	sn_io_cb cb;
};

/* A timer in the wheel. Embed it; a linked timer must be unlinked before its
 * memory goes away. Resolution is 1 ms. */
struct sn_timer {
	struct sn_timer *next;
	struct sn_timer **pprev;
	uint64_t expire_at;   /* loop time in ms */
	sn_timer_cb cb;
};

/* Deferred work, reclaim and cross-thread messages share this node. */
struct sn_task {
	struct sn_task *next;
	sn_task_cb cb;
	int queued;
};

#define SN_WHEEL_LEVELS 4
#define SN_WHEEL_BITS 6
#define SN_WHEEL_SLOTS (1 << SN_WHEEL_BITS)

struct sn_timerwheel {
	uint64_t now;          /* last tick processed */
	size_t count;          /* linked timers */
	struct sn_timer *slots[SN_WHEEL_LEVELS][SN_WHEEL_SLOTS];
};

struct sn_task_queue {
	struct sn_task *head;
	struct sn_task **tail;
};

struct sn_loop {
	int epfd;
	int wakefd;            /* eventfd for sn_loop_post */
	struct sn_io wake_io;
	uint64_t now_ms;       /* monotonic, updated after each poll */
	int stop;
	struct sn_timerwheel wheel;
	struct sn_task_queue deferred;
	struct sn_task_queue reclaim;
	pthread_mutex_t post_lock;
	struct sn_task_queue posted;   /* guarded by post_lock */
	uint64_t iterations;
};

/* Initializes a loop. Returns 0 or SN_EIO (errno set). */
int sn_loop_init(struct sn_loop *loop);
/* Frees the loop's fds. Every io must have been stopped first. */
void sn_loop_dispose(struct sn_loop *loop);

/* Runs iterations until sn_loop_stop is called. Returns 0 or SN_EIO. */
int sn_loop_run(struct sn_loop *loop);
/* Runs one iteration, waiting at most max_wait_ms (-1: until an event). */
int sn_loop_run_once(struct sn_loop *loop, int max_wait_ms);
/* Makes sn_loop_run return after the current iteration. Loop thread only. */
void sn_loop_stop(struct sn_loop *loop);

/* Monotonic milliseconds as of the last poll. */
static inline uint64_t sn_loop_now(const struct sn_loop *loop)
{
	return loop->now_ms;
}
/* Reads the monotonic clock now (ms); for tests and durations. */
uint64_t sn_clock_ms(void);
/* Sleeps ms milliseconds (resumed after signals); for command-line
 * tools, never on a loop thread. */
void sn_sleep_ms(unsigned ms);
/* Monotonic clock in microseconds, and in nanoseconds. */
uint64_t sn_clock_us(void);
uint64_t sn_clock_ns(void);

/* Starts watching fd (already non-blocking). Returns 0 or SN_EIO. */
int sn_io_start(struct sn_loop *loop, struct sn_io *io, int fd, sn_io_cb cb);
/* Stops watching; does not close the fd. Safe to call twice. */
void sn_io_stop(struct sn_loop *loop, struct sn_io *io);

/* Links timer to fire after delay_ms (re-links if already linked). */
void sn_timer_start(struct sn_loop *loop, struct sn_timer *timer, uint64_t delay_ms, sn_timer_cb cb);
void sn_timer_stop(struct sn_loop *loop, struct sn_timer *timer);
static inline int sn_timer_is_linked(const struct sn_timer *t)
{
	return t->pprev != NULL;
}

/* Timer wheel, usable on its own (unit tests). */
void sn_timerwheel_init(struct sn_timerwheel *w, uint64_t now);
void sn_timerwheel_link(struct sn_timerwheel *w, struct sn_timer *t, uint64_t expire_at);
void sn_timerwheel_unlink(struct sn_timerwheel *w, struct sn_timer *t);
/* Milliseconds until the next timer may be due (an early wake-up is
 * possible, a late one is not); -1 when no timer is linked. */
int64_t sn_timerwheel_next_in(const struct sn_timerwheel *w);
/* Moves every timer due at or before now to the list *expired (in expiry
 * order) and advances w->now. Timers there stay linked: the caller pops
 * each with sn_timerwheel_unlink before running it, and a callback may
 * unlink another one that is still waiting in the list. */
void sn_timerwheel_advance(struct sn_timerwheel *w, uint64_t now, struct sn_timer **expired);

/* Queues task to run in phase 4 of this (or the next) iteration. A task
 * already queued is not queued twice. Loop thread only. */
void sn_loop_defer(struct sn_loop *loop, struct sn_task *task, sn_task_cb cb);
/* Queues task to run in phase 6, to free an object closed in a callback. */
void sn_loop_reclaim(struct sn_loop *loop, struct sn_task *task, sn_task_cb cb);
/* From any thread: queues task to run on loop's thread (phase 3) and wakes
 * it. The task must stay valid until its callback runs. */
void sn_loop_post(struct sn_loop *loop, struct sn_task *task, sn_task_cb cb);

#endif
