/*
 * peer: what the worker processes of one engine need to know about each other: whether a
 * process is still alive, and a polite way to wait on shared memory.
 */
#ifndef KILN_PEER_H
#define KILN_PEER_H

#include <stdbool.h>

/* peer_alive: pid exists and is not a zombie (a dead child not yet reaped counts as dead). */
bool peer_alive(int pid);

/* peer_backoff: called by a waiting loop on its i-th round (i counting from 1): spins at
 * first, then yields, then sleeps ~50 us per round. Returns true about once a millisecond
 * of waiting, when the caller should check its peers. */
bool peer_backoff(unsigned long i);

#endif
