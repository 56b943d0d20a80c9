/*
 * purser-watchdog: kills what a supervisor's runs left the moment the supervisor dies,
 * however it dies (kill -9, a crash, the OOM killer, a second Ctrl-C). A worker dies with
 * its supervisor by its parent-death signal, and an untrusted worker's descendants with
 * its PID namespace, but a trusted worker's descendants that left its process group
 * (setsid, double fork) would live on in the run's cgroups.
 *
 * The supervisor starts one when it makes its first run's groups, in a session of its own,
 * and keeps the write end of a pipe whose read end is this process's fd 3; nothing is
 * written. When the supervisor is gone the pipe reads end-of-file, and every group named
 * for it (`s<OWNER>-*`) in each BASE is killed whole (purser_cgroup_kill_tree: cgroup.kill
 * on v2, pids.max 0 and each member on v1), all of them first, then waited for together.
 * Removing the groups, the run directories and reclaiming the holds is left to the next
 * supervisor to start (it would do all of it anyway, had this process been killed too).
 *
 * usage: purser-watchdog OWNER BASE...   (fd 3: the pipe's read end)
 * Exit status 0 once done; 1 if a group could not be emptied; 125 for bad usage.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "CPurserSys.h"

#define MAX_GROUPS 4096

static void usage(const char *why) {
    fprintf(stderr, "purser-watchdog: %s\nusage: purser-watchdog OWNER BASE...  (fd 3: a pipe)\n", why);
    exit(125);
}

// Blocks until every write end is closed: the supervisor is gone.
static void wait_for_end(void) {
    char byte;
    for (;;) {
        ssize_t n = read(3, &byte, 1);
        if (n == 0) return;
        if (n < 0 && errno != EINTR) return;
    }
}

// The supervisor's groups in `base`: `s<owner>-<n>`, with the steps' groups inside them.
static int find_groups(const char *base, const char *prefix, char **groups, int count) {
    DIR *dir = opendir(base);
    if (!dir) return count;
    struct dirent *entry;
    size_t length = strlen(prefix);
    while ((entry = readdir(dir)) != NULL && count < MAX_GROUPS) {
        if (entry->d_type != DT_DIR || strncmp(entry->d_name, prefix, length) != 0) continue;
        char path[PATH_MAX];
        if (snprintf(path, sizeof path, "%s/%s", base, entry->d_name) >= (int)sizeof path) continue;
        groups[count] = strdup(path);
        if (groups[count]) count++;
    }
    closedir(dir);
    return count;
}

int main(int argc, char **argv) {
    if (argc < 3) usage("an owner and at least one base are needed");
    struct stat pipe_status;
    if (fstat(3, &pipe_status) != 0 || !S_ISFIFO(pipe_status.st_mode)) usage("fd 3 is not a pipe");
    if (chdir("/") != 0) usage("cannot leave the supervisor's directory");
    // Like the supervisor: a worker of the same uid cannot read its memory through /proc.
    (void)prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    char prefix[256];
    if (snprintf(prefix, sizeof prefix, "s%s-", argv[1]) >= (int)sizeof prefix) usage("the owner is too long");

    wait_for_end();

    static char *groups[MAX_GROUPS];
    int count = 0;
    for (int i = 2; i < argc; i++) count = find_groups(argv[i], prefix, groups, count);
    // About ten seconds in all for a process stuck in the kernel.
    return purser_cgroup_kill_trees((const char *const *)groups, count, 2000) == 0 ? 0 : 1;
}
