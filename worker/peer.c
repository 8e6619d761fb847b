/* peer: liveness of sibling processes and waiting on shared memory. See peer.h. */
#include "worker/peer.h"

#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define SPIN_ROUNDS 20000
#define YIELD_ROUNDS 1000

bool peer_alive(int pid)
{
    if (pid <= 0)
        return false;
    if (kill(pid, 0) != 0 && errno == ESRCH)
        return false;
    char path[64], buf[256];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return true; /* no /proc: trust kill */
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    const char *paren = strrchr(buf, ')'); /* "pid (comm) S ..." */
    return !(paren && paren[1] == ' ' && (paren[2] == 'Z' || paren[2] == 'X'));
}

bool peer_backoff(unsigned long i)
{
    if (i < SPIN_ROUNDS) {
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
        return i % 4096 == 0;
    }
    if (i < SPIN_ROUNDS + YIELD_ROUNDS) {
        sched_yield();
        return i % 64 == 0;
    }
    struct timespec ts = {0, 50000};
    nanosleep(&ts, NULL);
    return i % 20 == 0;
}
