#ifndef PURSER_ISOLATE_H
#define PURSER_ISOLATE_H

#include "CPurserSys.h"

// Child-side steps of a spawn (async-signal-safe: no allocation, no locks).

/// Sets up the worker's mount namespace: see purser_mount_plan.
int isolate_mounts(const purser_mount_plan *plan);

/// Installs the deny-list filter; with socket >= 0 the filter's listener is sent there and
/// denied calls wait for the supervisor's answer (EPERM), which records them.
int isolate_seccomp(int socket);

/// Builds the filters; call in the parent before a spawn that installs one.
void purser_seccomp_prepare(void);

#endif
