/*
 * The floor of this machine: the least a supervisor can do, measured the same
 * way as the daemons, so that their figures can be read against what the
 * kernel and the hardware (often a small, shared VM) allow.
 *
 * Usage: spawn_floor N PROGRAM [ARG...]   (PROGRAM an absolute path)
 *
 * It starts N copies of PROGRAM, one after the other, and restarts any that
 * dies, at once. Each start is fork, setpgid, exec, and the parent waits until
 * the child has exec'd (a CLOEXEC pipe closes), which is what Rust's
 * std::process::Command::spawn does and so what tend does. Deaths are taken
 * with sigwaitinfo(SIGCHLD) and waitpid. No PATH search, no config, no
 * logging, no bookkeeping beyond a pid table. On SIGTERM it kills its
 * children, reaps them and exits.
 *
 * Build: gcc -O2 -o spawn_floor spawn_floor.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static sigset_t old_mask;

static pid_t start(char **argv) {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) < 0) {
        perror("pipe2");
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        close(fds[0]);
        close(fds[1]);
        return -1;
    }
    if (pid == 0) {
        setpgid(0, 0);
        sigprocmask(SIG_SETMASK, &old_mask, NULL);
        execv(argv[0], argv);
        _exit(127);
    }
    close(fds[1]);
    char b;
    while (read(fds[0], &b, 1) < 0 && errno == EINTR)
        ;
    close(fds[0]);
    return pid;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s N PROGRAM [ARG...]\n", argv[0]);
        return 2;
    }
    int n = atoi(argv[1]);
    pid_t *pids = calloc((size_t)(n > 0 ? n : 1), sizeof *pids);
    if (n <= 0 || pids == NULL) {
        fprintf(stderr, "bad N\n");
        return 2;
    }
    char **child_argv = argv + 2;

    sigset_t wanted;
    sigemptyset(&wanted);
    sigaddset(&wanted, SIGCHLD);
    sigaddset(&wanted, SIGTERM);
    sigaddset(&wanted, SIGINT);
    sigprocmask(SIG_BLOCK, &wanted, &old_mask);

    for (int i = 0; i < n; i++)
        pids[i] = start(child_argv);

    for (;;) {
        int sig = sigwaitinfo(&wanted, NULL);
        if (sig == SIGTERM || sig == SIGINT)
            break;
        if (sig != SIGCHLD)
            continue;
        pid_t dead;
        while ((dead = waitpid(-1, NULL, WNOHANG)) > 0) {
            for (int i = 0; i < n; i++) {
                if (pids[i] == dead) {
                    pids[i] = start(child_argv);
                    break;
                }
            }
        }
    }

    for (int i = 0; i < n; i++)
        if (pids[i] > 0)
            kill(pids[i], SIGKILL);
    while (waitpid(-1, NULL, 0) > 0)
        ;
    return 0;
}
