/* Per-worker event loop: epoll, timer wheel, deferred and reclaim queues.
 * See include/sinew/loop.h for the phase order. */
#include <errno.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "sinew/log.h"
#include "sinew/loop.h"

#define MAX_EVENTS 256
#define DEFER_BUDGET 4096  /* deferred tasks per iteration before polling again */

uint64_t sn_clock_ms(void)
{
	return sn_clock_ns() / 1000000u;
}

void sn_sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
	}
}

uint64_t sn_clock_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t sn_clock_us(void)
{
	return sn_clock_ns() / 1000u;
}

static void queue_init(struct sn_task_queue *q)
{
	q->head = NULL;
	q->tail = &q->head;
}

static void queue_push(struct sn_task_queue *q, struct sn_task *t)
{
	t->next = NULL;
	*q->tail = t;
	q->tail = &t->next;
}

static struct sn_task *queue_pop(struct sn_task_queue *q)
{
	struct sn_task *t = q->head;
	if (t == NULL)
		return NULL;
	q->head = t->next;
	if (q->head == NULL)
		q->tail = &q->head;
	t->next = NULL;
	return t;
}

static void on_wake(struct sn_loop *loop, struct sn_io *io, unsigned events)
{
	uint64_t v;
	struct sn_task_queue got;

	while (read(io->fd, &v, sizeof(v)) > 0)
		;
	pthread_mutex_lock(&loop->post_lock);
	got = loop->posted;
	queue_init(&loop->posted);
	pthread_mutex_unlock(&loop->post_lock);
	if (got.head == NULL)
		return;
	/* got.tail may point into the (reset) loop->posted; walk by next only. */
	struct sn_task *t = got.head;
	while (t != NULL) {
		struct sn_task *next = t->next;
		t->next = NULL;
		t->queued = 0;
		t->cb(loop, t);
		t = next;
	}
}

int sn_loop_init(struct sn_loop *loop)
{
	memset(loop, 0, sizeof(*loop));
	loop->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (loop->epfd < 0)
		return SN_EIO;
	loop->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (loop->wakefd < 0)
		goto fail_epoll;
	loop->now_ms = sn_clock_ms();
	sn_timerwheel_init(&loop->wheel, loop->now_ms);
	queue_init(&loop->deferred);
	queue_init(&loop->reclaim);
	queue_init(&loop->posted);
	pthread_mutex_init(&loop->post_lock, NULL);
	if (sn_io_start(loop, &loop->wake_io, loop->wakefd, on_wake) != 0)
		goto fail_wake;
	return 0;

fail_wake:
	pthread_mutex_destroy(&loop->post_lock);
	close(loop->wakefd);
fail_epoll:
	close(loop->epfd);
	return SN_EIO;
}

void sn_loop_dispose(struct sn_loop *loop)
{
	sn_io_stop(loop, &loop->wake_io);
	close(loop->wakefd);
	close(loop->epfd);
	pthread_mutex_destroy(&loop->post_lock);
}

int sn_io_start(struct sn_loop *loop, struct sn_io *io, int fd, sn_io_cb cb)
{
	struct epoll_event ev;

	io->fd = fd;
	io->cb = cb;
	ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
	ev.data.ptr = io;
	if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev) != 0)
		return SN_EIO;
	return 0;
}

void sn_io_stop(struct sn_loop *loop, struct sn_io *io)
{
	if (io->fd < 0 || io->cb == NULL)
		return;
	epoll_ctl(loop->epfd, EPOLL_CTL_DEL, io->fd, NULL);
	io->cb = NULL;
}

void sn_timer_start(struct sn_loop *loop, struct sn_timer *timer, uint64_t delay_ms, sn_timer_cb cb)
{
	timer->cb = cb;
	/* The wheel's notion of now may lag the loop's by the time spent in
	 * callbacks; anchor on the loop's clock. */
	sn_timerwheel_link(&loop->wheel, timer, loop->now_ms + delay_ms);
}

