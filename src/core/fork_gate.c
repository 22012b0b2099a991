/* The fork gate (include/sinew/fork_gate.h). */
#include <pthread.h>

#include "sinew/fork_gate.h"

static pthread_mutex_t gate = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t installed = PTHREAD_ONCE_INIT;
static __thread int inside;   /* this thread entered, and is not paused */
static __thread int entered;

static void gate_lock(void)
{
	pthread_mutex_lock(&gate);
}

static void gate_unlock(void)
{
	pthread_mutex_unlock(&gate);
}

static void install(void)
{
	/* the child is the forking thread alone, which took the gate */
	pthread_atfork(gate_lock, gate_unlock, gate_unlock);
}

void sn_fork_gate_enter(void)
{
	pthread_once(&installed, install);
	gate_lock();
	entered = inside = 1;
}

void sn_fork_gate_leave(void)
{
	if (inside)
		gate_unlock();
	entered = inside = 0;
}

void sn_fork_gate_pause(void)
{
	if (inside) {
		inside = 0;
		gate_unlock();
	}
}

void sn_fork_gate_resume(void)
{
	if (entered && !inside) {
		gate_lock();
		inside = 1;
	}
}
