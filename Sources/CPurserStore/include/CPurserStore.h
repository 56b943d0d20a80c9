#ifndef CPURSERSTORE_H
#define CPURSERSTORE_H

// SQLite maps the WAL index (the store's -shm file) into memory, shared. A write to it that
// the kernel refuses (the file made immutable, its file system failing) or a read past its
// end (the file truncated under it) is a SIGBUS, which would kill the supervisor. These
// functions catch such a SIGBUS in a mapping of a watched file: the page becomes a private
// copy (zeros past the file's end), the access goes on, and the fault is counted, so that
// the store stops at its next commit with a clean error instead.

/// Watches shared mappings of the file at `path` (absolute, as /proc/self/maps names it).
/// Installs the SIGBUS handler on first use; a handler already there still gets every
/// other SIGBUS. Returns a slot for the calls below, or -1 (errno set) if none is free.
int purser_store_watch(const char *path);

/// The file's device and inode, once it exists: its mappings match even if the path changes.
void purser_store_identify(int slot, unsigned long long device, unsigned long long inode);

/// How many faults in mappings of the slot's file were caught since it was watched.
int purser_store_faults(int slot);

void purser_store_forget(int slot);

#endif
