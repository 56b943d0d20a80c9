/*
 * What an allow-list seccomp filter would cost next to the sandbox's deny-list: BPF
 * instructions, the seccomp() that installs it, and CPU time per syscall with it installed,
 * with the kernel's action cache (Linux >= 5.11: a syscall whose answer reads no argument
 * skips the BPF) and without (every syscall made to read an argument first). The deny-list
 * is the sandbox's own (seccomp.c, included); the allow-lists hold allow_list.h's syscalls,
 * after the same arch check and clone/socket/seccomp argument checks, as one JEQ chain
 * ("linear") or a binary search ("tree"). Not part of the package; build and run from the
 * repository root:
 *
 *   gcc -D_GNU_SOURCE -O2 -ISources/CPurserSys/include -ISources/CPurserSys \
 *       -o /tmp/seccomp-cost Benchmarks/seccomp-cost/bench.c -lpthread
 *   /tmp/seccomp-cost count                      instructions of each filter
 *   /tmp/seccomp-cost attach FILTER              CPU time of the seccomp() that installs it
 *   /tmp/seccomp-cost loop FILTER SYSCALL N      CPU ns per call, best of 5 rounds of N
 *   /tmp/seccomp-cost exec FILTER CMD...         CMD under FILTER (for perf stat -e task-clock)
 *
 * FILTER: none, deny, allow-linear, allow-tree, each but none also with "-nocache".
 * SYSCALL: getppid, read (1 byte of /dev/zero), socket (AF_UNIX, then close).
 */
#include "seccomp.c"
#include "allow_list.h"
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <time.h>
#include <sys/wait.h>

#define ALLOW_MAX 1024
static struct sock_filter allow_code[2][ALLOW_MAX];

static int cmp(const void *a, const void *b) { return *(const int *)a - *(const int *)b; }

/* One JEQ each, all jumping to one ALLOW after the ENOSYS. */
static void chain(program *p, const int *nr, int lo, int hi) {
    for (int i = lo; i < hi; i++) {
        int jt = (hi - i - 1) + 1;
        if (jt > 255) p->broken = true;
        put(p, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)nr[i], (uint8_t)jt, 0));
    }
    refuse(p, ENOSYS);
    ret(p, SECCOMP_RET_ALLOW);
}

/* A binary search over the sorted numbers [lo, hi): JGE on the middle, the upper half first. */
static void tree(program *p, const int *nr, int lo, int hi) {
    if (hi - lo <= 8) {
        chain(p, nr, lo, hi);
        return;
    }
    int mid = (lo + hi) / 2;
    put(p, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, (uint32_t)nr[mid], 0, 0));
    int at = p->n - 1;
    tree(p, nr, mid, hi);
    p->code[at].jf = (uint8_t)(p->n - at - 1);
    if (p->n - at - 1 > 255) p->broken = true;
    tree(p, nr, lo, mid);
}

/* The same prologue and argument checks as the deny-list, then the allow-list. */
static struct sock_fprog allow_filter(int as_tree, int nocache) {
    program p = {.code = allow_code[as_tree], .n = 0, .capacity = ALLOW_MAX};
    if (nocache) { /* reads an argument before anything: no syscall's answer is constant */
        load_arg(&p, 5);
        put(&p, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0xfeedfaceU, 0, 1));
        refuse(&p, EIO);
    }
    put(&p, (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)));
    put(&p, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, PURSER_AUDIT_ARCH, 1, 0));
    refuse(&p, ENOSYS);
    put(&p, (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)));
    put(&p, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 0x40000000U, 0, 1));
    refuse(&p, ENOSYS);
    int is_clone = if_equal(&p, SYS_clone);
    load_arg(&p, 0);
    put(&p, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, NAMESPACE_FLAGS, 1, 0));
    ret(&p, SECCOMP_RET_ALLOW);
    refuse(&p, EPERM);
    end_if(&p, is_clone);
    socket_calls(&p);
    int sorted[ALLOWED_COUNT];
    memcpy(sorted, allowed_calls, sizeof sorted);
    qsort(sorted, ALLOWED_COUNT, sizeof sorted[0], cmp);
    if (as_tree) {
        tree(&p, sorted, 0, ALLOWED_COUNT);
    } else {
        chain(&p, sorted, 0, ALLOWED_COUNT);
    }
    if (p.broken) { fprintf(stderr, "allow filter broken\n"); exit(1); }
    return (struct sock_fprog){.len = (unsigned short)p.n, .filter = p.code};
}

