/* Writes N bytes of 100-byte lines to stdout as fast as it can, in 64 KiB
 * batches of whole lines (what stdio's full buffering does), then appends its
 * own elapsed wall time in seconds to the file named by argv[2]. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void write_all(const char *p, size_t n) {
    while (n > 0) {
        ssize_t w = write(1, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            perror("write");
            exit(1);
        }
        p += w;
        n -= (size_t)w;
    }
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: writer BYTES RESULT_FILE\n");
        return 2;
    }
    long total = atol(argv[1]);
    static char buf[65500];
    char line[100];
    memset(line, 'x', 99);
    line[99] = '\n';
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    size_t n = 0;
    for (long i = 0; i < total / 100; i++) {
        if (n + 100 > sizeof buf) {
            write_all(buf, n);
            n = 0;
        }
        memcpy(buf + n, line, 100);
        n += 100;
    }
    write_all(buf, n);
    clock_gettime(CLOCK_MONOTONIC, &b);
    FILE *f = fopen(argv[2], "a");
    if (!f) return 1;
    fprintf(f, "%.6f\n", (b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9);
    fclose(f);
    return 0;
}