void sn_timer_stop(struct sn_loop *loop, struct sn_timer *timer)
{
	sn_timerwheel_unlink(&loop->wheel, timer);
}

void sn_loop_defer(struct sn_loop *loop, struct sn_task *task, sn_task_cb cb)
{
	if (task->queued)
		return;
	task->cb = cb;
	task->queued = 1;
	queue_push(&loop->deferred, task);
}

void sn_loop_reclaim(struct sn_loop *loop, struct sn_task *task, sn_task_cb cb)
{
	if (task->queued)
		return;
	task->cb = cb;
	task->queued = 1;
	queue_push(&loop->reclaim, task);
}

void sn_loop_post(struct sn_loop *loop, struct sn_task *task, sn_task_cb cb)
{
	uint64_t one = 1;
	ssize_t w;

	task->cb = cb;
	pthread_mutex_lock(&loop->post_lock);
	task->queued = 1;
	queue_push(&loop->posted, task);
	pthread_mutex_unlock(&loop->post_lock);
	w = write(loop->wakefd, &one, sizeof(one));
	(void)w;
}

void sn_loop_stop(struct sn_loop *loop)
{
	loop->stop = 1;
}

int sn_loop_run_once(struct sn_loop *loop, int max_wait_ms)
{
	struct epoll_event events[MAX_EVENTS];
	int timeout, n;

	/* 1. timeout */
	if (loop->deferred.head != NULL) {
		timeout = 0;
	} else {
		int64_t next = sn_timerwheel_next_in(&loop->wheel);
		/* The wheel may lag the clock; account for the lag. */
		if (next >= 0) {
			int64_t lag = (int64_t)(sn_clock_ms() - loop->wheel.now);
			next = next > lag ? next - lag : 0;
		}
		timeout = (int)next;
		if (max_wait_ms >= 0 && (timeout < 0 || timeout > max_wait_ms))
			timeout = max_wait_ms;
	}

	/* 2. poll */
	n = epoll_wait(loop->epfd, events, MAX_EVENTS, timeout);
	loop->now_ms = sn_clock_ms();
	if (n < 0 && errno != EINTR) {
		sn_log(SN_LOG_ERROR, "loop: epoll_wait: %s", strerror(errno));
		return SN_EIO;
	}

	/* 3. I/O callbacks */
	for (int i = 0; i < n; i++) {
		struct sn_io *io = events[i].data.ptr;
		unsigned ev = 0;
		if (io->cb == NULL)
			continue;
		if (events[i].events & (EPOLLIN | EPOLLPRI))
			ev |= SN_IO_READ;
		if (events[i].events & EPOLLOUT)
			ev |= SN_IO_WRITE;
		if (events[i].events & (EPOLLHUP | EPOLLERR | EPOLLRDHUP))
			ev |= SN_IO_HUP | SN_IO_READ;
		io->cb(loop, io, ev);
	}

	/* 4. deferred */
	for (int budget = DEFER_BUDGET; budget > 0; budget--) {
		struct sn_task *t = queue_pop(&loop->deferred);
		if (t == NULL)
			break;
		t->queued = 0;
		t->cb(loop, t);
	}

	/* 5. timers */
	struct sn_timer *expired = NULL;
	sn_timerwheel_advance(&loop->wheel, loop->now_ms, &expired);
	while (expired != NULL) {
		struct sn_timer *t = expired;
		sn_timerwheel_unlink(&loop->wheel, t);
		t->cb(loop, t);
	}

	/* 6. reclaim */
	for (;;) {
		struct sn_task *t = queue_pop(&loop->reclaim);
		if (t == NULL)
			break;
		t->queued = 0;
		t->cb(loop, t);
	}
	loop->iterations++;
	return 0;
}

int sn_loop_run(struct sn_loop *loop)
{
	loop->stop = 0;
	while (!loop->stop) {
		int r = sn_loop_run_once(loop, -1);
		if (r != 0)
			return r;
	}
	return 0;
}