static struct sock_filter deny_nocache[FILTER_MAX + 8];

static struct sock_fprog pick(const char *name) {
    int nocache = strstr(name, "-nocache") != NULL;
    if (strncmp(name, "allow-linear", 12) == 0) return allow_filter(0, nocache);
    if (strncmp(name, "allow-tree", 10) == 0) return allow_filter(1, nocache);
    purser_seccomp_prepare();
    if (!nocache) return programs[0];
    program p = {.code = deny_nocache, .n = 0, .capacity = FILTER_MAX + 8};
    load_arg(&p, 5);
    put(&p, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0xfeedfaceU, 0, 1));
    refuse(&p, EIO);
    memcpy(p.code + p.n, programs[0].filter, programs[0].len * sizeof(struct sock_filter));
    return (struct sock_fprog){.len = (unsigned short)(p.n + programs[0].len), .filter = p.code};
}

static void install(const char *name) {
    if (strcmp(name, "none") == 0) return;
    struct sock_fprog prog = pick(name);
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 || syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) < 0) {
        perror("seccomp");
        exit(1);
    }
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    if (argc == 2 && strcmp(argv[1], "count") == 0) {
        const char *names[] = {"deny", "allow-linear", "allow-tree"};
        for (int i = 0; i < 3; i++) printf("%-13s %4d instructions\n", names[i], pick(names[i]).len);
        printf("deny-list: %d syscalls; allow-list: %d syscalls\n", DENIED_COUNT, ALLOWED_COUNT);
        return 0;
    }
    if (argc == 3 && strcmp(argv[1], "attach") == 0) { /* the seccomp() that installs it, in 200 children */
        struct sock_fprog prog = pick(argv[2]);
        double best = 1e9, sum = 0;
        for (int i = 0; i < 200; i++) {
            int fds[2];
            if (pipe(fds) < 0) return 1;
            if (fork() == 0) {
                prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
                double start = now();
                if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) < 0) _exit(1);
                double took = now() - start;
                (void)!write(fds[1], &took, sizeof took);
                _exit(0);
            }
            double took = 0;
            (void)!read(fds[0], &took, sizeof took);
            close(fds[0]);
            close(fds[1]);
            wait(NULL);
            sum += took;
            if (took < best) best = took;
        }
        printf("%-13s attach: best %.1f us, mean %.1f us\n", argv[2], best * 1e6, sum / 200 * 1e6);
        return 0;
    }
    if (argc >= 4 && strcmp(argv[1], "exec") == 0) {
        install(argv[2]);
        execvp(argv[3], argv + 3);
        perror("exec");
        return 127;
    }
    if (argc != 5) return 2;
    install(argv[2]);
    long n = atol(argv[4]);
    int zero = open("/dev/zero", O_RDONLY);
    char byte;
    double best = 1e9;
    for (int round = 0; round < 5; round++) {
        double start = now();
        for (long i = 0; i < n; i++) {
            if (strcmp(argv[3], "getppid") == 0) syscall(SYS_getppid);
            else if (strcmp(argv[3], "socket") == 0) close(socket(AF_UNIX, SOCK_STREAM, 0));
            else (void)!read(zero, &byte, 1);
        }
        double ns = (now() - start) / n * 1e9;
        if (ns < best) best = ns;
    }
    printf("%-22s %-8s %7.1f ns/call (best of 5 x %ld)\n", argv[2], argv[3], best, n);
    return 0;
}
