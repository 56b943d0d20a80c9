#include "CPurserSys.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

// The members of a cgroup tree, read from each group's cgroup.procs.
typedef struct {
    pid_t *pids;
    size_t count, capacity;
} pid_list;

static void add_pid(pid_list *list, pid_t pid) {
    if (list->count == list->capacity) {
        size_t capacity = list->capacity ? list->capacity * 2 : 64;
        pid_t *grown = realloc(list->pids, capacity * sizeof *grown);
        if (!grown) return;
        list->pids = grown;
        list->capacity = capacity;
    }
    list->pids[list->count++] = pid;
}

static bool write_text(const char *path, const char *text) {
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return false;
    ssize_t length = (ssize_t)strlen(text);
    ssize_t written;
    do {
        written = write(fd, text, (size_t)length);
    } while (written < 0 && errno == EINTR);
    close(fd);
    return written == length;
}

static void read_procs(const char *group, pid_list *list) {
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s/cgroup.procs", group) >= (int)sizeof path) return;
    FILE *file = fopen(path, "re");
    if (!file) return;
    long pid;
    while (fscanf(file, "%ld", &pid) == 1) add_pid(list, (pid_t)pid);
    fclose(file);
}

// Every member of `group` and of the groups inside it; depth-limited like the hierarchy.
static void members(const char *group, pid_list *list, int depth) {
    read_procs(group, list);
    if (depth > 64) return;
    DIR *dir = opendir(group);
    if (!dir) return;
    struct dirent *entry;
    while ((entry = readdir(dir)) != NULL) {
        if (entry->d_type != DT_DIR || entry->d_name[0] == '.') continue;
        char inner[PATH_MAX];
        if (snprintf(inner, sizeof inner, "%s/%s", group, entry->d_name) >= (int)sizeof inner) continue;
        members(inner, list, depth + 1);
    }
    closedir(dir);
}

static bool listed(const pid_list *list, pid_t pid) {
    for (size_t i = 0; i < list->count; i++) {
        if (list->pids[i] == pid) return true;
    }
    return false;
}

// SIGKILL to each pid through a pidfd, and only if the pid is still a member once its
// pidfd is open: a pid that was reused after it was read is never signalled. (Before
// Linux 5.3, which has no pidfd_open, by pid.)
static void kill_members(const char *group, const pid_list *seen) {
    int *pidfds = malloc((seen->count ? seen->count : 1) * sizeof *pidfds);
    if (!pidfds) return;
    bool by_pid = false;
    for (size_t i = 0; i < seen->count; i++) {
        pidfds[i] = purser_pidfd_open(seen->pids[i]);
        if (pidfds[i] < 0 && errno == ENOSYS) by_pid = true;
    }
    pid_list now = {0};
    members(group, &now, 0);
    for (size_t i = 0; i < seen->count; i++) {
        if (!listed(&now, seen->pids[i])) continue;
        if (pidfds[i] >= 0) {
            (void)purser_pidfd_signal(pidfds[i], SIGKILL);
        } else if (by_pid) {
            (void)kill(seen->pids[i], SIGKILL);
        }
    }
    for (size_t i = 0; i < seen->count; i++) {
        if (pidfds[i] >= 0) close(pidfds[i]);
    }
    free(now.pids);
    free(pidfds);
}

// cgroup v2 kills the whole tree at once, forks in flight included (Linux 5.14). cgroup v1
// has no such file, and a run's processes are in no freezer group, but a pids group stops
// every fork in its tree with pids.max 0.
static void stop_forks(const char *group) {
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s/cgroup.kill", group) < (int)sizeof path && write_text(path, "1")) return;
    if (snprintf(path, sizeof path, "%s/pids.max", group) < (int)sizeof path) (void)write_text(path, "0");
}

int purser_cgroup_kill_tree(const char *group, int rounds) {
    stop_forks(group);
    for (int round = 0;; round++) {
        pid_list seen = {0};
        members(group, &seen, 0);
        if (seen.count == 0) {
            free(seen.pids);
            return 0;
        }
        if (round == rounds) {
            free(seen.pids);
            errno = EBUSY;
            return -1;
        }
        kill_members(group, &seen);
        free(seen.pids);
        struct timespec pause = {0, 5 * 1000 * 1000};
        nanosleep(&pause, NULL);
    }
}

int purser_cgroup_kill_trees(const char *const *groups, int count, int rounds) {
    bool *done = calloc(count > 0 ? (size_t)count : 1, sizeof *done);
    if (!done) return count;
    int pending = count;
    for (int round = 0; round < rounds && pending > 0; round++) {
        pending = 0;
        for (int i = 0; i < count; i++) {
            if (done[i]) continue;
            done[i] = purser_cgroup_kill_tree(groups[i], 1) == 0;
            if (!done[i]) pending++;
        }
    }
    free(done);
    return pending;
}
