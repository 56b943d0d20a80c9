/* An allow-list for untrusted workers (x86_64): every syscall the echo workers of five
 * runtimes made in a run (strace -f: C, Swift, Python, Java, Node; 72 in all, see
 * trace-workers.sh) and the common POSIX calls a tool may make besides (files, memory,
 * processes, signals, time, polling, sockets): 205. */
#define A(name) SYS_##name
static const int allowed_calls[] = {
    /* files */
    A(read), A(write), A(open), A(openat), A(openat2), A(close), A(close_range), A(readv), A(writev), A(pread64),
    A(pwrite64), A(preadv), A(pwritev), A(preadv2), A(pwritev2), A(fsync), A(fdatasync), A(sync_file_range),
    A(truncate), A(ftruncate), A(fallocate), A(fadvise64), A(rename), A(renameat), A(renameat2), A(unlink),
    A(unlinkat), A(mkdir), A(mkdirat), A(rmdir), A(chmod), A(fchmod), A(fchmodat), A(chown),
    A(fchown), A(fchownat), A(lchown), A(utimensat), A(link), A(linkat), A(symlink), A(symlinkat), A(readlink),
    A(readlinkat), A(getdents), A(getdents64), A(chdir), A(fchdir), A(getcwd), A(umask), A(statfs), A(fstatfs),
    A(stat), A(lstat), A(fstat), A(newfstatat), A(statx), A(access), A(faccessat), A(faccessat2), A(dup), A(dup2),
    A(dup3), A(fcntl), A(flock), A(ioctl), A(lseek), A(sendfile), A(copy_file_range), A(splice), A(tee),
    A(getxattr), A(lgetxattr), A(fgetxattr), A(listxattr), A(llistxattr), A(flistxattr), A(memfd_create),
    A(inotify_init1), A(inotify_add_watch), A(inotify_rm_watch),
    /* memory */
    A(mmap), A(munmap), A(mprotect), A(mremap), A(madvise), A(brk), A(msync), A(mincore), A(mlock), A(munlock),
    A(membarrier), A(pkey_alloc), A(pkey_free), A(pkey_mprotect),
    /* processes */
    A(fork), A(vfork), A(execve), A(execveat), A(exit), A(exit_group), A(wait4), A(waitid), A(kill), A(tgkill),
    A(tkill), A(getpid), A(getppid), A(gettid), A(getpgid), A(setpgid), A(getpgrp), A(getsid), A(setsid),
    A(getuid), A(geteuid), A(getgid), A(getegid), A(getgroups), A(getresuid), A(getresgid), A(setpriority),
    A(getpriority), A(sched_yield), A(sched_getaffinity), A(sched_setaffinity), A(sched_getparam),
    A(sched_getscheduler), A(sched_get_priority_max), A(sched_get_priority_min), A(prctl), A(arch_prctl),
    A(prlimit64), A(getrlimit), A(setrlimit), A(getrusage), A(times), A(sysinfo), A(uname), A(capget),
    A(set_tid_address), A(set_robust_list), A(get_robust_list), A(rseq), A(futex), A(futex_waitv), A(pidfd_open),
    A(pidfd_send_signal),
    /* signals */
    A(rt_sigaction), A(rt_sigprocmask), A(rt_sigreturn), A(rt_sigsuspend), A(rt_sigtimedwait), A(sigaltstack),
    A(pause), A(alarm), A(signalfd4),
    /* time */
    A(clock_gettime), A(clock_getres), A(clock_nanosleep), A(nanosleep), A(gettimeofday), A(time), A(getitimer),
    A(setitimer), A(timer_create), A(timer_settime), A(timer_gettime), A(timer_delete), A(timer_getoverrun),
    A(timerfd_create), A(timerfd_settime), A(timerfd_gettime),
    /* polling */
    A(poll), A(ppoll), A(select), A(pselect6), A(epoll_create), A(epoll_create1), A(epoll_ctl), A(epoll_wait),
    A(epoll_pwait), A(epoll_pwait2), A(eventfd), A(eventfd2), A(pipe), A(pipe2),
    /* sockets (socket and socketpair are checked by family first) */
    A(connect), A(accept), A(accept4), A(bind), A(listen), A(getsockname), A(getpeername), A(setsockopt),
    A(getsockopt), A(sendto), A(recvfrom), A(sendmsg), A(recvmsg), A(sendmmsg), A(recvmmsg), A(shutdown),
    /* misc */
    A(getrandom), A(getcpu),
};
#define ALLOWED_COUNT (int)(sizeof allowed_calls / sizeof allowed_calls[0])
