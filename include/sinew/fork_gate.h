#ifndef SINEW_FORK_GATE_H
#define SINEW_FORK_GATE_H

/* Forking while helper threads run (src/core/fork_gate.c).
 *
 * sinewd forks a child for each admission (src/control/admit_isolate.c)
 * while threads of its own run (the etcd watch, the Prometheus views). A
 * fork copies only the forking thread: a lock another thread held at that
 * moment (the allocator's, the log's, a parser's, OpenSSL's) stays held
 * forever in the child, which then hangs. So a helper thread holds the
 * gate whenever it runs and lets go only while it sleeps or blocks (in
 * poll, a blocking write, a sleep), and a fork takes the gate first
 * (pthread_atfork). The forking thread itself needs nothing.
 *
 *   sn_fork_gate_enter();            // the thread's first line
 *   sn_fork_gate_pause(); poll(...); sn_fork_gate_resume();
 *   sn_fork_gate_leave();            // its last
 *
 * pause/resume do nothing in a thread that did not enter, so shared code
 * (the blocking HTTP client) calls them around every wait. */

void sn_fork_gate_enter(void);
void sn_fork_gate_leave(void);
void sn_fork_gate_pause(void);
void sn_fork_gate_resume(void);

#endif
