#ifndef PURSER_SECCOMP_INTERNAL_H
#define PURSER_SECCOMP_INTERNAL_H

/// Installs the notifying filter with a new listener here and returns the listener (or -1
/// with errno): the probe's try. Call purser_seccomp_prepare first.
int purser_seccomp_install_listener(void);

#endif
