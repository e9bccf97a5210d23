/*
 * The long-running child of the restart-latency benchmark.
 *
 * At start it reads CLOCK_REALTIME and appends "<pid> <ns>\n" to a file (the
 * path is argv[1], or $BENCH_CHILD_LOG), in one write(2) on an O_APPEND file so
 * lines from successive children never interleave. Then it waits forever.
 *
 * The clock is read first thing in main(): that instant, minus the instant the
 * benchmark called kill(SIGKILL) on the predecessor, is the restart latency. It
 * includes the supervisor noticing the death, deciding, forking, exec'ing and
 * the dynamic loader; it excludes only the write below.
 *
 * Build: gcc -O2 -o child child.c
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);

    const char *path = argc > 1 ? argv[1] : getenv("BENCH_CHILD_LOG");
    if (path == NULL) {
        fprintf(stderr, "usage: %s LOGFILE (or set BENCH_CHILD_LOG)\n", argv[0]);
        return 2;
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) {
        perror(path);
        return 1;
    }
    char line[64];
    int n = snprintf(line, sizeof line, "%ld %lld\n", (long)getpid(),
                     (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec);
    if (write(fd, line, (size_t)n) != n) {
        perror("write");
        return 1;
    }
    close(fd);

    for (;;)
        pause();
}
